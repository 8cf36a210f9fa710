"""One batch worker: load → gate → sandbox for each program of a chunk, with per-worker caches.

In: a `WorkerConfig` (limits, tier, gate on/off, the store path, the default conditioning
vector, …) once per worker, then chunks of items `(index, program, input)`.
Out: one `BatchResult` per item — a `SandboxResult` (every field of runtime.md §5) plus the
item's `index`, the caller's `id`, the `stage` that decided it (`parse`, `gate`, `run`,
`worker`) and the gate's `diagnostics`. A worker never raises for anything a program does.

Per-worker state (reused across every program the worker runs): one closure/native `Engine`
(compiled programs and callees, decoded Matrix/Norm planes), the store opened once
read-only, the default conditioning vector converted once. The serial backend, the process
pool (`pool.py`) and the Ray actors (`ray_backend.py`) all run `Worker.run_chunk`.
"""

from __future__ import annotations

import re
from os import PathLike, fspath
from dataclasses import dataclass, field
from typing import Any, Callable

from nda.core import errors as E
from nda.core import ir
from nda.core.errors import NdaError
from nda.runtime.state import Limits
from nda.sandbox.runner import SandboxResult

STAGES = ("input", "parse", "gate", "run", "worker")
TIMING_FIELDS = ("elapsed_us", "compile_us", "run_us")  # differ between runs, never compared

_REF = re.compile(r"[A-Za-z0-9_.:/@+\-]+")  # a stored hash, hash prefix or name; or a file path


class BatchResult(SandboxResult):
    """A `SandboxResult` for one program of a batch, plus where it sits in the batch.

    `index`: position in the input (0-based); `id`: the caller's id (`nda batch` JSONL ids,
    else None); `stage`: what decided the result — `input` (a bad job line or input vector),
    `parse` (front end or decoder), `gate` (static validation; nothing ran; the first refusing
    finding's code),
    `run` (the sandbox ran it), `worker` (the worker process died while running it);
    `diagnostics`: the gate's or front end's findings as dicts (`Diagnostic.to_dict`); a run
    failure has none (`error_node` is not kept: locating it may need a second run).
    `program_hash` is the program's H2 (hex), "" when it did not parse.
    Picklable (slots only) and JSON-able (`to_dict`).
    """

    __slots__ = ("index", "id", "stage", "diagnostics", "encoded")

    def __init__(self, index: int = 0, tier: int = 0):
        super().__init__(tier)
        self.index = index
        self.id = None
        self.stage = "run"
        self.diagnostics: list = []
        self.encoded: tuple | None = None   # `keep_program`: (binary v2, source names, signatures)

    @classmethod
    def from_sandbox(cls, res: SandboxResult, index: int) -> "BatchResult":
        out = cls.__new__(cls)
        for k in SandboxResult.__slots__:
            setattr(out, k, getattr(res, k))
        out.index, out.id, out.stage, out.diagnostics, out.encoded = index, None, "run", [], None
        return out

    @classmethod
    def failure(cls, index: int, stage: str, code: str, message: str, *, tier: int = 0,
                panicked: bool = False, diagnostics=(), program_hash: str = "") -> "BatchResult":
        r = cls(index, tier)
        r.stage, r.error_code, r.error, r.panicked = stage, code, message, panicked
        r.diagnostics = list(diagnostics)
        r.program_hash = program_hash
        return r

    def to_dict(self, tier_as_name: bool = True) -> dict:
        d = super().to_dict(tier_as_name=tier_as_name)
        d["index"], d["id"], d["stage"] = self.index, self.id, self.stage
        d["ok"] = self.is_success()
        d["diagnostics"] = list(self.diagnostics)
        return d

    def __repr__(self) -> str:
        return (f"BatchResult(index={self.index}, id={self.id!r}, stage={self.stage!r}, "
                + super().__repr__()[len("SandboxResult("):])

    def comparable(self) -> tuple:
        """Everything but timing and the tier that ran (with tier auto, it depends on what a
        worker compiled before): equal for the same program on any backend."""
        return (self.index, self.id, self.stage, self.program_hash,
                tuple(map(repr, self.diagnostics)), self.fuel_used) + self.observable()


@dataclass(frozen=True)
class Source:
    """Program text with its syntax: `kind` is "sexpr", "text" or "auto" (detected: S-expression
    when the first character that is not blank or comment is "("); `file` names it in
    diagnostics."""

    text: str
    kind: str = "auto"
    file: str | None = None


@dataclass
class WorkerConfig:
    """Everything a worker needs, sent once per worker (picklable)."""

    limits: Limits = field(default_factory=Limits)
    tier: str = "auto"
    gate: bool = True
    store_path: str | None = None
    default_input: Any = None          # float32 array, or None for 896 ones
    optimize: bool = True
    collect_kind_counts: bool = False
    keep_program: bool = False         # attach the binary v2 program (for `nda batch --commit`)
    hook: Callable | None = None       # testing only: called as hook(index, program) first


WORKER_GC_GEN0 = 10_000  # allocations between young collections in a worker process (CPython: 700)


def settle_worker_process() -> None:
    """Tune a dedicated worker process (pool worker or Ray actor; never the caller's process) once its
    `Worker` is built: a program's IR is thousands of short-lived acyclic objects, freed by
    reference counting when the program is done, but at the default threshold the cyclic GC
    walks them every 700 allocations (~7 % of a worker's time on 100-node programs; ~1 % at
    this threshold)."""
    import gc

    gc.set_threshold(WORKER_GC_GEN0, *gc.get_threshold()[1:])


def default_workers() -> int:
    """The cores this process may run on."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def detect_syntax(text: str) -> str:
    """"sexpr" or "text" for program text: the rule of `nda run -` (`pipeline.load.guess_kind`)."""
    from nda.pipeline.load import guess_kind

    return guess_kind(text)


class Worker:
    """Runs programs with per-worker caches (see the module docstring)."""

    def __init__(self, config: WorkerConfig, store=None):
        from nda.sandbox.runner import resolve_tier
        from nda.tiers.closure import Engine

        self.config = config
        self.limits = config.limits
        self.tier = config.tier
        self.tier_code = {"interp": 0, "closure": 1, "native": 2}[resolve_tier(config.tier)]
        self.engine = Engine()
        self._own_store = store is None and config.store_path is not None
        if store is None and config.store_path is not None:
            from nda.store.sitemap import SiteMap

            store = SiteMap.open(config.store_path, read_only=True)
        self.store = store
        self.default_input = config.default_input
        self.input_len = 896 if config.default_input is None else len(config.default_input)

    def close(self) -> None:
        if self._own_store and self.store is not None:
            self.store.close()
            self.store = None

    # -- one program ---------------------------------------------------------------------------

    def run_chunk(self, items) -> list:
        run_one = self.run_one
        return [run_one(*it) for it in items]

    def run_one(self, index: int, program, inp=None, item_id=None) -> BatchResult:
        try:
            if self.config.hook is not None:
                self.config.hook(index, program)
            res = self._run(index, program, inp)
        except Exception as e:  # a bug in a front end, the gate or here: this program only
            res = BatchResult.failure(index, "worker", E.INTERNAL, f"panic: {type(e).__name__}: {e}",
                                      tier=self.tier_code, panicked=True)
        res.id = item_id
        return res

    def _run(self, index: int, program, inp) -> BatchResult:
        from nda.sandbox.runner import forget_program, run

        if isinstance(program, BatchResult):  # an input problem found by the caller
            program.index, program.tier = index, self.tier_code
            return program
        try:
            seq, resolver, linked, (names, sigs) = self._load(program)
        except _Unsupported as e:
            return BatchResult.failure(index, "input", e.code, e.message, tier=self.tier_code)
        except NdaError as e:
            return self._failure(index, "parse", e)
        except Exception as e:  # a front end that crashed: report it as a panic, go on
            return BatchResult.failure(index, "parse", E.INTERNAL, f"panic: {type(e).__name__}: {e}",
                                       tier=self.tier_code, panicked=True)
        input_len = self.input_len if inp is None else len(inp)
        if self.config.gate:
            rejected = self._gate(index, seq, linked, input_len)
            if rejected is not None:
                return rejected
        res = run(seq, self.default_input if inp is None else inp, store=resolver, limits=self.limits,
                  tier=self.tier, optimize=self.config.optimize,
                  collect_kind_counts=self.config.collect_kind_counts, engine=self.engine)
        if isinstance(program, (str, bytes, bytearray, memoryview, Source, PathLike)):
            forget_program(seq)  # parsed here, never run again: the sandbox need not hold it
        out = BatchResult.from_sandbox(res, index)
        out.program_hash  # noqa: B018 — computed now: the result must not pin the program (below)
        # the run's program facts, hasher and failing node refer to the program's IR: a batch
        # result keeps none of them, so that collecting results does not keep every program
        # alive (memory, and the cyclic GC walking them all: ~30 % of serial time at 4,000)
        out._info = out._hasher = out.error_node = None
        if self.config.keep_program and out.is_success():
            out.encoded = (_encode(seq, linked), tuple(sorted(set(names.values()))), sigs)
        return out

    def _failure(self, index: int, stage: str, e: NdaError) -> BatchResult:
        diags = getattr(e, "diagnostics", None) or (e.diagnostic(),)
        return BatchResult.failure(index, stage, e.code, e.message, tier=self.tier_code,
                                   diagnostics=[d.to_dict() for d in diags])

    def _gate(self, index: int, seq, linked, input_len: int) -> BatchResult | None:
        from nda.core.hashing import program_hash
        from nda.pipeline.commit import static_findings

        try:
            diags = [f.diagnostic for f in static_findings(seq, linked, input_len=input_len,
                                                           limits=self.limits, store=self.store)]
        except NdaError as e:
            diags = list(getattr(e, "diagnostics", None) or (e.diagnostic(),))
        blocking = E.refusals(diags)  # as `nda run`: a finding about a limit does not stop the run
        if not blocking:
            return None
        return BatchResult.failure(index, "gate", blocking[0].code, f"validation: {blocking[0].message}",
                                   tier=self.tier_code, diagnostics=[d.to_dict() for d in diags],
                                   program_hash=program_hash(seq).hex())

    def _load(self, program):
        """→ (top-level sequence, resolver, linked module or None, (names, signatures)) for any
        program form."""
        from nda.pipeline import load

        store = self.store
        if isinstance(getattr(program, "loaded", None), load.Loaded):  # nda.Program
            program = program.loaded
        if isinstance(program, PathLike):
            return _parts(load.load_path(fspath(program), store))
        if isinstance(program, Source):
            kind = detect_syntax(program.text) if program.kind == "auto" else program.kind
            return _parts(load.load_text(program.text, kind, store, program.file))
        if isinstance(program, str):
            if _REF.fullmatch(program.strip() or "?"):
                return _parts(load.load_any(program.strip(), store))
            return _parts(load.load_text(program, detect_syntax(program), store))
        if isinstance(program, (bytes, bytearray, memoryview)):
            return _parts(load.load_bytes(bytes(program), store))
        if isinstance(program, load.Loaded):
            return _parts(program)
        from nda.core.link import LinkedModule

        if isinstance(program, ir.Module):
            return _parts(load.from_parts(None, program, {}, store))
        if isinstance(program, LinkedModule):
            from nda.core.link import MemoryResolver
            from nda.sandbox.runner import ChainResolver

            mem = MemoryResolver()
            mem.add_linked(program)
            return tuple(program.main_sequence()), ChainResolver(mem, store), program, ({}, {})
        if isinstance(program, ir.Node):
            return (program,), store, None, ({}, {})
        unit_module = getattr(program, "module", None)
        if isinstance(unit_module, ir.Module):  # sexpr.SexprUnit
            return _parts(load.from_parts(None, unit_module, {}, store))
        seq = getattr(program, "sequence", None)
        if seq is not None:  # sexpr.SexprUnit, or any object holding a top-level sequence
            return (tuple(seq), getattr(program, "resolver", store) or store, getattr(program, "module", None),
                    (dict(getattr(program, "names", None) or {}), {}))
        if isinstance(program, (tuple, list)) and all(isinstance(n, ir.Node) for n in program):
            return tuple(program), store, None, ({}, {})
        raise _Unsupported(unsupported_message(program), E.INPUT_INVALID)


class _Unsupported(NdaError):
    pass


def unsupported_message(program) -> str:
    return (f"cannot run a {type(program).__name__} (expected program text, Source, a stored name or "
            "hash, a file path, binary v2 bytes, a Loaded program, IR nodes or a module)")


def _parts(loaded) -> tuple:
    return (tuple(loaded.sequence), loaded.resolver, loaded.module,
            (loaded.names, dict(getattr(loaded, "signatures", None) or {})))


def _encode(seq, linked) -> bytes:
    from nda.core.binary_v2 import encode_module, encode_program

    return encode_module(linked) if linked is not None else encode_program(seq)


__all__ = ["BatchResult", "Source", "Worker", "WorkerConfig", "detect_syntax", "default_workers", "STAGES", "TIMING_FIELDS",
           "settle_worker_process"]
