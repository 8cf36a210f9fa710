"""`nda batch` input and output: job lines in, result lines out, resume, batched commits.

In: a JSONL file (one job per line) or a directory of program files; an output path.
Out: `read_jobs` → `Job`s (id, program, input); `done_ids` → ids already in an output file
(its unfinished last line dropped); `result_line` → the JSON object of one result;
`Committer` → stores passing programs in batched transactions (the one writer);
`Summary` → counts and throughput.

Job line fields: `id` (any JSON value; default the line number, 1-based), exactly one of
`source` (program text; `kind`: "sexpr", "text" or "auto", the default), `ref` (a stored
hash, prefix or name), `path` (a program file, relative to the JSONL file's directory),
`hex` (binary v2 as hex); optional `input` (list of numbers) or `dim` (N ones). A line that
is not such an object becomes that job's INPUT_INVALID result (stage "input"): a bad line
never stops the batch. A directory yields every `.nda`, `.sexpr` and `.ndab` file below it
(sorted), with its relative path as id.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from nda.batch.worker import BatchResult, Source
from nda.core import errors as E
from nda.core.errors import NdaError, UsageError

EXTENSIONS = {".nda": "text", ".sexpr": "sexpr", ".ndab": "binary"}
JOB_FIELDS = {"id", "source", "kind", "ref", "path", "hex", "input", "dim"}


@dataclass
class Job:
    id: Any
    program: Any
    input: Any = None


def _bad(line_no: int, message: str) -> BatchResult:
    return BatchResult.failure(0, "input", E.INPUT_INVALID, f"line {line_no}: {message}")


def count_jobs(path: str) -> int:
    p = Path(path)
    if p.is_dir():
        return sum(1 for _ in _program_files(p))
    with open(p, "rb") as f:
        return sum(1 for line in f if line.strip())


def _program_files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if Path(name).suffix.lower() in EXTENSIONS:
                yield Path(dirpath) / name


def read_jobs(path: str) -> Iterator[Job]:
    """Jobs from a JSONL file or a directory (see the module docstring). UsageError when
    `path` cannot be read at all."""
    p = Path(path)
    if p.is_dir():
        yield from _dir_jobs(p)
        return
    try:
        f = open(p, "rb")
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror or e}") from e
    with f:
        for line_no, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            yield _line_job(raw, line_no, p.parent)


def _dir_jobs(root: Path) -> Iterator[Job]:
    for fp in _program_files(root):
        rel = fp.relative_to(root).as_posix()
        kind = EXTENSIONS[fp.suffix.lower()]
        try:
            data = fp.read_bytes()
        except OSError as e:
            yield Job(rel, BatchResult.failure(0, "input", E.INPUT_INVALID, f"{rel}: cannot read: {e}"))
            continue
        if kind == "binary":
            yield Job(rel, data)
        else:
            yield Job(rel, Source(data.decode("utf-8", errors="replace"), kind, str(fp)))


def _line_job(raw: bytes, line_no: int, base: Path) -> Job:
    try:
        obj = json.loads(raw)
    except ValueError as e:
        return Job(line_no, _bad(line_no, f"invalid JSON: {e}"))
    if not isinstance(obj, dict):
        return Job(line_no, _bad(line_no, "expected a JSON object"))
    job_id = obj.get("id", line_no)
    unknown = sorted(set(obj) - JOB_FIELDS)
    given = [k for k in ("source", "ref", "path", "hex") if k in obj]
    if unknown:
        return Job(job_id, _bad(line_no, f"unknown field(s): {', '.join(unknown)}"))
    if len(given) != 1:
        return Job(job_id, _bad(line_no, "give exactly one of source, ref, path, hex"))
    key, value = given[0], obj[given[0]]
    if not isinstance(value, str):
        return Job(job_id, _bad(line_no, f"{key} must be a string"))
    inp = obj.get("input")
    if "dim" in obj:
        dim = obj["dim"]
        if inp is not None or not isinstance(dim, int) or isinstance(dim, bool) or dim < 0:
            return Job(job_id, _bad(line_no, "dim must be a non-negative integer (and no input with it)"))
        inp = [1.0] * dim
    elif inp is not None and not isinstance(inp, list):
        return Job(job_id, _bad(line_no, "input must be a list of numbers"))
    if key == "source":
        kind = obj.get("kind", "auto")
        if kind not in ("auto", "sexpr", "text"):
            return Job(job_id, _bad(line_no, "kind must be auto, sexpr or text"))
        return Job(job_id, Source(value, kind, f"line {line_no}"), inp)
    if key == "hex":
        try:
            return Job(job_id, bytes.fromhex(value), inp)
        except ValueError:
            return Job(job_id, _bad(line_no, "hex is not hexadecimal"))
    if key == "path":
        fp = (base / value) if not Path(value).is_absolute() else Path(value)
        kind = EXTENSIONS.get(fp.suffix.lower())
        if kind is None:
            return Job(job_id, _bad(line_no, f"{value}: unknown program file extension"), inp)
        try:
            data = fp.read_bytes()
        except OSError as e:
            return Job(job_id, _bad(line_no, f"{value}: cannot read: {e.strerror or e}"), inp)
        if kind == "binary":
            return Job(job_id, data, inp)
        return Job(job_id, Source(data.decode("utf-8", errors="replace"), kind, value), inp)
    return Job(job_id, value.strip() or "?", inp)  # ref


# ---------------------------------------------------------------------------------------------
# Output


def done_ids(out_path: str) -> set:
    """Ids of the complete result lines in `out_path`; an unfinished last line (a run that was
    stopped mid-write) is cut off so that appending starts on a fresh line."""
    p = Path(out_path)
    if not p.exists():
        return set()
    data = p.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(p, "r+b") as f:
            f.truncate(end)
    ids = set()
    for line in data[:end].splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "id" in obj:
            ids.add(job_key(obj["id"]))
    return ids


def job_key(job_id) -> str:
    """The form in which ids are compared (an id is any JSON value)."""
    return json.dumps(job_id, sort_keys=True)


def result_line(r: BatchResult, stored: str | None = None, commit_error: str | None = None) -> dict:
    d = r.to_dict()
    out = {"id": r.id, "hash": r.program_hash, **{k: v for k, v in d.items() if k != "id"}}
    if stored is not None:
        out["stored"] = stored
    if commit_error is not None:
        out["commit_error"] = commit_error
    return out


# ---------------------------------------------------------------------------------------------
# Commit


class Committer:
    """Stores each passing program (gate + sandbox passed) in batched transactions: the one
    writer of the batch. Per program what `pipeline.commit.commit` writes — its defs (no name
    bound: binding needs `nda commit --name/--namespace`), the program, the names spelt in the
    source, each def's source name and signature, the program's triples. `add(result)` queues it; `flush()` writes the queue in one
    transaction → {index: stored root hex} or raises the store's error."""

    def __init__(self, store, message: str = "nda batch"):
        self.store = store
        self.message = message
        self.queue: list = []
        self.committed = 0
        self.transactions = 0

    def add(self, r: BatchResult) -> None:
        if r.encoded is not None:
            self.queue.append(r)

    def flush(self) -> dict:
        from nda.core.link import LinkedModule, decode_file
        from nda.pipeline.commit import record_triples
        from nda.store.codebase import put_function_meta

        queue, self.queue = self.queue, []
        if not queue:
            return {}
        store = self.store
        roots = {}
        with store.transaction(f"{self.message}: {len(queue)} program(s)"):
            for r in queue:
                data, names, sigs = r.encoded
                decoded = decode_file(data)
                linked = decoded if isinstance(decoded, LinkedModule) else None
                if linked is not None:
                    store.put_module(linked, bind=False)  # as `commit`: no name is bound implicitly
                    seq = tuple(linked.main_sequence())
                else:
                    seq = (decoded,) if not isinstance(decoded, (list, tuple)) else tuple(decoded)
                root = store.put_program(seq)
                if names:
                    store.register_strings(list(names))
                for d in linked.defs if linked is not None else ():
                    put_function_meta(store, d.address, d.name, *sigs.get(d.name, (None, None)))
                record_triples(store, root, seq, linked, store.program_v1(root))
                if root.hex() != r.program_hash:
                    raise NdaError(f"stored root {root.hex()} differs from the program's hash {r.program_hash}",
                                   E.INTERNAL)
                roots[r.index] = root.hex()
        self.committed += len(roots)
        self.transactions += 1
        return roots


# ---------------------------------------------------------------------------------------------
# Summary


@dataclass
class Summary:
    total: int = 0
    succeeded: int = 0
    panicked: int = 0
    failed: dict = field(default_factory=dict)  # error code → count (panics included)
    skipped: int = 0
    committed: int = 0
    commit_failed: int = 0
    elapsed_s: float = 0.0

    def add(self, r: BatchResult) -> None:
        self.total += 1
        if r.is_success():
            self.succeeded += 1
            return
        if r.panicked:
            self.panicked += 1
        code = r.error_code or E.INTERNAL
        self.failed[code] = self.failed.get(code, 0) + 1

    @property
    def rate(self) -> float:
        return self.total / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {"ok": self.total == self.succeeded and not self.commit_failed, "total": self.total,
                "succeeded": self.succeeded, "failed": dict(sorted(self.failed.items())),
                "panicked": self.panicked, "skipped": self.skipped, "committed": self.committed,
                "commit_failed": self.commit_failed, "elapsed_s": round(self.elapsed_s, 3),
                "programs_per_s": round(self.rate, 1)}


__all__ = ["Job", "read_jobs", "count_jobs", "done_ids", "job_key", "result_line", "Committer", "Summary",
           "EXTENSIONS"]
