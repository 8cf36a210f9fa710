"""Batch evaluation (`nda.batch.run_many`, `nda batch`): order, bad programs never stop a
batch, dead workers are replaced, a read-only store is shared, every backend gives the same
results, and the CLI's JSONL in/out, --resume, --json and --commit."""

import json
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from nda.batch import BatchResult, Source, run_many
from nda.batch.jobs import done_ids
from nda.batch.worker import detect_syntax
from nda.cli.app import main
from nda.core import ir
from nda.core.hashing import program_hash
from nda.pipeline.commit import commit
from nda.pipeline.load import load_text
from nda.runtime.state import Limits
from nda.store.sitemap import SiteMap

from test_store import SUM_MODULE


def prog(i: int) -> str:
    """A program whose output is [i + 10 * 3] after a small loop (varied run times)."""
    return f"(let s (int {i})) (loop {1 + i % 7} (store s (add (load s) (int 0)))) (add (load s) (int 30))"


PROGRAMS = [prog(i) for i in range(24)]
BAD = {
    3: "(add (int 1)",                                   # parse error
    7: "(load nowhere)",                                  # the gate: undefined variable
    11: "(let s (int 0)) (while (cmp ge (peek (int 0)) (int 0)) (store s (add (load s) (int 1))))",  # fuel
}


def mixed():
    return [BAD.get(i, p) for i, p in enumerate(PROGRAMS)]


def outputs(results):
    return [r.output_vec for r in results]


def same(a, b):
    assert [r.comparable() for r in a] == [r.comparable() for r in b]


@pytest.fixture(scope="module")
def serial_mixed():
    return list(run_many(mixed(), backend="serial", limits=Limits(fuel=5000), inputs=[1.0, 2.0]))


# ---------------------------------------------------------------------------------------------
# run_many


def test_serial_results_in_order_with_index_and_hash(serial_mixed):
    rs = serial_mixed
    assert [r.index for r in rs] == list(range(len(PROGRAMS)))
    assert all(isinstance(r, BatchResult) for r in rs)
    for i, r in enumerate(rs):
        if i in BAD:
            continue
        assert r.is_success() and r.stage == "run"
        assert r.output_vec == [float(i + 30)]
        assert r.program_hash == program_hash(load_text(PROGRAMS[i]).sequence).hex()


def test_bad_programs_never_stop_the_batch(serial_mixed):
    by = {i: serial_mixed[i] for i in BAD}
    assert (by[3].stage, by[3].error_code, by[3].program_hash) == ("parse", "PARSE_ERROR", "")
    assert by[3].diagnostics and by[3].diagnostics[0]["code"] == "PARSE_ERROR"
    assert (by[7].stage, by[7].error_code, by[7].executed_nodes) == ("gate", "UNDEFINED_VARIABLE", 0)
    assert "undefined variable" in by[7].error and len(by[7].program_hash) == 64
    assert (by[11].stage, by[11].error_code) == ("run", "FUEL_EXHAUSTED")  # a limit hit
    assert sum(r.is_success() for r in serial_mixed) == len(PROGRAMS) - len(BAD)


def test_gate_off_runs_what_the_gate_rejects():
    r, = run_many(["(load nowhere)"], backend="serial", gate=False)
    assert (r.stage, r.error_code) == ("run", "UNDEFINED_VARIABLE")


def test_process_pool_matches_serial_in_order(serial_mixed):
    rs = list(run_many(mixed(), backend="process", workers=2, chunksize=3, limits=Limits(fuel=5000),
                       inputs=[1.0, 2.0]))
    assert [r.index for r in rs] == list(range(len(PROGRAMS)))
    same(serial_mixed, rs)


def test_stopping_early_stops_the_workers():
    import multiprocessing as mp

    before = len(mp.active_children())
    it = run_many(PROGRAMS, backend="process", workers=2, chunksize=2)
    assert next(it).index == 0
    assert len(mp.active_children()) == before + 2
    it.close()
    assert len(mp.active_children()) == before


def test_unordered_yields_every_index_once():
    progs = PROGRAMS[:12]
    rs = list(run_many(progs, backend="process", workers=2, chunksize=1, ordered=False))
    assert sorted(r.index for r in rs) == list(range(12))
    for r in rs:
        assert r.output_vec == [float(r.index + 30)]


def test_inputs_per_program_and_bad_input():
    from nda.sandbox.runner import run

    progs = ["(vecop reduce_sum (scope))"] * 3
    rs = list(run_many(progs, [[1.0, 2.0], [0.5], "not numbers"], backend="serial"))
    seq = load_text(progs[0]).sequence
    assert rs[0].output_vec == run(seq, [1.0, 2.0]).output_vec and rs[0].output_dim == 1
    assert rs[1].output_vec == run(seq, [0.5]).output_vec != rs[0].output_vec
    assert (rs[2].stage, rs[2].error_code) == ("input", "INPUT_INVALID")
    with pytest.raises(ValueError, match="fewer inputs"):
        list(run_many(progs, [[1.0]], backend="serial"))


def test_program_forms_are_the_same_program_on_every_backend(tmp_path):
    text = "fn main() {\n    let s = 0\n    loop 5 {\n        s = s + 1\n    }\n    print(s)\n}\n"
    seq = load_text("(let s (int 0)) (loop 5 (store s (add (load s) (int 1)))) (print (load s))").sequence
    from nda.syntax.sexpr import parse_sexpr

    module = parse_sexpr(SUM_MODULE).module
    import nda

    forms = [text, Source(text, "text"), seq, list(seq), ir.Scope(seq), module, load_text(SUM_MODULE),
             b"not a container", 42, nda.parse(SUM_MODULE)]
    f = tmp_path / "count.nda"
    f.write_text(text)
    forms += [str(f), f, str(tmp_path / "missing.nda")]  # files: read by the parent for a pool
    serial = list(run_many(forms, backend="serial"))
    pooled = list(run_many(forms, backend="process", workers=2, chunksize=2))
    same(serial, pooled)
    assert serial[0].program_hash == serial[1].program_hash == serial[2].program_hash == serial[3].program_hash
    assert serial[0].output_log == ["[print] [5.0]"]
    assert serial[5].output_log == serial[6].output_log == serial[9].output_log == ["[print] [10.0]"]
    assert serial[7].error_code == "DECODE_ERROR"
    assert (serial[8].stage, serial[8].error_code) == ("input", "INPUT_INVALID")
    assert serial[10].program_hash == serial[11].program_hash == serial[0].program_hash
    assert (serial[12].stage, serial[12].error_code) == ("parse", "INPUT_INVALID")


def test_compiled_code_is_reused_within_a_worker():
    p = ("(matrix 128 896 :sign aa :extra 55) (norm 128 :weight ff :bias 00) "
         "(let s (int 0)) (loop 3 (store s (add (load s) (int 1))))")
    rs = list(run_many([p] * 4, backend="process", workers=1, tier="closure"))
    assert all(r.is_success() and r.tier == 1 for r in rs)
    # the first run compiles (tens of ms); the others find it in the worker's Engine (µs)
    assert all(r.compile_us * 20 < rs[0].compile_us for r in rs[1:])


def test_detect_syntax():
    assert detect_syntax("; c\n  (int 1)") == "sexpr"
    assert detect_syntax("// c\nfn main() { 1 }") == "text"


def test_invalid_arguments_raise_at_once():
    with pytest.raises(ValueError, match="backend"):
        run_many([], backend="threads")
    with pytest.raises(ValueError, match="tier"):
        run_many([], tier="fast")


def test_results_pickle_and_json():
    import pickle

    r, = run_many([prog(2)], backend="serial")
    r.id = "x"
    r2 = pickle.loads(pickle.dumps(r))
    assert r2.comparable() == r.comparable() and r2.id == "x"
    d = json.loads(json.dumps(r.to_dict()))
    assert d["index"] == 0 and d["ok"] and d["output_vec"] == [32.0] and d["tier"] in ("interp", "closure", "native")


def test_a_result_holds_its_hash_not_its_program():
    import gc

    from nda.core.ir import Node

    # a caller keeping thousands of results must not keep thousands of programs alive
    seq = load_text(prog(4)).sequence
    rs = list(run_many([seq, "(add (int 1)", "(load nowhere)"], backend="serial"))
    assert rs[0].program_hash == program_hash(seq).hex() and rs[0].output_vec == [34.0]
    for r in rs:
        assert r._info is None and r._hasher is None and r.error_node is None
        assert not any(isinstance(x, Node) for x in gc.get_referents(r))


# ---------------------------------------------------------------------------------------------
# Dead workers (test-only hooks run in the worker before each program)


def exit_on_marker(index, program):
    if isinstance(program, str) and "(int 666)" in program:
        os._exit(3)


def kill_on_marker(index, program):
    if isinstance(program, str) and "(int 667)" in program:
        os.kill(os.getpid(), signal.SIGKILL)


class KillOnce:
    """SIGKILL the worker the first time it meets the marker program (a kill from outside)."""

    def __init__(self, flag: str):
        self.flag = flag

    def __call__(self, index, program):
        if isinstance(program, str) and "(int 668)" in program and not Path(self.flag).exists():
            Path(self.flag).write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)


def test_worker_that_exits_or_is_killed_is_replaced(serial_mixed):
    progs = PROGRAMS[:10] + ["(int 666)"] + PROGRAMS[10:20] + ["(int 667)"] + PROGRAMS[20:]
    rs = list(run_many(progs, backend="process", workers=2, chunksize=4,
                       _hook=_combined_hook))
    assert [r.index for r in rs] == list(range(len(progs)))
    died = {r.index: r for r in rs if not r.is_success()}
    assert set(died) == {10, 21}
    for r in died.values():
        assert (r.stage, r.error_code, r.panicked) == ("worker", "INTERNAL", True)
    assert "exited with status 3" in died[10].error and "SIGKILL" in died[21].error
    assert "2 attempts" in died[10].error
    ok = [r for r in rs if r.index not in died]
    assert [r.output_vec for r in ok] == [[float(i + 30)] for i in range(24)]


def _combined_hook(index, program):
    exit_on_marker(index, program)
    kill_on_marker(index, program)


def test_a_program_whose_worker_was_killed_once_is_retried(tmp_path):
    progs = PROGRAMS[:6] + ["(int 668)"] + PROGRAMS[6:12]
    rs = list(run_many(progs, backend="process", workers=2, chunksize=3,
                       _hook=KillOnce(str(tmp_path / "flag"))))
    assert (tmp_path / "flag").exists()
    assert all(r.is_success() for r in rs)
    assert rs[6].output_vec == [668.0]


def test_process_worker_killed_mid_chunk_with_a_chunk_queued_behind():
    from nda.batch.pool import DEPTH

    assert DEPTH >= 2  # a worker holds the chunk it runs and the next one
    progs = PROGRAMS[:2] + ["(int 667)"] + PROGRAMS[2:8]
    rs = list(run_many(progs, backend="process", workers=1, chunksize=3, retries=0, _hook=kill_on_marker))
    assert [(r.index, r.stage, r.panicked) for r in rs if not r.is_success()] == [
        (0, "worker", True), (1, "worker", True), (2, "worker", True)]
    assert "SIGKILL" in rs[2].error and "1 attempt)" in rs[2].error
    assert [r.output_vec for r in rs[3:]] == [[float(i + 30)] for i in range(2, 8)]


def test_process_chunks_larger_than_a_pipe_wait_their_turn():
    from nda.batch.pool import PIPE_AHEAD_BYTES

    pad = "; " + "x" * (PIPE_AHEAD_BYTES // 2) + "\n"  # two programs make a chunk the pipe cannot hold
    progs = [pad + p for p in PROGRAMS[:9]]
    rs = list(run_many(progs, backend="process", workers=2, chunksize=2))
    assert [r.output_vec for r in rs] == [[float(i + 30)] for i in range(9)]


# ---------------------------------------------------------------------------------------------
# A read-only store shared by every worker


@pytest.fixture
def stored(tmp_path):
    path = str(tmp_path / "s.db")
    with SiteMap.open(path) as s:
        res = commit(s, load_text(SUM_MODULE), [1.0], name="summer")
        assert res.ok
        addr = res.names["sum"].hex()
        before = s.stats(), s.root()
    return path, addr, res.root.hex(), before


def test_store_shared_read_only_by_workers(stored):
    path, addr, root, before = stored
    progs = [f"(scope (int {n}) (call #{addr}))" for n in range(6)] + ["summer", root[:12], "nosuchname"]
    serial = list(run_many(progs, backend="serial", store=path))
    pooled = list(run_many(progs, backend="process", workers=2, chunksize=2, store=path))
    same(serial, pooled)
    assert [r.output_vec for r in serial[:6]] == [[float(n * (n + 1) // 2)] for n in range(6)]
    assert serial[6].output_log == ["[print] [10.0]"] and serial[7].program_hash == root
    assert serial[8].error_code == "INPUT_INVALID"
    with SiteMap.open(path) as s:
        assert (s.stats(), s.root()) == before
    no_store = list(run_many(progs[:1], backend="serial"))
    assert (no_store[0].stage, no_store[0].error_code) == ("gate", "CALL_TARGET_NOT_FOUND")


def test_read_only_store_refuses_writes(stored):
    path = stored[0]
    with SiteMap.open(path, read_only=True) as s:
        from nda.core.errors import StoreError

        assert s.resolve_name("summer") is not None
        with pytest.raises(StoreError, match="read-only"):
            s.put_program(load_text("(int 1)").sequence)
    from nda.core.errors import StoreError

    with pytest.raises(StoreError):
        run_many(["(int 1)"], store=str(Path(path).parent / "missing.db"))


# ---------------------------------------------------------------------------------------------
# Ray


def test_ray_missing_names_the_extra(monkeypatch):
    import sys

    from nda.batch.ray_backend import RayActors

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install "nda-toolchain\[ray\]"'):
        RayActors(2, None)
    with pytest.raises(ImportError, match=r'pip install "nda-toolchain\[ray\]"'):
        run_many(PROGRAMS, backend="ray")  # at once, before any program


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test hooks, for the actors
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_ray_matches_serial_and_replaces_dead_actors(ray_local, serial_mixed):
    rs = list(run_many(mixed(), backend="ray", workers=2, chunksize=5, limits=Limits(fuel=5000),
                       inputs=[1.0, 2.0]))
    same(serial_mixed, rs)
    assert ray_local.is_initialized()  # the user's instance is left running
    progs = PROGRAMS[:5] + ["(int 666)"] + PROGRAMS[5:9]
    rs = list(run_many(progs, backend="ray", workers=2, chunksize=3, _hook=exit_on_marker,
                       ordered=False))
    assert sorted(r.index for r in rs) == list(range(10))
    bad = [r for r in rs if not r.is_success()]
    assert [(r.index, r.stage, r.error_code, r.panicked) for r in bad] == [(5, "worker", "INTERNAL", True)]


def test_ray_actor_killed_mid_chunk_with_a_chunk_queued_behind(ray_local):
    from nda.batch.ray_backend import DEPTH

    assert DEPTH >= 2  # one actor holds the chunk it runs and the next one
    progs = PROGRAMS[:2] + ["(int 667)"] + PROGRAMS[2:8]
    rs = list(run_many(progs, backend="ray", workers=1, chunksize=3, retries=0, _hook=kill_on_marker))
    assert [r.index for r in rs] == list(range(9))
    # retries=0: the chunk that was running dies with its actor ...
    assert [(r.index, r.stage, r.panicked) for r in rs if not r.is_success()] == [
        (0, "worker", True), (1, "worker", True), (2, "worker", True)]
    assert "Error" in rs[2].error and "1 attempt)" in rs[2].error
    # ... the chunk queued behind it had not started: it runs on the replacement actor
    assert [r.output_vec for r in rs[3:]] == [[float(i + 30)] for i in range(2, 8)]


def test_ray_each_batch_runs_with_its_own_settings(ray_local):
    hungry = BAD[11]
    first = list(run_many([hungry, prog(1)], backend="ray", workers=2, limits=Limits(fuel=5000)))
    second = list(run_many([hungry, prog(1)], backend="ray", workers=2, limits=Limits(fuel=9)))
    assert first[0].error_code == second[0].error_code == "FUEL_EXHAUSTED"
    assert first[1].output_vec == [31.0] and second[1].error_code == "FUEL_EXHAUSTED"
    assert (first[0].fuel_used, second[0].fuel_used) == (5000, 9)


# ---------------------------------------------------------------------------------------------
# nda batch


def cli(*args):
    return CliRunner().invoke(main, ["batch", *map(str, args)], catch_exceptions=False)


@pytest.fixture
def jobfile(tmp_path):
    lines = [{"id": f"p{i}", "source": p} for i, p in enumerate(mixed()[:14])]
    lines.append({"id": "dim", "source": "(vecop reduce_sum (scope))", "dim": 3})
    lines.append({"id": "text", "source": "fn main() { print(7) }", "kind": "text"})
    p = tmp_path / "jobs.jsonl"
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    return p


def read_lines(p):
    return [json.loads(x) for x in Path(p).read_text().splitlines()]


def test_cli_jsonl_in_and_out(jobfile, tmp_path):
    out = tmp_path / "out.jsonl"
    r = cli(jobfile, "-o", out, "--workers", "2", "--fuel", "5000")
    assert r.exit_code == 1  # some programs failed
    lines = read_lines(out)
    assert [x["id"] for x in lines] == [f"p{i}" for i in range(14)] + ["dim", "text", 17]
    by = {x["id"]: x for x in lines}
    assert by["p0"]["ok"] and by["p0"]["output_vec"] == [30.0] and len(by["p0"]["hash"]) == 64
    assert by["p3"]["error_code"] == "PARSE_ERROR" and by["p11"]["error_code"] == "FUEL_EXHAUSTED"
    from nda.sandbox.runner import run

    assert by["dim"]["output_vec"] == run(load_text("(vecop reduce_sum (scope))").sequence, [1.0] * 3).output_vec
    assert by["text"]["output_log"] == ["[print] [7.0]"]
    assert by[17]["error_code"] == "INPUT_INVALID" and by[17]["stage"] == "input"
    for key in ("executed_nodes", "tier", "elapsed_us", "fuel_used", "index", "stage", "diagnostics"):
        assert key in by["p0"]
    assert "ok" in r.output and "PARSE_ERROR" in r.output and "programs/s" in r.output


def test_cli_resume_skips_done_ids(jobfile, tmp_path):
    out = tmp_path / "out.jsonl"
    assert cli(jobfile, "-o", out, "--backend", "serial", "--fuel", "5000").exit_code == 1
    full = read_lines(out)
    text = out.read_text().splitlines(keepends=True)
    out.write_text("".join(text[:5]) + text[5][:20])  # stopped mid-write
    assert done_ids(str(out)) == {json.dumps(f"p{i}") for i in range(5)}
    r = cli(jobfile, "-o", out, "--backend", "serial", "--resume", "--json", "--fuel", "5000")
    summary = json.loads(r.output)
    assert summary["skipped"] == 5 and summary["total"] == len(full) - 5
    again = read_lines(out)
    strip = lambda x: {k: v for k, v in x.items() if k not in ("elapsed_us", "compile_us", "run_us", "index")}  # noqa: E731
    assert [strip(x) for x in again] == [strip(x) for x in full]


def test_cli_json_summary_and_progress_do_not_mix(jobfile):
    r = CliRunner().invoke(main, ["batch", str(jobfile), "--backend", "serial", "--json",
                                                  "--progress", "--fuel", "5000"], catch_exceptions=False)
    summary = json.loads(r.stdout)  # exactly one JSON object on stdout
    assert summary["ok"] is False and summary["total"] == 17 and summary["succeeded"] == 13
    assert summary["failed"] == {"FUEL_EXHAUSTED": 1, "INPUT_INVALID": 1, "PARSE_ERROR": 1, "UNDEFINED_VARIABLE": 1}
    assert len(summary["results"]) == 17 and summary["programs_per_s"] > 0
    assert "programs/s" in r.stderr  # the progress bar went to stderr


def test_cli_directory_and_usage_errors(tmp_path):
    d = tmp_path / "progs"
    (d / "sub").mkdir(parents=True)
    (d / "a.sexpr").write_text(prog(1))
    (d / "sub" / "b.nda").write_text("fn main() { print(2) }")
    (d / "notes.txt").write_text("ignored")
    r = cli(d, "--backend", "serial")
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [x["id"] for x in lines] == ["a.sexpr", "sub/b.nda"] and r.exit_code == 0
    assert cli(tmp_path / "nope.jsonl").exit_code == 2
    assert cli(d, "--resume").exit_code == 2
    assert cli(d, "--tier", "warp").exit_code == 2


def test_cli_commit_stores_passing_programs(jobfile, tmp_path):
    db = tmp_path / "st" / "c.db"
    out = tmp_path / "out.jsonl"
    r = cli(jobfile, "-o", out, "--commit", "--store", db, "--json", "--workers", "2", "--fuel", "5000")
    summary = json.loads(r.output)
    assert summary["committed"] == summary["succeeded"] == 13
    lines = read_lines(out)
    with SiteMap.open(str(db)) as s:
        assert len(s.log()) == 1  # one batched transaction
        for x in lines:
            if x["ok"]:
                assert x["stored"] == x["hash"] and s.get_node(bytes.fromhex(x["hash"])) is not None
            else:
                assert "stored" not in x
        assert s.verify() == []
    assert cli(jobfile, "--commit", "--no-gate", "--store", db).exit_code == 2


def test_cli_commit_stores_a_module_like_nda_commit(tmp_path):
    src = "fn add1(x: int) -> int {\n    return x + 1\n}\n\nfn main() { print(add1(2)) }\n"
    jobs = tmp_path / "m.jsonl"
    jobs.write_text(json.dumps({"id": "m", "source": src}) + "\n")
    db = tmp_path / "m.db"
    r = cli(jobs, "--commit", "--store", db, "--backend", "serial", "--json")
    assert json.loads(r.output)["committed"] == 1
    with SiteMap.open(str(db)) as s:
        assert s.names() == []  # nothing bound implicitly (as `nda commit` without --name)
        assert s.verify() == []
    with SiteMap.open(str(tmp_path / "c.db")) as s2:  # the same program through `commit`
        res = commit(s2, load_text(src, "text"))
        assert res.ok and res.root.hex() == json.loads(r.output)["results"][0]["stored"]
        with SiteMap.open(str(db)) as s:
            assert s2.root() == s.root()  # the same state, entry for entry


# ---------------------------------------------------------------------------------------------
# nda bench batch


def test_bench_programs_are_the_same_programs_as_their_python_twins():
    from nda.batch.bench import measure, programs

    sx, py = programs(seed=7, n=5)
    assert sx != programs(seed=8, n=5)[0]  # every run draws fresh programs
    m = measure(runs=1, n=30, backends=("serial", "process"), workers=2)
    assert m["cpython"]["agree"] == 30  # NDA output = float32 of the Python result, every program
    assert m["process×2"]["identical"] and m["serial"]["ok"] == 30
    assert 90 <= m["meta"]["mean_nodes"] <= 115
