"""The text form of an opcode token stream: parse, format and verify (formats.md §5).

In: text such as `BUDGET:32 COND:896 SCOPE MATRIX:128 NORM INT:5 END_SCOPE ROOT:<64 hex>`
(names case-insensitive; INT and MATRIX payloads decimal, CALL and ROOT 64 hex digits).
Out: `parse_stream` → `ParsedStream` (headers, items, spans), `format_stream` → text,
`verify_text` → the verified `TokenProgram`; every bad input is a `TokenStreamError` naming
the token index and its line:column. The state machine and verifier are in `nda.syntax.tokens`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from nda.core.errors import Span
from nda.core.ir import Op
from nda.syntax.tokens import (BAD_PAYLOAD, DEFAULT_CONDITIONING_LEN, SYNTAX, UNKNOWN_TOKEN, Tok, TokenProgram,
                     TokenStreamError, _HEX64, token_name, verify_stream)



@dataclass(frozen=True)
class ParsedStream:
    """The text form read back: headers (None when absent), items and their source spans."""

    budget: Optional[int]
    conditioning_len: Optional[int]
    items: tuple[tuple[int, Any], ...]
    spans: tuple[Span, ...]


_ITEM = re.compile(r"\S+")
_DEC = re.compile(r"-?[0-9]{1,20}\Z")
_NAMES: dict[str, int] = {op.name.upper(): int(op) for op in Op}  # LOOP, ENDSCOPE, …
_NAMES.update({t.name: int(t) for t in Tok})
_HEADERS = {"BUDGET": (0, (1 << 31) - 1), "COND": (1, 0xFFFF)}


def _positions(text: str):
    """(item, line, col) for each whitespace-separated item (1-based line / col in code points)."""
    line, line_start, last = 1, 0, 0
    for m in _ITEM.finditer(text):
        s = m.start()
        nl = text.count("\n", last, s)
        if nl:
            line += nl
            line_start = text.rfind("\n", 0, s) + 1
        last = s
        yield m.group(), line, s - line_start + 1


def parse_stream(text: str, file: str | None = None) -> ParsedStream:
    """Read the text form (see the module docstring) into items; syntax errors are positioned."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    if not isinstance(text, str):
        raise TokenStreamError(0, f"a stream's text form is a string, not {type(text).__name__}", SYNTAX)
    headers: dict[str, int] = {}
    items: list[tuple[int, Any]] = []
    spans: list[Span] = []
    for word, line, col in _positions(text):
        span = Span(line, col, line, col + len(word), file=file)
        i = len(items)
        head, sep, rest = word.partition(":")
        key = head.upper()
        if key in _HEADERS and sep:
            if items:
                raise TokenStreamError(i, f"header {key} must come before the first token", SYNTAX, span)
            if key in headers:
                raise TokenStreamError(i, f"duplicate header {key}", SYNTAX, span)
            lo, hi = _HEADERS[key]
            if not _DEC.match(rest) or not lo <= int(rest) <= hi:
                raise TokenStreamError(i, f"header {key} needs an integer in {lo}..{hi}, got {rest!r:.40}",
                                       SYNTAX, span)
            headers[key] = int(rest)
            continue
        if _DEC.match(head):
            tok = int(head)
        elif key in _NAMES:
            tok = _NAMES[key]
        else:
            raise TokenStreamError(i, f"unknown token {head!r:.40}", UNKNOWN_TOKEN, span)
        payload: Any = None
        if sep:
            if tok in (Tok.INT, Tok.MATRIX):
                if not _DEC.match(rest):
                    raise TokenStreamError(i, f"{token_name(tok)} payload {rest!r:.40} is not an integer",
                                           BAD_PAYLOAD, span)
                payload = int(rest)
            elif tok in (Tok.CALL, Tok.ROOT):
                if not _HEX64.match(rest):
                    raise TokenStreamError(i, f"{token_name(tok)} payload must be 64 hex digits, got "
                                              f"{rest!r:.80}", BAD_PAYLOAD, span)
                payload = bytes.fromhex(rest)
            else:
                payload = rest  # the verifier reports it as an extra payload
        items.append((tok, payload))
        spans.append(span)
    return ParsedStream(headers.get("BUDGET"), headers.get("COND"), tuple(items), tuple(spans))


def verify_text(text: str, claimed_root: Optional[bytes] = None, *, budget: Optional[int] = None,
                conditioning_len: Optional[int] = None,
                target_exists: Optional[Callable[[bytes], bool]] = None,
                file: str | None = None) -> TokenProgram:
    """`parse_stream` then `verify_stream`. A header must agree with an explicitly given
    `budget` / `conditioning_len`; either fills in for the other; COND defaults to 896."""
    p = parse_stream(text, file)
    for key, given, head in (("BUDGET", budget, p.budget), ("COND", conditioning_len, p.conditioning_len)):
        if given is not None and head is not None and given != head:
            raise TokenStreamError(0, f"header {key}:{head} differs from the expected {given}", SYNTAX)
    b = budget if budget is not None else p.budget
    c = conditioning_len if conditioning_len is not None else p.conditioning_len
    return verify_stream(p.items, claimed_root, budget=b,
                         conditioning_len=c if c is not None else DEFAULT_CONDITIONING_LEN,
                         target_exists=target_exists, spans=p.spans)


