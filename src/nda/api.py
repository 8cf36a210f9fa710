"""The public Python API: parse, check, run and store NDA programs.

In: source text (S-expression or the text syntax), binary v2 bytes, a path, IR nodes, or a
`Program`; an input vector (a list or a numpy array); `Limits`; a `Store`.
Out: `Program` (the parsed, linked program with its names and content address),
`CheckResult` (`.ok`, `.diagnostics`), `Result` (every field of a run, `.output` as a numpy
float32 array beside `.output_vec`), and `Store` (the SiteMap, as a context manager, with
`.commit`, `.get` and `.log`).

Every function here is a thin chain of the pipeline's stages (`nda.pipeline.load`, the gate in
`nda.analysis`, `nda.sandbox.run`, `nda.pipeline.commit`); nothing is cached globally except
what the tiers cache by content.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from nda.core import ir
from nda.core.errors import Diagnostic, UsageError
from nda.pipeline.load import (
    EXTENSIONS, Loaded, format_loaded, from_parts, guess_kind, load_bytes, load_path, load_text,
)
from nda.runtime.state import Limits
from nda.sandbox.runner import SandboxResult
from nda.store.sitemap import SiteMap

#: The result of a run (every field of the runtime's result; `.output` is a float32 array).
Result = SandboxResult

KINDS = ("sexpr", "text", "binary")


# ---------------------------------------------------------------------------------------------
# Programs


@dataclass(frozen=True, eq=False)
class Program:
    """A parsed and linked program: what `nda.parse` returns and every other call accepts.

    `sequence` is the top-level sequence that runs (for a module: `main`'s body); `module` the
    linked module (None for a plain sequence); `names` the identifiers the source spelt
    (name hash → name); `kind` the source form; `source` the source text when there is one.
    """

    loaded: Loaded = field(repr=False)

    @property
    def sequence(self) -> tuple:
        return self.loaded.sequence

    @property
    def module(self):
        return self.loaded.module

    @property
    def names(self) -> dict:
        return self.loaded.names

    @property
    def kind(self) -> str:
        return self.loaded.kind

    @property
    def source(self) -> str | None:
        return self.loaded.source

    @property
    def file(self) -> str | None:
        return self.loaded.path

    @property
    def hash(self) -> str:
        """The program's content address (H2 of its top-level sequence), 64 hex digits."""
        from nda.core.hashing import program_hash

        return program_hash(self.sequence).hex()

    @property
    def functions(self) -> list[str]:
        """Names of the module's functions (empty for a plain sequence)."""
        return [] if self.module is None else [d.name for d in self.module.defs]

    def to_sexpr(self) -> str:
        return format_loaded(self.loaded, "sexpr")

    def to_text(self) -> str:
        """The text syntax (raises `InexpressibleError` for kinds it cannot spell)."""
        return format_loaded(self.loaded, "text")

    def to_binary(self) -> bytes:
        """Binary v2 (a program or module container)."""
        return format_loaded(self.loaded, "binary")

    def to_dot(self) -> str:
        """Graphviz DOT text of the program: nodes by kind, control edges, calls by name."""
        from nda.syntax.draw import program_dot

        return program_dot(self.loaded.raw_module or self.sequence, self.names)

    def to_svg(self) -> str:
        """SVG of the program (needs Graphviz's `dot`; `PictureToolMissing` names the install)."""
        from nda.syntax.draw import program_svg

        return program_svg(self.loaded.raw_module or self.sequence, self.names)

    def _repr_svg_(self) -> str | None:
        """Notebook display; without Graphviz the notebook falls back to the text repr."""
        from nda.syntax.draw import PictureToolMissing

        try:
            return self.to_svg()
        except PictureToolMissing:
            return None

    def __repr__(self) -> str:
        fns = f", functions={self.functions}" if self.module is not None else ""
        return f"Program(kind={self.kind!r}, nodes={len(self.sequence)}{fns}, hash={self.hash[:16]}…)"


def _guess_kind(source: str, file: str | None) -> str:
    if file is not None:
        ext = Path(file).suffix.lower()
        if ext in EXTENSIONS:
            return EXTENSIONS[ext]
    return guess_kind(source)


def parse(source, kind: str | None = None, *, file: str | None = None, store=None) -> Program:
    """Parse a program.

    `source` is source text (`str`), binary v2 (`bytes`), or a path (`os.PathLike`, read from
    disk). `kind` is "sexpr", "text" or "binary"; when None it is guessed: bytes are binary, a
    path or `file=` with a known suffix (.sexpr, .nda, .ndab) decides, otherwise a source that
    starts with "(" is an S-expression and anything else the text syntax. `file` names the
    source in diagnostics. Bad input raises a typed error (`ParseError`, `DecodeError`,
    `UsageError`) that names the position. With a `store`, calls to functions the source does
    not define resolve by name to the store's bound functions (`sumsq(10)`, `(call @sumsq)`);
    an unbound one is a `ValidationError` naming it, with "did you mean" over the store's names.
    """
    sm = store.sitemap if isinstance(store, Store) else store
    if kind is not None and kind not in KINDS:
        raise UsageError(f"unknown source kind {kind!r} (expected one of {', '.join(KINDS)})")
    if isinstance(source, os.PathLike):
        path = os.fspath(source)
        if kind is None:
            return Program(load_path(path, sm))
        data = Path(path).read_bytes()
        source, file = (data if kind == "binary" else data.decode("utf-8", errors="replace")), file or path
    if isinstance(source, (bytes, bytearray, memoryview)):
        if kind not in (None, "binary"):
            raise UsageError(f"bytes are binary v2; cannot parse them as {kind}")
        return Program(load_bytes(bytes(source), sm, file=file))
    if not isinstance(source, str):
        raise UsageError(f"cannot parse a {type(source).__name__} (expected str, bytes or a path)")
    kind = kind or _guess_kind(source, file)
    if kind == "binary":
        raise UsageError("binary programs are bytes, not str")
    return Program(load_text(source, kind, sm, file=file))


def _as_program(program, store=None) -> Program:
    """A Program from a Program, source text, bytes, a path, IR nodes or a Module (source is
    parsed with `store`, so it may call the store's functions by name)."""
    if isinstance(program, Program):
        return program
    if isinstance(program, (str, bytes, bytearray, memoryview, os.PathLike)):
        return parse(program, store=store)
    if isinstance(program, Loaded):
        return Program(program)
    if isinstance(program, ir.Module):
        return Program(from_parts(None, program, {}))
    if isinstance(program, ir.Node):
        return Program(from_parts((program,), None, {}))
    if isinstance(program, Sequence) and all(isinstance(n, ir.Node) for n in program):
        return Program(from_parts(tuple(program), None, {}))
    raise UsageError(f"not a program: {type(program).__name__} (expected a Program, source text, "
                     "bytes, a path, IR nodes or an ir.Module)")


def _with_store(p: Program, store) -> Loaded:
    """`p`'s Loaded with calls resolved through `store` as well (None: as parsed)."""
    if store is None:
        return p.loaded
    sm = store.sitemap if isinstance(store, Store) else store
    ld = p.loaded
    if ld.module is not None:
        return from_parts(None, ld.raw_module, ld.names, sm, ld.source, ld.path, ld.kind)
    return Loaded(ld.sequence, sm, None, None, ld.names, ld.source, ld.path, ld.kind)


# ---------------------------------------------------------------------------------------------
# Checking


@dataclass(frozen=True)
class CheckResult:
    """The gate's verdict: `ok` (no error finding) and every finding (`Diagnostic`s with code,
    message, span and hint; warnings included)."""

    ok: bool
    diagnostics: tuple[Diagnostic, ...]
    stage: str = "gate"

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def to_dict(self) -> dict:
        return {"ok": self.ok, "stage": self.stage, "diagnostics": [d.to_dict() for d in self.diagnostics]}


def check(program, *, input_len: int | None = None, limits: Limits | None = None,
          store=None) -> CheckResult:
    """Statically validate `program` without running it (the gate `nda check` applies).

    `input_len` is the conditioning width (None: unknown, shapes that depend on it are not
    checked); `limits` feed the provable-limit checks; call targets outside the program must
    exist in `store`. Source that does not parse gives `ok=False` with the parse diagnostics.
    """
    from nda.pipeline.check import gate_diagnostics
    from nda.core.errors import NdaError

    sm = store.sitemap if isinstance(store, Store) else store
    try:
        p = _as_program(program, sm)
    except UsageError:
        raise
    except NdaError as e:
        diags = tuple(getattr(e, "diagnostics", None) or (e.diagnostic(),))
        return CheckResult(False, diags, "parse")
    diags = tuple(gate_diagnostics(_with_store(p, sm), input_len=input_len,
                                   limits=limits or Limits(), store=sm))
    return CheckResult(not any(d.severity == "error" for d in diags), diags)


# ---------------------------------------------------------------------------------------------
# Running


def _as_input(input) -> np.ndarray:
    if input is None:
        return np.ones(896, dtype=np.float32)
    arr = np.asarray(input)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "fiub"):
        raise UsageError(f"input must be a one-dimensional list or array of numbers (got shape "
                         f"{arr.shape}, dtype {arr.dtype})")
    with np.errstate(over="ignore"):
        return arr.astype(np.float32)


def run(program, input=None, *, limits: Limits | None = None, tier: str = "auto",
        store=None) -> Result:
    """Run `program` in the sandbox and return its `Result`; never raises for a failing program.

    `program`: a Program, source text (S-expression or text syntax), binary bytes, a path or IR.
    Source that does not parse raises its typed error (nothing ran). `input`: the conditioning
    vector, a list or numpy array (default 896 ones). `tier`: "auto" (default), "interp",
    "closure" or "native". Calls resolve through the program's own functions, then `store`.
    The gate is not applied here (call `check` first, as `nda run` does).
    """
    from nda.sandbox.runner import run as sandbox_run

    p = _as_program(program, store)
    ld = _with_store(p, store)
    return sandbox_run(ld.sequence, _as_input(input), store=ld.resolver, limits=limits, tier=tier)


# ---------------------------------------------------------------------------------------------
# The store


class Store(SiteMap):
    """The SiteMap store with the program-level calls of the API.

    `with nda.Store.open("prog.db") as store: store.commit(program, message="…")`.
    """

    @property
    def sitemap(self) -> "Store":
        return self

    def commit(self, program, *, message: str = "", input=None, limits: Limits | None = None,
               name: str | None = None, namespace: str | None = None, tier: str = "auto"):
        """Gate, run on `input` (default 896 ones) and store `program` in one transaction.

        Source text may call the store's functions by name. Only the names asked for are
        bound: `name` binds the program, `namespace` the module's functions (except `main`) as
        `namespace.f` ("" binds bare names). → `CommitResult` (`.ok`, `.root`, `.reason`,
        `.diagnostics`, `.sandbox`, `.bindings` with any previous targets); a rejected
        program leaves the store unchanged."""
        from nda.core.errors import NdaError
        from nda.pipeline.commit import commit as commit_program, reject

        try:
            p = _as_program(program, self)
        except UsageError:
            raise
        except NdaError as e:
            return reject("gate", e.message, e.code, getattr(e, "diagnostics", ()) or (e.diagnostic(),))
        cond = None if input is None else _as_input(input)
        return commit_program(self, _with_store(p, self), cond, message=message,
                              limits=limits or Limits(), name=name, namespace=namespace, tier=tier)

    def get(self, ref: str) -> Program:
        """The stored program at `ref`: a bound name, a hash or a unique hash prefix."""
        from nda.pipeline.load import load_stored

        return Program(load_stored(self, ref))


__all__ = ["Program", "CheckResult", "Result", "Store", "Limits", "parse", "check", "run", "KINDS"]
