"""The process-pool backend of `run_many`: N worker processes, one pipe each.

In: the number of workers, a `WorkerConfig`, a multiprocessing start method (default
"forkserver" where available, else "spawn": never a plain fork of a parent that may hold
threads and an open SQLite connection). The fork server preloads the pipeline (`PRELOAD`), so
a worker — a first one or a replacement — starts in milliseconds; like every forkserver child,
it sees the environment variables of the moment the fork server started.
Out: the slot protocol `runner._dispatch` drives — `submit(slot, chunk)`, `wait()` → events
`(slot, results, None)` or `(slot, None, reason)` when the worker died, `replace(slot)`,
`close()`.

Each worker builds one `Worker` (its own `Engine`, the store opened read-only) and then runs
chunk after chunk: a chunk is a list of items, the answer the list of `BatchResult`. A worker
holds up to `DEPTH` chunks (the next waits in its pipe while it runs one, so it never idles
for the parent's round trip) and answers them in order; it has its own pipe, so the parent
always knows which chunks a dead worker held. A chunk sent ahead is at most
`PIPE_AHEAD_BYTES` pickled (a larger one waits in the parent until the worker answers): the
pipe holds it whole, so the parent never blocks writing while the worker blocks writing its
answer. SIGINT is ignored in workers (the parent
decides; `close()` stops them).
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import signal
from multiprocessing.connection import wait as mp_wait

from nda.batch.worker import Worker, WorkerConfig, settle_worker_process

PRELOAD = ("nda.batch.worker", "nda.pipeline.load", "nda.pipeline.commit", "nda.syntax.sexpr",
           "nda.syntax.text", "nda.analysis.gate", "nda.sandbox.runner", "nda.tiers.interp",
           "nda.tiers.closure", "nda.tiers.native", "nda.store.sitemap")
DEPTH = 2  # chunks a worker holds at once (one running, one waiting in its pipe)
PIPE_AHEAD_BYTES = 64 << 10  # a Linux socketpair takes ~90 KiB unread
JOIN_TIMEOUT_S = 5.0
MAX_START_FAILURES = 3
STOP_TIMEOUT_S = 1.0  # a worker asked to stop that is still busy after this is killed


def _worker_main(conn, config: WorkerConfig) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        worker = Worker(config)
    except Exception as e:  # noqa: BLE001 — reported to the parent, which raises it
        conn.send(("init-error", f"{type(e).__name__}: {e}"))
        return
    settle_worker_process()
    try:
        conn.send(("ready", None))
        while True:
            try:
                chunk = conn.recv()
            except EOFError:
                return
            if chunk is None:
                return
            conn.send(("ok", worker.run_chunk(chunk)))
    finally:
        worker.close()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "worker process vanished"
    if code < 0:
        try:
            return f"worker process killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"worker process killed by signal {-code}"
    return f"worker process exited with status {code}"


class ProcessPool:
    """Worker processes addressed by slot (see the module docstring)."""

    def __init__(self, n: int, config: WorkerConfig, start_method: str | None = None):
        if start_method is None:
            start_method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        self._ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            # import the pipeline once in the fork server: each worker then starts in
            # milliseconds instead of re-importing it (no effect if the server already runs)
            self._ctx.set_forkserver_preload(list(PRELOAD))
        self._config = config
        self.n = n
        self.depth = DEPTH
        self._procs: list = [None] * n
        self._conns: list = [None] * n
        self._broken: dict = {}  # slot → None (a send that failed: reported by the next wait)
        self._ready = [False] * n  # the worker finished starting (its `Worker` is built)
        self._sent: list = [[] for _ in range(n)]  # the chunks each worker holds, oldest first
        self._held_back: list = [[] for _ in range(n)]  # pickled chunks not yet written to the pipe
        self._start_failures = 0  # consecutive deaths of workers that never got ready
        try:
            for i in range(n):
                self._start(i)
        except BaseException:
            self.close()
            raise

    def _start(self, i: int) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        p = self._ctx.Process(target=_worker_main, args=(child, self._config), daemon=True,
                              name=f"nda-batch-{i}")
        p.start()
        child.close()
        self._procs[i], self._conns[i] = p, parent
        self._ready[i], self._sent[i], self._held_back[i] = False, [], []

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def submit(self, slot: int, chunk: list) -> None:
        self._sent[slot].append(chunk)
        data = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
        if len(self._sent[slot]) > 1 and (self._held_back[slot] or len(data) > PIPE_AHEAD_BYTES):
            self._held_back[slot].append(data)  # written when the worker answers
            return
        self._write(slot, data)

    def _write(self, slot: int, data: bytes) -> None:
        try:
            self._conns[slot].send_bytes(data)
        except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
            self._broken[slot] = None

    def wait(self) -> list:
        """Block until some worker answers or dies → [(slot, results, None) | (slot, None, reason)].
        A worker that dies before it is ready (a failed start, not its program's doing) is
        restarted and given its chunks again; `MAX_START_FAILURES` in a row raise."""
        while True:
            events = self._poll()
            if events:
                return events

    def _poll(self) -> list:
        if self._broken:
            slots, self._broken = list(self._broken), {}
            return [e for s in slots if (e := self._death(s)) is not None]
        by_obj = {}
        for i in range(self.n):
            by_obj[self._conns[i]] = i
            by_obj[self._procs[i].sentinel] = i
        events, seen = [], set()
        for obj in mp_wait(list(by_obj)):
            i = by_obj[obj]
            if i in seen:
                continue
            seen.add(i)
            conn = self._conns[i]
            try:
                msg = conn.recv() if obj is conn or conn.poll() else None
            except (EOFError, OSError):
                msg = None
            if msg is None:
                e = self._death(i)
                if e is not None:
                    events.append(e)
            elif msg[0] == "ready":
                self._ready[i] = True
                self._start_failures = 0
            elif msg[0] == "init-error":
                raise RuntimeError(f"batch worker failed to start: {msg[1]}")
            else:
                self._sent[i].pop(0)
                if self._held_back[i]:
                    self._write(i, self._held_back[i].pop(0))
                events.append((i, msg[1], None))
        return events

    def _death(self, i: int):
        reason = self._reason(i)
        if self._ready[i]:
            self._sent[i], self._held_back[i] = [], []
            return (i, None, reason)
        self._start_failures += 1
        if self._start_failures >= MAX_START_FAILURES:
            raise RuntimeError(f"batch workers keep dying before they are ready ({reason})")
        chunks = self._sent[i]
        self.replace(i)
        for chunk in chunks:
            self.submit(i, chunk)
        return None

    def _reason(self, i: int) -> str:
        p = self._procs[i]
        p.join(JOIN_TIMEOUT_S)
        if p.is_alive():  # the pipe broke but the process lives on: stop it
            p.kill()
            p.join(JOIN_TIMEOUT_S)
        return _describe_exit(p.exitcode)

    def replace(self, slot: int) -> None:
        self._stop(slot, graceful=False)
        self._start(slot)

    def _stop(self, i: int, graceful: bool) -> None:
        p, conn = self._procs[i], self._conns[i]
        if conn is not None:
            if graceful:
                try:
                    conn.send(None)
                except (OSError, ValueError):
                    pass
            conn.close()
        if p is not None:
            if not graceful and p.is_alive():
                p.kill()
            p.join(STOP_TIMEOUT_S if graceful else JOIN_TIMEOUT_S)
            if p.is_alive():  # still busy with a chunk nobody will read: stop it
                p.kill()
                p.join(JOIN_TIMEOUT_S)
            p.close()
        self._procs[i] = self._conns[i] = None

    def close(self) -> None:
        for i in range(self.n):
            if self._procs[i] is not None or self._conns[i] is not None:
                self._stop(i, graceful=True)


__all__ = ["ProcessPool", "DEPTH", "PIPE_AHEAD_BYTES"]
