"""`run_many`: evaluate many programs at once — serially, on a process pool, or on Ray.

In: an iterable of programs (source text — S-expression or text syntax, detected —, `Source`,
a stored name/hash/prefix or a file path, binary v2 bytes, `pipeline.Loaded`, IR: a node, a
top-level sequence, an `ir.Module` or `link.LinkedModule`), optional conditioning vectors
(None → 896 ones; one vector → every program; else one per program), `Limits`, a tier, a
store (path or `SiteMap`), the number of workers, the backend, ordered or not.
Out: an iterator of `BatchResult` (a `SandboxResult` plus `index`, `id`, `stage`,
`diagnostics`), in input order (`ordered=True`) or as completed.

Per program, the same steps as `nda run`: load (front end / decoder / store), the gate's
static validation (`gate=True`, the default — a program the gate proves wrong is not run:
stage "gate", the first refusing finding's code, every finding in `diagnostics`; a finding
that only says a limit will be hit does not stop the run), then the sandbox. Nothing a
program does stops the batch: a parse error, a gate finding, a limit or a panic is that
program's result. Invalid *arguments* (an unknown tier or backend, a store that does not
exist) raise at once, before anything runs.

Backends: "serial" (this process; no pickling), "process" (`pool.ProcessPool`: `workers`
processes, default every core), "ray" (`ray_backend`, actors on the user's Ray instance).
Pool backends ship programs in chunks of `chunksize` (items are made picklable first: IR is
encoded to binary v2, a `Loaded` becomes its `Source` or stored ref). When a worker dies
(killed, out of memory, a crash in native code) it is replaced; the programs of its chunk are
retried one by one in fresh workers, and a program whose worker dies `retries + 1` times gets
`panicked=True`, error_code INTERNAL, stage "worker" (decisions.md B.2).
"""

from __future__ import annotations

import os
import re
from collections import deque
from typing import Iterable, Iterator

import numpy as np

from nda.batch.worker import (BatchResult, Source, Worker, WorkerConfig, default_workers,
                              unsupported_message)
from nda.core import errors as E
from nda.runtime.state import Limits

BACKENDS = ("serial", "process", "ray")
DEFAULT_CHUNK = 32


def run_many(programs: Iterable, inputs=None, *, limits: Limits | dict | None = None, tier: str = "auto",
             store=None, workers: int | None = None, backend: str = "process", ordered: bool = True,
             gate: bool = True, ids: Iterable | None = None, chunksize: int | None = None,
             retries: int = 1, optimize: bool = True, collect_kind_counts: bool = False,
             ray_address: str | None = None, start_method: str | None = None,
             keep_program: bool = False, default_input=None, _hook=None) -> Iterator[BatchResult]:
    """Run every program; yield one `BatchResult` each (see the module docstring).

    `store`: a path or an open `SiteMap`; workers open it read-only (one connection each).
    `ids`: optional ids paired with the programs (copied into `BatchResult.id`).
    `keep_program`: attach each successful program's binary v2 form (`BatchResult.encoded`).
    `default_input`: the vector for programs whose own input is None (default 896 ones).
    `_hook`: testing only — a picklable callable run in the worker before each program."""
    from nda.sandbox.runner import resolve_tier

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (expected {', '.join(BACKENDS)})")
    resolve_tier(tier)  # ValueError now for an unknown tier
    if isinstance(limits, dict):
        limits = Limits.from_dict(limits)
    limits = limits or Limits()
    if workers is not None and workers < 1:
        raise ValueError("workers must be >= 1")
    if chunksize is not None and chunksize < 1:
        raise ValueError("chunksize must be >= 1")
    store_obj, store_path = _store_arg(store)
    broadcast, per_program = _split_inputs(inputs, limits)
    if broadcast is None and default_input is not None:
        broadcast = _split_inputs(default_input, limits)[0]
    config = WorkerConfig(limits=limits, tier=tier, gate=gate, store_path=store_path,
                          default_input=broadcast, optimize=optimize,
                          collect_kind_counts=collect_kind_counts, keep_program=keep_program, hook=_hook)
    items = _items(programs, per_program, ids, limits, portable=backend != "serial")
    if backend == "serial":
        return _run_serial(items, config, store_obj)
    n = workers or default_workers()
    size = chunksize or _auto_chunk(programs, n)
    if backend == "process":
        from nda.batch.pool import ProcessPool

        make = lambda: ProcessPool(n, config, start_method)  # noqa: E731
    else:
        from nda.batch.ray_backend import RayActors, import_ray

        import_ray()  # ImportError now (naming the extra to install) when Ray is missing
        make = lambda: RayActors(workers, config, ray_address)  # noqa: E731
    return _run_pool(make, items, size, ordered, retries)


# ---------------------------------------------------------------------------------------------
# Arguments


def _store_arg(store):
    """→ (SiteMap for the serial backend or None, path for pool workers or None)."""
    if store is None:
        return None, None
    if isinstance(store, (str, os.PathLike)):
        from nda.store.sitemap import SiteMap

        path = os.path.abspath(os.fspath(store))  # workers may run elsewhere (Ray)
        SiteMap.open(path, read_only=True).close()  # StoreError now if it cannot be read
        return None, path
    path = getattr(store, "path", None)
    return store, None if path is None else os.path.abspath(path)


def _as_vector(x, limits: Limits):
    """A conditioning vector as float32, or an error message."""
    if isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 1:
        arr = x
    else:
        try:
            arr64 = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as e:
            return f"conditioning vector must be a list of numbers: {e}"
        if arr64.ndim != 1:
            return "conditioning vector must be one-dimensional"
        with np.errstate(over="ignore"):
            arr = arr64.astype(np.float32)
    if arr.shape[0] > limits.max_input_len:
        return f"conditioning vector too long: {arr.shape[0]} > {limits.max_input_len}"
    return arr


def _is_vector(x) -> bool:
    if isinstance(x, np.ndarray):
        return x.ndim == 1
    if isinstance(x, (list, tuple)):
        return len(x) == 0 or isinstance(x[0], (int, float, np.number)) and not isinstance(x[0], bool)
    return False


def _split_inputs(inputs, limits: Limits):
    """→ (vector every program gets or None, iterable of per-program vectors or None)."""
    if inputs is None:
        return None, None
    if _is_vector(inputs):
        v = _as_vector(inputs, limits)
        if isinstance(v, str):
            raise ValueError(v)
        return v, None
    if isinstance(inputs, (str, bytes)):
        raise ValueError("inputs must be a vector or one vector per program")
    return None, inputs


def _portable(program):
    """A program as something cheap and safe to pickle for a pool worker."""
    from nda.pipeline.load import Loaded

    if isinstance(getattr(program, "loaded", None), Loaded):  # nda.Program
        program = program.loaded
    if isinstance(program, os.PathLike):
        program = os.fspath(program)
    if isinstance(program, str) and _FILE_REF.fullmatch(program):
        return _read_file(program)
    if isinstance(program, (str, bytes, Source, BatchResult)):
        return program
    if isinstance(program, Loaded):
        if program.source is not None:
            return Source(program.source, program.kind if program.kind in ("sexpr", "text") else "auto",
                          program.path)
        if program.kind == "stored" and program.path:
            return program.path
    from nda.core import ir
    from nda.core.binary_v2 import encode_module, encode_program
    from nda.core.link import LinkedModule, link_module

    module = getattr(program, "module", None)
    if isinstance(program, ir.Module) or isinstance(module, ir.Module):
        return encode_module(link_module(program if isinstance(program, ir.Module) else module))
    if isinstance(program, LinkedModule) or isinstance(module, LinkedModule):
        return encode_module(program if isinstance(program, LinkedModule) else module)
    if isinstance(program, ir.Node):
        return encode_program((program,))
    seq = getattr(program, "sequence", program)
    if isinstance(seq, (tuple, list)) and all(isinstance(n, ir.Node) for n in seq):
        return encode_program(tuple(seq))
    return BatchResult.failure(0, "input", E.INPUT_INVALID, unsupported_message(program))


_FILE_REF = re.compile(r"\S+\.(?:nda|sexpr|ndab)", re.IGNORECASE)


def _read_file(path: str):
    """A program file read here, so that workers (possibly on other machines) need not see it:
    its text as a `Source`, or its bytes; the path itself when it cannot be read (the worker
    reports that as it would)."""
    try:
        data = open(path, "rb").read()
    except OSError:
        return path
    kind = {".nda": "text", ".sexpr": "sexpr"}.get(os.path.splitext(path)[1].lower())
    if kind is None:
        return data
    return Source(data.decode("utf-8", errors="replace"), kind, path)


def _items(programs, inputs, ids, limits: Limits, portable: bool):
    """(index, program, input, id) per program; a bad input or an unshippable program becomes
    its failure result (carried in place of the program)."""
    inp_it = iter(inputs) if inputs is not None else None
    id_it = iter(ids) if ids is not None else None
    for index, program in enumerate(programs):
        inp = item_id = None
        if inp_it is not None:
            try:
                raw = next(inp_it)
            except StopIteration:
                raise ValueError(f"fewer inputs than programs ({index})") from None
            if raw is not None:
                inp = _as_vector(raw, limits)
                if isinstance(inp, str):
                    program, inp = BatchResult.failure(index, "input", E.INPUT_INVALID, inp), None
        if id_it is not None:
            item_id = next(id_it, None)
        if portable and not isinstance(program, BatchResult):
            try:
                program = _portable(program)
            except Exception as e:  # e.g. an IR object the encoder refuses
                code = getattr(e, "code", E.INPUT_INVALID)
                program = BatchResult.failure(index, "input", code,
                                              f"cannot ship program to a worker: {type(e).__name__}: {e}")
        yield index, program, inp, item_id


def _auto_chunk(programs, n: int) -> int:
    """Chunks of up to DEFAULT_CHUNK, at least ~4 per worker when the count is known."""
    try:
        count = len(programs)
    except TypeError:
        return DEFAULT_CHUNK
    return max(1, min(DEFAULT_CHUNK, -(-count // (4 * n))))


# ---------------------------------------------------------------------------------------------
# Serial


def _run_serial(items, config: WorkerConfig, store) -> Iterator[BatchResult]:
    worker = Worker(config, store)
    try:
        for index, program, inp, item_id in items:
            yield worker.run_one(index, program, inp, item_id)
    finally:
        worker.close()


# ---------------------------------------------------------------------------------------------
# Pools: chunking, retries, ordering (the backend only moves chunks)


def _died(item, reason: str, attempts: int) -> BatchResult:
    index, _program, _inp, item_id = item
    r = BatchResult.failure(index, "worker", E.INTERNAL,
                            f"panic: worker died while running this program ({reason}; "
                            f"{attempts} attempt{'s' if attempts != 1 else ''})", panicked=True)
    r.id = item_id
    return r


def _run_pool(make_backend, items, chunksize: int, ordered: bool, retries: int) -> Iterator[BatchResult]:
    """Drive a backend with slots 0..n-1: `submit(slot, chunk)`, `wait()` → events
    `(slot, results or None, death reason or None)`, `replace(slot)`, `close()`, `n`, and
    `depth`: how many chunks a slot may hold at once (a slot runs its chunks in order, so
    events for one slot come in submission order; a death event ends every chunk it held and
    is the slot's only event until `replace`)."""
    backend = make_backend()
    try:
        yield from _dispatch(backend, items, chunksize, ordered, retries)
    finally:
        backend.close()


def _dispatch(backend, items, chunksize: int, ordered: bool, retries: int) -> Iterator[BatchResult]:
    items = iter(items)
    n = backend.n
    depth = max(1, getattr(backend, "depth", 1))
    window = max(4 * n * depth * chunksize, 64)  # ordered: how far submission may run ahead of output
    pending: deque = deque()              # chunks to (re)submit first (retries)
    busy: dict = {}                       # slot → deque of the chunks it holds, oldest first
    free = deque(s for _ in range(depth) for s in range(n))  # one entry per chunk a slot may take
    deaths: dict = {}                     # index → times its worker died
    buffer: dict = {}                     # ordered: index → result waiting for its turn
    next_out = 0                          # ordered: next index to yield
    next_in = 0                           # items taken from the input so far
    exhausted = False

    while True:
        while free:
            if pending:
                chunk = pending.popleft()
            elif exhausted or (ordered and next_in - next_out >= window):
                break
            else:
                chunk = []
                for item in items:
                    chunk.append(item)
                    if len(chunk) >= chunksize:
                        break
                next_in += len(chunk)
                if len(chunk) < chunksize:
                    exhausted = True
                if not chunk:
                    break
            slot = free.popleft()
            busy.setdefault(slot, deque()).append(chunk)
            backend.submit(slot, chunk)
        if not busy:
            if pending or not exhausted:
                continue
            break
        for slot, results, reason in backend.wait():
            held = busy.get(slot)
            if reason is not None:
                backend.replace(slot)
                if not held:  # died idle (killed from outside): replaced, nothing lost
                    continue
                del busy[slot]
                free.extend([slot] * len(held))
                # the oldest chunk was running: its programs are retried one by one; the
                # chunks queued behind it never started and go back whole
                results = []
                for item in held.popleft():
                    k = deaths[item[0]] = deaths.get(item[0], 0) + 1
                    if k > retries:
                        results.append(_died(item, reason, k))
                    else:
                        pending.append([item])
                pending.extend(held)
            else:
                held.popleft()
                if not held:
                    del busy[slot]
                free.append(slot)
            if not ordered:
                yield from results
                continue
            for r in results:
                buffer[r.index] = r
            while next_out in buffer:
                yield buffer.pop(next_out)
                next_out += 1


__all__ = ["run_many", "BACKENDS", "default_workers"]
