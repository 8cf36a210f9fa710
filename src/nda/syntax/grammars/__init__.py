"""Grammars of the NDA program syntaxes for constrained decoding (xgrammar, llguidance, outlines,
transformers-cfg, llama.cpp).

In: a syntax name ("text" for `.nda`, "sexpr" for `.sexpr`) and a dialect ("lark" or "gbnf").
Out: `grammar(syntax, dialect)` → the grammar text kept next to this module (text.lark,
text.gbnf, sexpr.lark, sexpr.gbnf, shipped as package data); `GRAMMAR_FILES` maps
(syntax, dialect) → file name; `START_RULES` the start rule of each dialect. A bad syntax or
dialect raises `GrammarError` (a `UsageError`, code INPUT_INVALID) naming the valid choices.

Every string a grammar accepts is accepted by nda's parser for that syntax, except for the
few context-sensitive conditions listed in docs/grammars.md; everything nda's printers write
is accepted by the grammar (tests/test_grammars.py checks both directions).
"""

from __future__ import annotations

from importlib import resources

from nda.core.errors import UsageError

SYNTAXES = ("text", "sexpr")
DIALECTS = ("lark", "gbnf")
GRAMMAR_FILES = {(s, d): f"{s}.{d}" for s in SYNTAXES for d in DIALECTS}
START_RULES = {"lark": "start", "gbnf": "root"}


class GrammarError(UsageError):
    """An unknown syntax or dialect was asked for."""


def grammar(syntax: str = "text", dialect: str = "lark") -> str:
    """The grammar of `syntax` ("text" | "sexpr") in `dialect` ("lark" | "gbnf") as text."""
    if syntax not in SYNTAXES:
        raise GrammarError(f"unknown syntax {syntax!r} (expected one of: {', '.join(SYNTAXES)})")
    if dialect not in DIALECTS:
        raise GrammarError(f"unknown dialect {dialect!r} (expected one of: {', '.join(DIALECTS)})")
    return resources.files(__name__).joinpath(GRAMMAR_FILES[syntax, dialect]).read_text(encoding="utf-8")


__all__ = ["grammar", "GrammarError", "SYNTAXES", "DIALECTS", "GRAMMAR_FILES", "START_RULES"]
