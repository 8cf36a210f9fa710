"""Lexer of the NDA text syntax (`language.md` §4.1).

In: source text (`str`, or `bytes` decoded as UTF-8 with replacement) and an optional file name.
Out: a list of `Token`s ending with one `EOF` token, or a `LexError` for the first lexical error
(the first error aborts, `divergences.md` #31). Positions are 1-based line:column counting
Unicode code points; `end_col` is exclusive.

Decisions where §4.1 is silent:
- whitespace is any character for which `str.isspace()` holds; only `\\n` starts a new line;
- a numeric literal immediately followed by an identifier character is an error
  (`12ab`, `0xfg`, `0b1` → `Invalid integer literal`; `1e`, `1.5e+`, `2e5x`, `1_e5` →
  `Invalid float literal`);
- INT tokens carry the i32 value (`value`) and the raw unsigned value (`raw`, < 2^32);
- unprintable characters are shown escaped in `Unexpected character '…'` (e.g. `'\\x00'`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from nda.core.errors import Span

KEYWORDS = frozenset(
    "fn let loop while if else return break print vec matrix norm int float add silu negate "
    "abs reduce_sum sqrt sin cos exp dot gemv peek poke".split()
)

# Token kinds: keywords and operators use their own text as kind; the others are upper case.
IDENT, INT, FLOAT, STRING, EOF = "IDENT", "INT", "FLOAT", "STRING", "EOF"

OPERATORS = ("== != <= >= << >> -> = + - * / % & | ^ ~ < > ( ) { } [ ] , ; : .").split()


@dataclass(slots=True)
class Token:
    kind: str
    text: str
    line: int
    col: int
    end_line: int
    end_col: int
    value: object = None  # INT: i32; FLOAT: f32 bit pattern (u32); STRING: decoded text
    raw: int = 0  # INT only: the unsigned value as written (< 2^32)

    def span(self, file: str | None = None) -> Span:
        return Span(self.line, self.col, self.end_line, self.end_col, file=file)


class LexError(Exception):
    """The first lexical error: `message` without position, `line`/`col` where it starts."""

    def __init__(self, message: str, line: int, col: int):
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col


# Whitespace and comments are skipped by an atomic prefix (no backtracking into a comment),
# then one token is matched; `end` matches only at the end of the input.
_SKIP = r"(?>(?:\s|//[^\n]*)*)"
_SKIP_RE = re.compile(_SKIP)
_TOKEN_RE = re.compile(
    _SKIP + r"""(?:
        (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>==|!=|<=|>=|<<|>>|->|[=+\-*/%&|^~<>(){}\[\],;:.])
      | (?P<num>0[xX][0-9a-fA-F_]*
              | [0-9]+\.[0-9]+(?:[eE][+-]?[0-9]*)?
              | [0-9]+[eE][+-]?[0-9]*
              | [0-9][0-9_]*)
      | (?P<str>")
      | (?P<end>\Z))
    """,
    re.VERBOSE,
)
_STRING_BODY_RE = re.compile(r'(?:[^"\\]|\\.)*', re.DOTALL)
_BAD_ESCAPE_RE = re.compile(r'\\([^nt\\"0])', re.DOTALL)
_IDENT_CHAR_RE = re.compile(r"[A-Za-z0-9_]")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "0": "\0"}
_ESCAPE_RE = re.compile(r'\\([nt\\"0])')

_F32_MAX_HALFWAY = 2.0**128 - 2.0**103  # values at or above round to +inf


def describe_char(ch: str) -> str:
    """A character as shown inside quotes in messages (escaped when unprintable)."""
    if ch.isprintable():
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def _as_real(f: np.float32) -> float:
    return math.copysign(2.0**128, float(f)) if np.isinf(f) else float(f)


def nearest_f32_bits(text: str) -> int:
    """Bit pattern of the f32 nearest to the decimal `text` (correctly rounded, ties to even).

    Goes through the correctly rounded double and repairs the rare double-rounding case
    (the double lands exactly on the midpoint of two f32s) with exact rational arithmetic.
    """
    d = float(text)
    with np.errstate(over="ignore"):
        f = np.float32(d)
        fd = _as_real(f)
        if fd == d or math.isinf(d):
            return int(np.array(f, dtype=np.float32).view(np.uint32))
        nb = np.nextafter(f, np.float32(np.inf) if d > fd else np.float32(-np.inf))
    nbd = _as_real(nb)
    mid = (fd + nbd) / 2
    if mid == d and len(text) < 2000 and _exp_small(text):
        exact = Fraction(text)
        if exact != Fraction(mid) and abs(exact - Fraction(nbd)) < abs(exact - Fraction(fd)):
            f = nb
    return int(np.array(f, dtype=np.float32).view(np.uint32))


def _exp_small(text: str) -> bool:
    m = re.search(r"[eE][+-]?0*([0-9]+)$", text)
    return m is None or len(m.group(1)) <= 4


def _number(src: str, text: str, start: int, end: int, line: int, col: int) -> Token:
    nxt = src[end] if end < len(src) else ""
    if len(text) <= 9 and text.isdigit() and not (nxt and _IDENT_CHAR_RE.match(nxt)):  # fast path
        v = int(text)
        return Token(INT, text, line, col, line, col + len(text), v, v)
    is_hex = text[:2] in ("0x", "0X")
    is_float = not is_hex and ("." in text or "e" in text or "E" in text)
    if is_float:
        if not text[-1].isdigit() or _IDENT_CHAR_RE.match(nxt):
            raise LexError("Invalid float literal", line, col)
        return Token(FLOAT, text, line, col, line, col + len(text), nearest_f32_bits(text))
    if nxt and _IDENT_CHAR_RE.match(nxt):
        msg = "Invalid float literal" if nxt in "eE" and not is_hex else "Invalid integer literal"
        raise LexError(msg, line, col)
    digits = (text[2:] if is_hex else text).replace("_", "").lstrip("0")
    if is_hex and not text[2:].replace("_", ""):
        raise LexError("Invalid integer literal", line, col)
    if len(digits) > (8 if is_hex else 10):
        raise LexError("Invalid integer literal", line, col)
    raw = int(digits, 16 if is_hex else 10) if digits else 0
    if raw >= 2**32:
        raise LexError("Invalid integer literal", line, col)
    value = raw - 2**32 if raw >= 2**31 else raw
    return Token(INT, text, line, col, line, col + len(text), value, raw)


def tokenize(source: str | bytes) -> list[Token]:
    """All tokens of `source`, ending with EOF; raises `LexError` at the first error."""
    src = source.decode("utf-8", errors="replace") if isinstance(source, (bytes, bytearray)) else source
    toks: list[Token] = []
    append = toks.append
    pos, n = 0, len(src)
    line, line_start = 1, 0
    match = _TOKEN_RE.match
    count = src.count
    while True:
        m = match(src, pos)
        start = _SKIP_RE.match(src, pos).end() if m is None else m.start(m.lastgroup)
        if start != pos:
            nl = count("\n", pos, start)
            if nl:
                line += nl
                line_start = src.rindex("\n", pos, start) + 1
        col = start - line_start + 1
        if m is None:
            ch = src[start]
            if ch == "!":
                raise LexError("Unexpected '!'", line, col)
            raise LexError(f"Unexpected character '{describe_char(ch)}'", line, col)
        kind = m.lastgroup
        end = m.end()
        if kind == "ident":
            text = m.group(kind)
            append(Token(text if text in KEYWORDS else IDENT, text, line, col, line, col + len(text)))
        elif kind == "op":
            text = m.group(kind)
            append(Token(text, text, line, col, line, col + len(text)))
        elif kind == "num":
            append(_number(src, m.group(kind), start, end, line, col))
        elif kind == "end":
            break
        else:  # string
            body = _STRING_BODY_RE.match(src, start + 1)
            bend = body.end()
            bad = _BAD_ESCAPE_RE.search(src, start + 1, bend)
            if bad is not None:
                bpos = bad.start()
                bline = line + count("\n", start, bpos)
                bcol = bpos - (src.rfind("\n", 0, bpos) + 1) + 1 if bline != line else bpos - line_start + 1
                raise LexError(f"Unknown escape sequence '\\{describe_char(bad.group(1))}'", bline, bcol)
            if bend >= n or src[bend] != '"':
                raise LexError("Unterminated string literal", line, col)
            end = bend + 1
            text = src[start:end]
            value = _ESCAPE_RE.sub(lambda e: _ESCAPES[e.group(1)], src[start + 1:bend])
            nl = text.count("\n")
            sline, scol = line, col
            if nl:
                line += nl
                line_start = src.rindex("\n", start, end) + 1
            append(Token(STRING, text, sline, scol, line, end - line_start + 1, value))
        pos = end
    col = n - line_start + 1
    append(Token(EOF, "", line, col, line, col))
    return toks


def describe_token(tok: Token) -> str:
    """A token as people read it in messages (never an internal kind name)."""
    k = tok.kind
    if k == EOF:
        return "end of input"
    if k == IDENT:
        return f"identifier '{_clip(tok.text)}'"
    if k == INT:
        return f"integer literal {_clip(tok.text)}"
    if k == FLOAT:
        return f"float literal {_clip(tok.text)}"
    if k == STRING:
        return "string literal"
    if k in KEYWORDS:
        return f"keyword '{k}'"
    return f"'{k}'"


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
