"""The GBNF grammars in the constrained-decoding engines themselves — xgrammar (the worked
example of docs/grammars.md) and llguidance — when they are installed. They are not test
dependencies (xgrammar pulls in torch); each test is skipped without its engine. The lark-based
tests in tests/test_grammars.py check the same grammars in every run."""

from __future__ import annotations

from pathlib import Path

import pytest

from nda.core.errors import ParseError
from nda.syntax.grammars import grammar
from nda.syntax.sexpr import parse_sexpr
from nda.syntax.text.parser import parse_text

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
_EXTRA = sorted({ch for p in EXAMPLES.iterdir() for ch in p.read_text(errors="replace") if ord(ch) > 126})
VOCAB = [chr(c) for c in range(32, 127)] + _EXTRA + ["\n", "\t", "</s>"]  # a character-level tokenizer
EOS = len(VOCAB) - 1


def _parses(syntax, src):
    try:
        (parse_text if syntax == "text" else parse_sexpr)(src)
        return True
    except ParseError:
        return False


def _compiled(syntax):
    xgr = pytest.importorskip("xgrammar")
    info = xgr.TokenizerInfo(VOCAB, stop_token_ids=[EOS])
    return xgr.GrammarCompiler(info).compile_grammar(grammar(syntax, "gbnf"))


def _accepts(compiled, text: str) -> bool:
    import xgrammar as xgr

    m = xgr.GrammarMatcher(compiled)
    bitmask = xgr.allocate_token_bitmask(1, len(VOCAB))
    for ch in text:
        m.fill_next_token_bitmask(bitmask)
        if ch not in VOCAB or not m.accept_token(VOCAB.index(ch)):
            return False
    return m.accept_token(EOS) and m.is_terminated()


@pytest.mark.parametrize("syntax,ext", [("text", "nda"), ("sexpr", "sexpr")])
def test_xgrammar_accepts_the_examples_that_parse(syntax, ext):
    c = _compiled(syntax)
    for path in sorted(EXAMPLES.glob(f"*.{ext}")):
        src = path.read_text()
        assert _accepts(c, src) == _parses(syntax, src), path.name


def test_xgrammar_rejects_near_misses():
    t, s = _compiled("text"), _compiled("sexpr")
    assert not _accepts(t, "fn let() {}") and not _accepts(t, "fn main() { x = 4294967296 }")
    assert _accepts(t, "fn main() { print(1) }")
    assert not _accepts(s, "(int5)") and _accepts(s, "(int -2147483648)")


class _ByteTokenizer:
    """One token per byte; id 256 is end of sequence (what llguidance's TokenizerWrapper reads)."""

    tokens = [bytes([b]) for b in range(256)] + [b"</s>"]
    eos_token_id = 256
    bos_token_id = None
    special_token_ids = [256]

    def __call__(self, s):
        return list(s if isinstance(s, bytes) else s.encode("utf-8"))


def _llg_accepts(syntax: str, text: str) -> bool:
    llg = pytest.importorskip("llguidance")
    tok = llg.LLTokenizer(llg.TokenizerWrapper(_ByteTokenizer()))
    m = llg.LLMatcher(tok, llg.grammar_from("gbnf", grammar(syntax, "gbnf")))
    assert not m.is_error(), m.get_error()
    ids = list(text.encode("utf-8"))
    return m.try_consume_tokens(ids) == len(ids) and m.is_accepting()


@pytest.mark.parametrize("syntax,ext", [("text", "nda"), ("sexpr", "sexpr")])
def test_llguidance_accepts_the_examples_that_parse(syntax, ext):
    for path in sorted(EXAMPLES.glob(f"*.{ext}")):
        src = path.read_text()
        assert _llg_accepts(syntax, src) == _parses(syntax, src), path.name


def test_llguidance_rejects_near_misses():
    assert not _llg_accepts("text", "fn let() {}") and _llg_accepts("text", "fn main() { print(1) }")
    assert not _llg_accepts("sexpr", "(int5)") and _llg_accepts("sexpr", "(int -2147483648)")
