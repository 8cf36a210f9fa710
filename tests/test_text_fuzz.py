"""Quick fuzz of parse_text (the long campaign is bench/fuzz_text.py).

Every input either parses (and then prints back to an equal module, unless it nests deeper
than the printer's limit) or raises ParseError with well-formed diagnostics; nothing else
escapes, and no input takes a second.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from text_strategies import SNIPPETS, mutated_sources

_spec = importlib.util.spec_from_file_location(
    "fuzz_text", Path(__file__).resolve().parents[1] / "bench" / "fuzz_text.py")
fuzz_text = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz_text)
TOKENS, check = fuzz_text.TOKENS, fuzz_text.check

FUZZ = settings(max_examples=700, deadline=None, suppress_health_check=list(HealthCheck))

soup = st.lists(st.sampled_from(TOKENS + SNIPPETS), max_size=40).map(" ".join)
wrapped_soup = soup.map(lambda s: "fn main() { " + s + " }")


def timed_check(src: str) -> None:
    t0 = time.perf_counter()
    _, parse_seconds = check(src)
    assert parse_seconds < 1.0 and time.perf_counter() - t0 < 5.0


@FUZZ
@given(mutated_sources())
def test_fuzz_mutated_examples(src):
    timed_check(src)


@FUZZ
@given(st.one_of(soup, wrapped_soup))
def test_fuzz_token_soup(src):
    timed_check(src)


@FUZZ
@given(st.one_of(st.text(max_size=80), st.binary(max_size=80).map(lambda b: b.decode("utf-8", "replace"))))
def test_fuzz_random_text(src):
    timed_check(src)


def test_bytes_input_is_decoded_with_replacement():
    import pytest

    from nda.core.errors import ParseError
    from nda.syntax.text import parse_text

    assert parse_text(b"fn main() { 1 } // \xff\xfe").get("main").children[0].value == 1
    with pytest.raises(ParseError) as ei:
        parse_text(b"fn main() { \xff }")
    assert ei.value.message == "1:13: Unexpected character '\ufffd'"
