"""The pool dispatcher of `run_many` (`runner._dispatch`) on a scripted in-process backend:
chunking edge cases, several chunks held per slot (`depth`, as the Ray actors do), a worker
that dies with a chunk running and another queued, ordered and unordered output. No process
is started: every event is decided by the script, so each interleaving is exact."""

from collections import deque

import pytest

from nda.batch.runner import _auto_chunk, _dispatch
from nda.batch.worker import BatchResult


def item(i, program=None):
    return (i, program if program is not None else f"p{i}", None, f"id{i}")


class Scripted:
    """A backend whose slots run chunks in submission order, one chunk per `wait()`.

    `die`: programs that kill their worker while running (`times[program]` deaths each, then
    they run). `ran` logs (slot, program) for every program a worker started; `chunks` logs
    every submitted chunk's indices."""

    def __init__(self, n, depth=1, die=None):
        self.n, self.depth = n, depth
        self.die = dict(die or {})
        self.held = {s: deque() for s in range(n)}
        self.ran, self.chunks, self.replaced = [], [], []
        self.turn = 0

    def submit(self, slot, chunk):
        assert len(self.held[slot]) < self.depth, "the dispatcher gave a slot more than depth chunks"
        self.held[slot].append(chunk)
        self.chunks.append([it[0] for it in chunk])

    def wait(self):
        slots = [s for s in range(self.n) if self.held[s]]
        assert slots, "wait() with nothing in flight"
        slot = slots[self.turn % len(slots)]
        self.turn += 1
        chunk = self.held[slot][0]
        out = []
        for index, program, _inp, item_id in chunk:
            self.ran.append((slot, program))
            if self.die.get(program, 0) > 0:
                self.die[program] -= 1
                return [(slot, None, "worker process killed by SIGKILL")]
            r = BatchResult(index)
            r.id = item_id
            r.output_vec = [float(index)]
            out.append(r)
        self.held[slot].popleft()
        return [(slot, out, None)]

    def replace(self, slot):
        self.replaced.append(slot)
        self.held[slot].clear()  # everything the dead worker held is gone with it

    def close(self):
        pass


def run(backend, items, chunksize, ordered=True, retries=1):
    return list(_dispatch(backend, iter(items), chunksize, ordered, retries))


@pytest.mark.parametrize("count", [0, 1, 6, 7, 8, 25])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_every_program_once_in_order_for_any_count_chunk_and_depth(count, depth):
    be = Scripted(2, depth)
    rs = run(be, [item(i) for i in range(count)], chunksize=4)
    assert [r.index for r in rs] == list(range(count))
    assert [r.id for r in rs] == [f"id{i}" for i in range(count)]
    assert [len(c) for c in be.chunks] == [4] * (count // 4) + ([count % 4] if count % 4 else [])
    assert sorted(i for c in be.chunks for i in c) == list(range(count))  # nothing sent twice


def test_unordered_yields_each_index_once():
    be = Scripted(3, depth=2)
    rs = run(be, [item(i) for i in range(17)], chunksize=2, ordered=False)
    assert sorted(r.index for r in rs) == list(range(17))


def test_a_generator_is_read_lazily_a_bounded_window_ahead():
    taken = []

    def gen():
        for i in range(10_000):
            taken.append(i)
            yield item(i)

    it = _dispatch(Scripted(2, depth=2), gen(), 8, True, 1)
    assert next(it).index == 0
    assert len(taken) <= 4 * 2 * 2 * 8 + 8  # the ordered window, not the whole input
    it.close()


def test_death_retries_the_running_chunk_alone_and_resends_the_queued_one_whole():
    # one slot holding two chunks: [0 1 2] runs and dies at "bad"; [3 4 5] waits behind it
    be = Scripted(1, depth=2, die={"bad": 1})
    items = [item(0), item(1), item(2, "bad"), item(3), item(4), item(5)]
    rs = run(be, items, chunksize=3, retries=0)
    assert [r.index for r in rs] == list(range(6))
    assert be.chunks[:2] == [[0, 1, 2], [3, 4, 5]]
    assert be.replaced == [0]
    # retries=0: the programs of the chunk that was running are lost with it ...
    assert [(r.index, r.stage, r.error_code, r.panicked) for r in rs if not r.is_success()] == [
        (0, "worker", "INTERNAL", True), (1, "worker", "INTERNAL", True), (2, "worker", "INTERNAL", True)]
    assert "1 attempt)" in rs[2].error
    # ... but the queued chunk never started: it is sent again as it was and runs
    assert be.chunks[2:] == [[3, 4, 5]]
    assert [r.output_vec for r in rs[3:]] == [[3.0], [4.0], [5.0]]


def test_death_with_retries_isolates_the_program_that_kills_its_worker():
    be = Scripted(2, depth=2, die={"bad": 5})
    items = [item(i, "bad" if i == 9 else None) for i in range(20)]
    rs = run(be, items, chunksize=4, retries=1)
    assert [r.index for r in rs] == list(range(20))
    bad = [r for r in rs if not r.is_success()]
    assert [(r.index, r.panicked) for r in bad] == [(9, True)] and "2 attempts" in bad[0].error
    assert all(r.output_vec == [float(r.index)] for r in rs if r.index != 9)
    # 9 started retries + 1 times, the second time alone; its chunk-mates that ran before it
    # died with it once and were retried alone; chunks queued behind a dying one never started
    started = [p for _slot, p in be.ran]
    assert started.count("bad") == 2 and [c for c in be.chunks if 9 in c][1:] == [[9]]
    assert started.count("p8") == 2 and all(started.count(f"p{i}") == 1 for i in range(20) if i not in (8, 9))


def test_a_program_that_kills_its_worker_once_is_retried_and_succeeds():
    be = Scripted(2, depth=2, die={"flaky": 1})
    rs = run(be, [item(i, "flaky" if i == 2 else None) for i in range(8)], chunksize=3)
    assert all(r.is_success() for r in rs) and [r.index for r in rs] == list(range(8))


def test_auto_chunk():
    assert _auto_chunk(range(4000), 2) == 32
    assert _auto_chunk(range(10), 2) == 2
    assert _auto_chunk(range(0), 4) == 1
    assert _auto_chunk(iter(range(10)), 2) == 32  # unknown length
