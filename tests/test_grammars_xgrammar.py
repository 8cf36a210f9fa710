"""The GBNF grammars in xgrammar (the worked example of docs/grammars.md), when xgrammar is
installed (it is not a test dependency: it pulls in torch); skipped otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

xgr = pytest.importorskip("xgrammar")

from nda.syntax.grammars import grammar  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
_EXTRA = sorted({ch for p in EXAMPLES.iterdir() for ch in p.read_text(errors="replace") if ord(ch) > 126})
VOCAB = [chr(c) for c in range(32, 127)] + _EXTRA + ["\n", "\t", "</s>"]  # a character-level tokenizer
EOS = len(VOCAB) - 1


def _compiled(syntax):
    info = xgr.TokenizerInfo(VOCAB, stop_token_ids=[EOS])
    return xgr.GrammarCompiler(info).compile_grammar(grammar(syntax, "gbnf"))


def _accepts(compiled, text: str) -> bool:
    m = xgr.GrammarMatcher(compiled)
    bitmask = xgr.allocate_token_bitmask(1, len(VOCAB))
    for ch in text:
        m.fill_next_token_bitmask(bitmask)
        if ch not in VOCAB or not m.accept_token(VOCAB.index(ch)):
            return False
    return m.accept_token(EOS) and m.is_terminated()


@pytest.mark.parametrize("syntax,ext", [("text", "nda"), ("sexpr", "sexpr")])
def test_xgrammar_accepts_the_examples_that_parse(syntax, ext):
    from nda.core.errors import ParseError
    from nda.syntax.sexpr import parse_sexpr
    from nda.syntax.text.parser import parse_text

    c = _compiled(syntax)
    for path in sorted(EXAMPLES.glob(f"*.{ext}")):
        src = path.read_text()
        try:
            (parse_text if syntax == "text" else parse_sexpr)(src)
            ok = True
        except ParseError:
            ok = False
        assert _accepts(c, src) == ok, path.name


def test_xgrammar_rejects_near_misses():
    t, s = _compiled("text"), _compiled("sexpr")
    assert not _accepts(t, "fn let() {}") and not _accepts(t, "fn main() { x = 4294967296 }")
    assert _accepts(t, "fn main() { print(1) }")
    assert not _accepts(s, "(int5)") and _accepts(s, "(int -2147483648)")
