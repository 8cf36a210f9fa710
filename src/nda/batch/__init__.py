"""Batch evaluation: many programs at once (reward loops, agent fleets, benchmark sweeps).

In: an iterable of programs (source text, `Source`, stored names/hashes, file paths, binary v2
bytes, `Loaded`, IR), conditioning vectors, `Limits`, a tier, a store, a backend
("serial", "process", "ray") and its number of workers; for `jobs`, a JSONL file or a
directory of program files.
Out: `run_many` → an iterator of `BatchResult` (a `SandboxResult` plus the program's index,
id, stage and diagnostics), in input order or as completed; `jobs` reads job lines, writes
result lines, resumes, and commits passing programs in batched transactions.

Modules: `worker` (one worker: load → gate → sandbox with per-worker caches), `runner`
(`run_many`, chunking, retries, ordering; the serial backend), `pool` (process pool),
`ray_backend` (Ray actors; Ray is imported only there, lazily), `jobs` (`nda batch` I/O),
`bench` (`nda bench batch`: fresh generated programs against CPython).
"""

from nda.batch.runner import BACKENDS, default_workers, run_many
from nda.batch.worker import BatchResult, Source, TIMING_FIELDS

__all__ = ["run_many", "BatchResult", "Source", "BACKENDS", "TIMING_FIELDS", "default_workers"]
