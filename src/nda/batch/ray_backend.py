"""The Ray backend of `run_many`: chunks run as Ray tasks on Ray's pooled worker processes.

In: the number of workers (None → every CPU of the Ray cluster), a `WorkerConfig`, an
address. Ray is imported here only, lazily: without it, `RayWorkers` raises ImportError
naming `pip install "nda-toolchain[ray]"`.
Out: the slot protocol `runner._dispatch` drives (`submit`, `wait`, `replace`, `close`, `n`,
`depth`).

Which Ray: an instance this process already initialized (`ray.init(address=…)` before
`run_many`) is used as it is and left running; otherwise `ray.init(address=address)` when an
address is given (or `RAY_ADDRESS` is set — Ray's own convention), else a local instance is
started with `num_cpus=workers` and shut down when the batch ends.

How: a placement group reserves `workers` CPUs for the batch (so at most `workers` chunks run
at once, as with the process pool) and each chunk is one task (`num_cpus=1`, no Ray retry)
in it. There are `DEPTH × workers` slots of one chunk each, so a chunk is always queued
behind each running one and no CPU idles for the driver's round trip. Tasks run in Ray's
worker processes, which Ray starts once (`ray.init` prestarts them) and reuses: a batch does
not pay a process start and `import ray` per worker, as one actor per worker did (~0.6 CPU-s
each, ~15 % of a 4,000-program batch on two cores). Each worker process keeps one `Worker`
(its `Engine`, the store opened read-only — the path must be readable on every node) for the
batch it serves, built on its first chunk and closed when it first serves another batch
(`_PROCESS_WORKER`: a cache in Ray's worker processes, never in the driver). The settings,
chunks and results cross as bytes pickled here once each (Ray's cloudpickle, so that test
hooks and ids of any class travel as with Ray's own arguments). A task whose process dies (killed, `os._exit`, a crash in native code)
fails with a `RayError`: a death event for its slot (`replace` has nothing to do — Ray starts
a process when one is needed), and `runner` retries its programs one by one. A worker that
cannot be built (an unreadable store) fails the probe task run before the first chunk:
RuntimeError.
"""

from __future__ import annotations

import os
import pickle
import uuid

from nda.batch.worker import Worker, WorkerConfig, default_workers, settle_worker_process

INSTALL_HINT = 'backend="ray" needs Ray: pip install "nda-toolchain[ray]"'
DEPTH = 2  # chunks per reserved CPU in flight (one running, one queued)


def import_ray():
    try:
        import ray
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return ray


_PROCESS_WORKER: dict = {}  # in a Ray worker process: batch token → its `Worker` (one entry)


def run_chunk(token: str, config: bytes, data: bytes) -> bytes:
    """The body of one Ray task: a chunk pickled by the driver → ("ok", results) pickled, or
    ("init-error", message) when this process cannot build the batch's `Worker`."""
    worker = _PROCESS_WORKER.get(token)
    if worker is None:
        for old in _PROCESS_WORKER.values():  # the previous batch this process served
            old.close()
        _PROCESS_WORKER.clear()
        try:
            worker = Worker(pickle.loads(config))
        except Exception as e:  # noqa: BLE001 — reported to the driver, which raises it
            return pickle.dumps(("init-error", f"{type(e).__name__}: {e}"))
        settle_worker_process()
        _PROCESS_WORKER[token] = worker
    from ray import cloudpickle

    return cloudpickle.dumps(("ok", worker.run_chunk(pickle.loads(data))), protocol=5)


class RayWorkers:
    """Ray tasks in a placement group, addressed by slot (see the module docstring)."""

    def __init__(self, workers: int | None, config: WorkerConfig, address: str | None = None,
                 ray_module=None):
        ray = self.ray = ray_module or import_ray()
        self.started = False
        self._pg = None
        self._refs: dict = {}  # ObjectRef → slot
        if not ray.is_initialized():
            if address is None and not os.environ.get("RAY_ADDRESS"):
                ray.init(num_cpus=workers or default_workers(), include_dashboard=False,
                         logging_level="WARNING", log_to_driver=True)
            else:
                ray.init(address=address, logging_level="WARNING")
            self.started = True
        try:
            from ray.util.placement_group import placement_group
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            self.n, self.depth = DEPTH * self.workers, 1
            self._token = uuid.uuid4().hex
            self._dumps = ray.cloudpickle.dumps
            self._config = self._dumps(config, protocol=5)
            self._pg = placement_group([{"CPU": 1}] * self.workers, strategy="PACK")
            ray.get(self._pg.ready())
            self._task = ray.remote(num_cpus=1, max_retries=0)(run_chunk).options(
                scheduling_strategy=PlacementGroupSchedulingStrategy(self._pg))
            self._result(ray.get(self._task.remote(self._token, self._config, pickle.dumps([]))))
        except BaseException as e:
            self.close()
            if isinstance(e, ray.exceptions.RayError):
                raise RuntimeError(f"Ray batch worker failed to start: {_first_line(e)}") from e
            raise

    def _result(self, data: bytes) -> list:
        kind, payload = pickle.loads(data)
        if kind == "init-error":
            raise RuntimeError(f"Ray batch worker failed to start: {payload}")
        return payload

    def submit(self, slot: int, chunk: list) -> None:
        self._refs[self._task.remote(self._token, self._config, self._dumps(chunk, protocol=5))] = slot

    def wait(self) -> list:
        ray = self.ray
        refs = list(self._refs)
        ready, rest = ray.wait(refs, num_returns=1)
        if rest:
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        events = []
        for ref in ready:
            slot = self._refs.pop(ref)
            try:
                data = ray.get(ref)
            except ray.exceptions.RayError as e:  # its worker process died (or it could not run)
                events.append((slot, None, _first_line(e)))
                continue
            events.append((slot, self._result(data), None))
        return events

    def replace(self, slot: int) -> None:
        """Nothing to do: a slot is not a process (Ray replaces a dead worker process itself)."""

    def close(self) -> None:
        ray = self.ray
        for ref in self._refs:  # stopped early: queued chunks need not run
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001 — already done
                pass
        self._refs = {}
        if self._pg is not None:
            try:
                from ray.util.placement_group import remove_placement_group

                remove_placement_group(self._pg)
            except Exception:  # noqa: BLE001 — the instance is already gone
                pass
            self._pg = None
        if self.started:
            ray.shutdown()
            self.started = False


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


__all__ = ["RayWorkers", "run_chunk", "import_ray", "INSTALL_HINT", "DEPTH"]
