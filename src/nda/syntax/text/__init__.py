"""The NDA text front end: `.nda` source ⇄ `nda.core.ir.Module`.

In: NDA text (`language.md` §4) for `parse_text`; a text-expressible `Module` (plus a
name_hash → name mapping) for `print_text`.
Out: a `Module` of `Def(name, Scope(…))` with `NamedRef` call targets (`nda.core.link.link_module`
resolves them), or a `ParseError` listing every diagnostic; text that parses back to an equal
Module, or an `InexpressibleError` naming the node kind that has no text form.
"""

from nda.syntax.text.lexer import KEYWORDS, LexError, Token, tokenize
from nda.syntax.text.lower import MAX_PLANE_BYTES
from nda.syntax.text.parser import MAX_NESTING, parse_text, parse_text_full, parse_text_with_names
from nda.syntax.text.printer import (
    InexpressibleError, UnknownNameError, check_text_expressible, is_text_expressible, print_text,
    print_text_nodes,
)

__all__ = [
    "KEYWORDS", "LexError", "Token", "tokenize", "MAX_PLANE_BYTES", "MAX_NESTING", "parse_text",
    "parse_text_with_names", "parse_text_full", "InexpressibleError", "UnknownNameError", "check_text_expressible",
    "is_text_expressible", "print_text", "print_text_nodes",
]
