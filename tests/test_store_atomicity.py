"""Crash atomicity: a writer process committing in a loop is SIGKILLed at random points; every
reopen finds whole commits only, an intact root chain and a clean verify()."""

import os
import random
import select
import signal

from nda.core import ir
from nda.core.ir import name_hash
from nda.store.sitemap import SiteMap

from test_store import kv_rec

TRIALS = 60
SNAPSHOT_FILES = 5


def commit_forever(fd: int, open_store, commit_one) -> None:
    """Child process body: `commit_one(store, k)` for k = commits so far, 1, 2, … forever,
    writing one '.' to `fd` after each acknowledged commit; never returns (exit 3 on an
    error, after printing it)."""
    try:
        s = open_store()
        k = len(s.log())
        while True:
            commit_one(s, k)
            os.write(fd, b".")
            k += 1
    except BaseException:
        import traceback

        traceback.print_exc()
        os._exit(3)
    finally:
        os._exit(4)


def _write_one(s, k: int, rec=kv_rec(64)) -> None:
    with s.transaction(f"w{k}"):
        root = s.put_program((ir.Int(k), ir.Triple(k + 1, 2, k + 2)))
        s.bind_name(f"p{k}", root)
        s.put_kv(k, 0, rec)
        s.put_file_snapshot(f"f{k % SNAPSHOT_FILES}", [(k + 1, 2, k + 3), (k + 1, 3, k + 7)])
        s.register_string(f"s{k}")


def _writer(path: str, fd: int) -> None:
    """Child process: commit forever; one '.' on the pipe after each acknowledged commit."""
    commit_forever(fd, lambda: SiteMap.open(path), _write_one)


def _check(path: str, acknowledged: int) -> int:
    with SiteMap.open(path) as s:
        assert s.verify() == []
        log = s.log()
        n = len(log)
        assert n >= acknowledged  # every acknowledged commit survived
        if n:
            assert log[-1].state_root == s.root()  # the last committed root is the current one
        assert [e.message for e in log] == [f"w{k}" for k in range(n)]
        st = s.stats()
        assert st["programs"] == st["kv"] == st["names"] == st["name_bindings"] == n
        assert st["strings"] == 2 * n and st["snapshots"] == min(n, SNAPSHOT_FILES)
        for k in (0, n - 1) if n else ():
            assert s.get_node(s.resolve_name(f"p{k}")).children[0] == ir.Int(k)
            assert s.resolve_string(name_hash(f"s{k}")) == f"s{k}"
            assert s.get_kv(k, 0) == kv_rec(64)
        return n


def test_sigkill_during_commits_never_leaves_partial_state(tmp_path):
    path = str(tmp_path / "crash.db")
    SiteMap.open(path).close()
    rng = random.Random(1234)
    committed, kills_mid_run = 0, 0
    for _trial in range(TRIALS):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(r)
            _writer(path, w)
        os.close(w)
        acknowledged = 0
        # let the child get going (it may or may not have finished a commit), then kill it
        deadline = rng.uniform(0.0, 0.06)
        ready, _, _ = select.select([r], [], [], 20.0)  # first acknowledged commit
        if ready:
            acknowledged += len(os.read(r, 4096))
            ready, _, _ = select.select([r], [], [], deadline)
            if ready:
                acknowledged += len(os.read(r, 4096))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        while True:  # drain what the child wrote before dying
            chunk = os.read(r, 4096)
            if not chunk:
                break
            acknowledged += len(chunk)
        os.close(r)
        n = _check(path, committed + acknowledged)
        kills_mid_run += n > committed
        committed = n
    assert committed >= TRIALS  # the writer made progress in every trial
    assert kills_mid_run >= TRIALS // 2
