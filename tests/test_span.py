"""`Span` built by `make_span` (default-valued slots left unset) against `Span(...)`.

Every reader must see the same six fields either way: attributes, equality and hash (also
across the two constructions), repr, str, to_dict, pickling, copy, `dataclasses.replace`,
`astuple`; unknown attributes still raise AttributeError, and a Span stays frozen.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
from hypothesis import given, strategies as st

from nda.core.errors import Diagnostic, Span, make_span

FIELDS = ("line", "col", "end_line", "end_col", "offset", "file")
small = st.integers(0, 3)  # 0 is every int field's default: both set and unset slots occur


@given(small, small, st.one_of(st.none(), st.sampled_from(["", "a.sexpr", "dir/b.nda"])), small, small)
def test_make_span_equals_the_dataclass_constructor(line, col, file, end_line, end_col):
    want = Span(line, col, end_line, end_col, file=file)
    got = make_span(line, col, file, end_line, end_col)
    assert type(got) is Span
    assert [getattr(got, f) for f in FIELDS] == [getattr(want, f) for f in FIELDS]
    assert got == want and want == got and hash(got) == hash(want)
    assert repr(got) == repr(want) and str(got) == str(want) and got.to_dict() == want.to_dict()
    assert dataclasses.astuple(got) == dataclasses.astuple(want)
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(got, proto))
        assert back == want and [getattr(back, f) for f in FIELDS] == [getattr(want, f) for f in FIELDS]
    assert copy.copy(got) == want and copy.deepcopy(got) == want
    assert dataclasses.replace(got, col=col + 1) == Span(line, col + 1, end_line, end_col, file=file)
    assert (got != make_span(line + 1, col, file, end_line, end_col))
    d = Diagnostic("PARSE_ERROR", "m", got)
    assert d == Diagnostic("PARSE_ERROR", "m", want) and d.to_dict() == Diagnostic("PARSE_ERROR", "m", want).to_dict()


def test_unset_slots_do_not_hide_unknown_attributes_or_unfreeze():
    sp = make_span(1, 2)
    with pytest.raises(AttributeError):
        sp.nope  # noqa: B018
    assert not hasattr(sp, "__deepcopy__") and getattr(sp, "__getstate__", None) is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        sp.file = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sp.end_line = 3  # type: ignore[misc]
    assert sp.end_line == 0 and sp.offset is None and sp.file is None
