"""Errors and diagnostics: one `Span`, one `Diagnostic`, one error hierarchy.

In: positions and messages produced by every stage (front ends, gate, tiers, store).
Out: typed exceptions that carry an error code (`runtime.md` §5) and, for front ends, a
`Span`; `Diagnostic` records rendered in exactly one place (`render_text` for people,
`render_json` / `Diagnostic.to_dict` for agents).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable

# Error codes of runtime.md §5 (the set is closed).
STACK_UNDERFLOW = "STACK_UNDERFLOW"
UNDEFINED_VARIABLE = "UNDEFINED_VARIABLE"
DIMENSION_MISMATCH = "DIMENSION_MISMATCH"
TYPE_ERROR = "TYPE_ERROR"
OUT_OF_BOUNDS = "OUT_OF_BOUNDS"
WHILE_LIMIT = "WHILE_LIMIT"
CALL_TARGET_NOT_FOUND = "CALL_TARGET_NOT_FOUND"
CALL_DEPTH = "CALL_DEPTH"
FUEL_EXHAUSTED = "FUEL_EXHAUSTED"
DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
MEMORY_LIMIT = "MEMORY_LIMIT"
OUTPUT_LIMIT = "OUTPUT_LIMIT"
INPUT_INVALID = "INPUT_INVALID"
PARSE_ERROR = "PARSE_ERROR"
DECODE_ERROR = "DECODE_ERROR"
VALIDATION_ERROR = "VALIDATION_ERROR"
INTERNAL = "INTERNAL"

ERROR_CODES = (
    STACK_UNDERFLOW, UNDEFINED_VARIABLE, DIMENSION_MISMATCH, TYPE_ERROR, OUT_OF_BOUNDS,
    WHILE_LIMIT, CALL_TARGET_NOT_FOUND, CALL_DEPTH, FUEL_EXHAUSTED, DEADLINE_EXCEEDED,
    MEMORY_LIMIT, OUTPUT_LIMIT, INPUT_INVALID, PARSE_ERROR, DECODE_ERROR, VALIDATION_ERROR,
    INTERNAL,
)

# Findings about a limit the run was given (not about the program itself): the sandbox enforces
# them exactly, so `nda run` runs such a program to report the exact error and counts instead
# of refusing it. Commit still refuses them (a stored program must run within its limits).
LIMIT_CODES = frozenset((FUEL_EXHAUSTED, DEADLINE_EXCEEDED, MEMORY_LIMIT, OUTPUT_LIMIT,
                         WHILE_LIMIT, CALL_DEPTH))


def refusals(diagnostics) -> list:
    """The error findings that stop a run before it starts: every error except a limit's."""
    return [d for d in diagnostics if d.severity == "error" and d.code not in LIMIT_CODES]


@dataclass(frozen=True, slots=True)
class Span:
    """A source position: 1-based line and column (code points), or a byte offset.

    `file` names the source; `end_line`/`end_col` are optional. Binary decoders set
    `offset` (byte offset) and leave line/col at 0.

    `make_span` (the front ends' constructor, one call per node) leaves the slots of fields
    that keep their default unset; `__getattr__` answers those with the default, so every
    reader — attributes, equality, hash, repr, pickling, `dataclasses.replace` — sees the same
    six fields either way (decision P1 in docs/decisions.md).
    """

    line: int = 0
    col: int = 0
    end_line: int = 0
    end_col: int = 0
    offset: int | None = None
    file: str | None = None

    def __getattr__(self, name: str):
        """Only reached for a slot left unset by `make_span`: that field's default."""
        try:
            return _SPAN_DEFAULTS[name]
        except KeyError:
            raise AttributeError(f"'Span' object has no attribute '{name}'") from None

    def __str__(self) -> str:
        where = self.file + ":" if self.file else ""
        if self.line:
            return f"{where}{self.line}:{self.col}"
        if self.offset is not None:
            return f"{where}offset {self.offset}"
        return where.rstrip(":") or "?"

    def to_dict(self) -> dict:
        d: dict = {}
        if self.file is not None:
            d["file"] = self.file
        if self.line:
            d["line"] = self.line
            d["col"] = self.col
            if self.end_line:
                d["end_line"] = self.end_line
                d["end_col"] = self.end_col
        if self.offset is not None:
            d["offset"] = self.offset
        return d


_SPAN_DEFAULTS = {"line": 0, "col": 0, "end_line": 0, "end_col": 0, "offset": None, "file": None}
_new_span = object.__new__
_span_line, _span_col, _span_end_line, _span_end_col, _span_file = (
    getattr(Span, f).__set__ for f in ("line", "col", "end_line", "end_col", "file"))


def make_span(line: int, col: int, file: str | None = None, end_line: int = 0, end_col: int = 0) -> Span:
    """A Span equal to `Span(line, col, end_line, end_col, file=file)`, built without the frozen
    dataclass's `__init__` and setting only the slots whose value is not the default (front
    ends make one per node: ~3x cheaper than `Span(...)`)."""
    sp = _new_span(Span)
    _span_line(sp, line)
    _span_col(sp, col)
    if file is not None:
        _span_file(sp, file)
    if end_line or end_col:
        _span_end_line(sp, end_line)
        _span_end_col(sp, end_col)
    return sp


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding: severity, error code, message, optional span and hint, and the stage that
    found it ("gate" for the gate's findings; None when the surrounding result says it)."""

    code: str
    message: str
    span: Span | None = None
    severity: str = "error"
    hint: str | None = None
    stage: str | None = None

    def to_dict(self) -> dict:
        d = {"severity": self.severity, "code": self.code, "message": self.message}
        if self.span is not None:
            d["span"] = self.span.to_dict()
        if self.hint:
            d["hint"] = self.hint
        if self.stage is not None:
            d["stage"] = self.stage
        return d


class NdaError(Exception):
    """Base of every error the toolchain raises on purpose. Carries `code` and `message`."""

    code: str = INTERNAL

    def __init__(self, message: str, code: str | None = None, span: Span | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.span = span

    def diagnostic(self) -> Diagnostic:
        return Diagnostic(self.code, self.message, self.span)

    def __str__(self) -> str:
        return self.message


class NdaRuntimeError(NdaError):
    """A run-time failure of an NDA program (any code of runtime.md §5)."""


class ParseError(NdaError):
    """A front-end failure with a position (text, S-expression, triples, tokens)."""

    code = PARSE_ERROR

    def __init__(self, message: str, span: Span | None = None, diagnostics: Iterable[Diagnostic] = ()):
        super().__init__(message, PARSE_ERROR, span)
        bare = message
        if span is not None and span.line and message.startswith(f"{span.line}:{span.col}: "):
            bare = message[len(f"{span.line}:{span.col}: "):]
        self.diagnostics = tuple(diagnostics) or (Diagnostic(PARSE_ERROR, bare, span),)


class DecodeError(NdaError):
    """A binary decoder failure; `offset` is the byte offset where it was found."""

    code = DECODE_ERROR

    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message, DECODE_ERROR, Span(offset=offset) if offset is not None else None)
        self.offset = offset


class ValidationError(NdaError):
    """The gate rejected a program; `diagnostics` lists every finding."""

    code = VALIDATION_ERROR

    def __init__(self, message: str, diagnostics: Iterable[Diagnostic] = ()):
        super().__init__(message, VALIDATION_ERROR)
        self.diagnostics = tuple(diagnostics)


class UsageError(NdaError):
    """Bad invocation or unreadable input (CLI exit status 2)."""

    code = INPUT_INVALID


class StoreError(NdaError):
    """The store could not do what was asked (missing entry, corrupt file, …)."""

    code = INTERNAL


# ---------------------------------------------------------------------------------------------
# Rendering (the only place diagnostics become text or JSON)

def render_text(diags: Iterable[Diagnostic], source: str | None = None) -> str:
    """`file:line:col: CODE: message`, then the source line and a caret when known."""
    lines = source.splitlines() if source is not None else None
    out: list[str] = []
    for d in diags:
        where = f"{d.span}: " if d.span is not None else ""
        out.append(f"{where}{d.code}: {d.message}")
        if lines is not None and d.span is not None and 1 <= d.span.line <= len(lines):
            text = lines[d.span.line - 1]
            out.append("    " + text)
            width = 1
            if d.span.end_line == d.span.line and d.span.end_col > d.span.col:
                width = d.span.end_col - d.span.col
            out.append("    " + " " * max(0, d.span.col - 1) + "^" * width)
        if d.hint:
            out.append(f"    hint: {d.hint}")
    return "\n".join(out)


def render_json(diags: Iterable[Diagnostic]) -> str:
    return json.dumps({"diagnostics": [d.to_dict() for d in diags]}, ensure_ascii=False)


def failure(code: str, message: str, diagnostics: Iterable[Diagnostic | dict] = (), **extra) -> dict:
    """The one failure object of machine output (`nda … --json` and the MCP tools):
    `{"ok": false, "error_code": code, "error": message, "diagnostics": [...], **extra}`, each
    diagnostic `Diagnostic.to_dict()` ({severity, code, message, span?, hint?}); with no
    diagnostics given, one is made from `code` and `message`."""
    diags = [d.to_dict() if isinstance(d, Diagnostic) else dict(d) for d in diagnostics]
    return {"ok": False, "error_code": code, "error": message,
            "diagnostics": diags or [Diagnostic(code, message).to_dict()], **extra}


def error_failure(err: NdaError, **extra) -> dict:
    """`failure` for a raised `NdaError` (its own diagnostics when it carries several)."""
    diags = getattr(err, "diagnostics", None) or (err.diagnostic(),)
    return failure(err.code, err.message, diags, **extra)
