"""The Ray backend of `run_many`: one Ray actor per worker, programs shipped in chunks.

In: the number of workers (None → every CPU of the Ray cluster), a `WorkerConfig`, an
address. Ray is imported here only, lazily: without it, `RayActors` raises ImportError
naming `pip install "nda-toolchain[ray]"`.
Out: the slot protocol `runner._dispatch` drives (`submit`, `wait`, `replace`, `close`, `n`).

Which Ray: an instance this process already initialized (`ray.init(address=…)` before
`run_many`) is used as it is and left running; otherwise `ray.init(address=address)` when an
address is given (or `RAY_ADDRESS` is set — Ray's own convention), else a local instance is
started with `num_cpus=workers` and shut down when the batch ends. Each actor (`num_cpus=1`)
holds one `Worker` (its `Engine`, the store opened read-only: the store path must be readable
on every node). A dead actor (`RayActorError`, e.g. its process was killed) is killed for
good and replaced; `runner` retries its chunk program by program.

Throughput: each actor holds `DEPTH` chunks at once (Ray queues an actor's calls and runs
them in order), so it starts its next chunk while the driver is still collecting the last
one's results — with one chunk per actor, every chunk paid a driver round trip of idle time.
Chunks and results cross as bytes pickled here (protocol 5), not as lists that Ray's
cloudpickle walks object by object (the settings, with any test hook, go once, through Ray).
Results of one actor are handed to `runner` in the order its chunks were submitted; a dead
actor is reported once, for the oldest chunk it held.

Why actors and not tasks on Ray's pooled worker processes (tried; those processes outlive a
batch, so a batch would not pay a process start and `import ray` per worker, ~0.6 CPU-s
each): a task is pushed to a worker only once the worker is free, so every chunk waited for
a driver round trip again (13-50 ms per ~100 ms chunk measured at load 6-12 on two cores,
against ~3 ms for a chunk already queued at an actor). On a quiet machine actor start-up
was ~0.4 s to the first result, as the process pool's fork server.
"""

from __future__ import annotations

import os
import pickle

from nda.batch.worker import Worker, WorkerConfig, default_workers, settle_worker_process

INSTALL_HINT = 'backend="ray" needs Ray: pip install "nda-toolchain[ray]"'
DEPTH = 2  # chunks each actor holds at once (one running, one queued)


def import_ray():
    try:
        import ray
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return ray


class BatchActor:
    """The body of one Ray actor (made remote by `RayActors`)."""

    def __init__(self, config: WorkerConfig):
        self.worker = Worker(config)
        settle_worker_process()

    def run_chunk(self, data: bytes) -> bytes:
        """A chunk pickled by the driver → its results pickled (see the module docstring)."""
        return pickle.dumps(self.worker.run_chunk(pickle.loads(data)), protocol=5)

    def pid(self) -> int:
        return os.getpid()


class RayActors:
    """Ray actors addressed by slot (see the module docstring)."""

    def __init__(self, workers: int | None, config: WorkerConfig, address: str | None = None,
                 ray_module=None):
        ray = self.ray = ray_module or import_ray()
        self.started = False
        if not ray.is_initialized():
            if address is None and not os.environ.get("RAY_ADDRESS"):
                ray.init(num_cpus=workers or default_workers(), include_dashboard=False,
                         logging_level="WARNING", log_to_driver=True)
            else:
                ray.init(address=address, logging_level="WARNING")
            self.started = True
        self.n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._config = config
        self._cls = ray.remote(num_cpus=1, max_restarts=0)(BatchActor)
        self.depth = DEPTH
        self._refs: dict = {}  # ObjectRef → (slot, submission number)
        self._seq = 0
        self._actors = [self._cls.remote(config) for _ in range(self.n)]
        self._ready(self._actors)

    def _ready(self, actors) -> None:
        """Wait until `actors` are built: a failure to start (nda not importable on a node, an
        unreadable store) is a RuntimeError now, not a dead worker per program."""
        try:
            self.ray.get([a.pid.remote() for a in actors])
        except self.ray.exceptions.RayError as e:
            self.close()
            raise RuntimeError(f"Ray batch actor failed to start: {_first_line(e)}") from e

    def submit(self, slot: int, chunk: list) -> None:
        self._seq += 1
        ref = self._actors[slot].run_chunk.remote(pickle.dumps(chunk, protocol=5))
        self._refs[ref] = (slot, self._seq)

    def wait(self) -> list:
        """Block until some chunk is done → events in each slot's submission order; a slot
        whose actor died gets one death event (its later chunks are dropped by `replace`)."""
        ray = self.ray
        refs = list(self._refs)
        ready, rest = ray.wait(refs, num_returns=1)
        if rest:
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        upto: dict = {}  # slot → the newest of its chunks known to be done
        for ref in ready:
            slot, seq = self._refs[ref]
            upto[slot] = max(seq, upto.get(slot, 0))
        events = []
        for slot, last in upto.items():
            # an actor runs its chunks in order: every older chunk of the slot is done too
            for ref, (_s, seq) in sorted(((r, v) for r, v in self._refs.items() if v[0] == slot),
                                         key=lambda rv: rv[1][1]):
                if seq > last:
                    break
                del self._refs[ref]
                try:
                    events.append((slot, pickle.loads(ray.get(ref)), None))
                except ray.exceptions.RayError as e:  # the actor died (or its task could not run)
                    events.append((slot, None, _first_line(e)))
                    break
        return events

    def pids(self) -> list[int]:
        return self.ray.get([a.pid.remote() for a in self._actors])

    def replace(self, slot: int) -> None:
        try:
            self.ray.kill(self._actors[slot], no_restart=True)
        except Exception:  # noqa: BLE001 — already gone
            pass
        self._refs = {r: v for r, v in self._refs.items() if v[0] != slot}  # died with the actor
        self._actors[slot] = self._cls.remote(self._config)
        self._ready([self._actors[slot]])

    def close(self) -> None:
        for a in self._actors:
            try:
                self.ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        self._actors = []
        self._refs = {}
        if self.started:
            self.ray.shutdown()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


__all__ = ["RayActors", "BatchActor", "import_ray", "INSTALL_HINT", "DEPTH"]
