"""Regression tests for the security review (docs/security.md): hostile programs must never
crash the host, hold unbounded memory, or escape a limit."""

import subprocess
import sys
import textwrap

import pytest

DEEP_AFTER_CALL = textwrap.dedent("""
    import sys
    from nda.core import ir
    from nda.sandbox import runner as sandbox
    from nda.core.link import link_module, MemoryResolver
    from nda.syntax.sexpr import parse_sexpr
    base = sys.getrecursionlimit()
    u = parse_sexpr("(module (def f (scope (int 1))) (def main (scope (call @f))))")
    linked = link_module(u.module); st = MemoryResolver(); st.add_linked(linked)
    for tier in ("interp", "closure", "native"):
        assert sandbox.run(linked.main_sequence(), [1.0], store=st, tier=tier).output_vec == [1.0]
    assert sys.getrecursionlimit() == base, "recursion limit left raised"
    n = ir.Int(1)
    for _ in range(100000):
        n = ir.Add(n, ir.Int(1))
    for tier in ("interp", "closure", "native"):
        r = sandbox.run((ir.Let(ir.name_hash("x"), n),), [1.0], tier=tier)
        assert r.error_code == "VALIDATION_ERROR" and not r.panicked, (r.error_code, r.error)
        assert r.error == "node nesting exceeds 256"
    assert sys.getrecursionlimit() == base
    print("ok")
""")


def test_deep_program_after_a_call_is_rejected_not_a_crash():
    """Review #1: a Call used to raise the recursion limit for good; a 10^5-deep program then
    overflowed the C stack (SIGSEGV) while its tuple was hashed for a cache key."""
    out = subprocess.run([sys.executable, "-c", DEEP_AFTER_CALL], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_sexpr_plane_expansion_is_budgeted():
    """Review #2: 39 bytes of S-expression used to expand to 1 GiB of planes."""
    import pytest

    from nda.core.errors import ParseError
    from nda.syntax.sexpr import parse_sexpr

    with pytest.raises(ParseError) as e:
        parse_sexpr("(matrix 65535 65535 :sign aa :extra 55)")
    assert "planes exceed" in str(e.value) and e.value.diagnostic().span.col == 27
    small = parse_sexpr("(matrix 4 8 :sign aa :extra 55)", max_plane_bytes=8).sequence[0]
    assert small.sign == b"\xaa" * 4
    with pytest.raises(ParseError):
        parse_sexpr("(matrix 4 8 :sign aa :extra 55)", max_plane_bytes=7)


def test_sexpr_deep_nesting_with_a_raised_max_depth():
    """Review #12: a raised max_depth used to hit Python's recursion limit (uncaught)."""
    import pytest

    from nda.core.errors import ParseError
    from nda.syntax.sexpr import parse_sexpr

    src = "(scope " * 900 + ")" * 900
    node = parse_sexpr(src, max_depth=1000).sequence[0]
    from nda.core import ir
    assert ir.node_depth(node) == 900
    with pytest.raises(ParseError):
        parse_sexpr(src)


def test_cli_refuses_a_huge_dim_before_allocating():
    """Review #11: --dim 10^9 used to allocate gigabytes before max_input_len was checked."""
    import json
    from pathlib import Path

    from click.testing import CliRunner

    from nda.cli.app import main

    ex = Path(__file__).resolve().parents[1] / "examples" / "counter.sexpr"
    r = CliRunner().invoke(main, ["run", str(ex), "--dim", "1000000000", "--json"])
    assert r.exit_code == 2
    assert "max_input_len" in json.loads(r.output)["error"]


def test_text_operator_chains_are_bounded_by_node_nesting(tmp_path):
    """Review #8: 10^5-long operator / unary / else-if chains parse without syntactic nesting
    but lower to 10^5-deep trees; they are now a typed parse error at the function."""
    import json

    import pytest
    from click.testing import CliRunner

    from nda.cli.app import main
    from nda.core.errors import ParseError
    from nda.syntax.text import parse_text

    chains = {
        "binary": "fn main() { let x = 1" + " + 1" * 100000 + " }",
        "unary": "fn main() { let x = " + "-" * 100000 + "1 }",
        "else-if": "fn main() { let x = 1; if x == 1 { x = 2 }" + " else if x == 1 { x = 2 }" * 3000 + " }",
    }
    for what, src in chains.items():
        with pytest.raises(ParseError) as e:
            parse_text(src)
        assert e.value.diagnostics[0].message == "node nesting exceeds 256", what
        f = tmp_path / f"{what}.nda"
        f.write_text(src)
        for verb in (["run"], ["fmt", "--to", "sexpr"], ["check"]):
            r = CliRunner().invoke(main, [*verb, str(f), "--json"])
            d = json.loads(r.output.splitlines()[0])
            assert r.exit_code in (1, 2) and d["ok"] is False, (what, verb, r.output[:300])
            assert "node nesting exceeds 256" in r.output, (what, verb)
    assert parse_text("fn main() { let x = 1" + " + 1" * 200 + " }").defs[0].name == "main"


# --- helpers for the resource-bounded checks below ---------------------------------------------

TIERS = ("interp", "closure", "native")


def _limited(code: str, address_space: int, timeout: float = 60) -> str:
    """Run `code` in a fresh interpreter whose address space is capped (RLIMIT_AS), so that a
    regression fails the test (MemoryError, a panic, or a timeout) instead of the machine."""
    prologue = ("import resource\n"
                f"resource.setrlimit(resource.RLIMIT_AS, ({address_space}, {address_space}))\n")
    out = subprocess.run([sys.executable, "-c", prologue + textwrap.dedent(code)],
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _agree(results):
    first = results[0].observable()
    assert all(r.observable() == first for r in results[1:]), [r.observable()[3:9] for r in results]
    return results[0]


# --- review #6: an empty-body Loop -------------------------------------------------------------

EMPTY_LOOPS = """
    import time
    from nda.sandbox import runner as sandbox
    from nda.syntax.sexpr import parse_sexpr
    from nda.runtime.state import Limits
    from nda.syntax.text import parse_text
    TIERS = ("interp", "closure", "native")
    def agree(rs):
        assert all(r.observable() == rs[0].observable() for r in rs), [r.observable()[3:9] for r in rs]
        return rs[0]
    lim = Limits(deadline_ms=2000, fuel=1000)
    flat = parse_sexpr("(int 7) (loop 4294967295) (loop 4294967295)").sequence
    r = agree([sandbox.run(flat, [1.0], tier=t, optimize=o, limits=lim) for t in TIERS for o in (True, False)])
    assert r.is_success() and r.output_vec == [7.0]
    assert (r.executed_nodes, r.loop_iterations) == (3, 2)  # each Loop counts once: one entry
    text = parse_text("fn main(x: vec) { loop 4294967295 { } }")
    r = agree([sandbox.run(text, [2.0], tier=t, limits=lim) for t in TIERS])
    assert r.is_success() and r.loop_iterations == 1
    # nested: every inner Loop is one counted node, so fuel stops it at exactly 1,000 nodes
    nested = parse_sexpr("(loop 4294967295 (loop 4294967295))").sequence
    r = agree([sandbox.run(nested, [1.0], tier=t, optimize=o, limits=lim) for t in TIERS for o in (True, False)])
    assert (r.error_code, r.executed_nodes, r.loop_iterations) == ("FUEL_EXHAUSTED", 1000, 1000)
    # ... and the deadline stops it when fuel does not (tier 2 may finish: 2^32 nodes natively)
    for tier in TIERS:
        t1 = time.monotonic()
        r = sandbox.run(nested, [1.0], tier=tier, limits=Limits(deadline_ms=100, fuel=10**15))
        assert time.monotonic() - t1 < 1.5, tier
        assert r.error_code == "DEADLINE_EXCEEDED" or (
            r.is_success() and r.executed_nodes == 1 << 32 and r.loop_iterations == 1 << 32), (tier, r.error)
    print("ok")
"""


def test_empty_body_loops_are_skipped_on_every_tier():
    """Review #6: `(loop 4294967295)` ran 2^32 empty iterations (no node counted, so neither
    fuel nor the deadline was ever checked): minutes on tiers 0/1, forever when nested.
    (In a subprocess with a timeout: a regression fails instead of hanging.)"""
    assert _limited(EMPTY_LOOPS, 4 << 30, timeout=30).strip() == "ok"


# --- review #7: costly nodes and the deadline ----------------------------------------------------

def test_deadline_is_checked_after_costly_kernels():
    """Review #7: the deadline was polled every 1,024 nodes only, so 1,024 big Matrix or Dot
    nodes ran first (47 s for a 100 ms deadline). A kernel of ≥ 2^16 elements checks it."""
    import time

    import numpy as np

    from nda.sandbox import runner as sandbox
    from nda.runtime.state import Limits
    from nda.syntax.text import parse_text

    lim = Limits(deadline_ms=100)
    cases = [
        ("fn main() { loop 600 { matrix[4096, 4096] } }", np.ones(4096, dtype=np.float32)),
        ("fn main(x: vec) { loop 5000 { dot(x, x) } }", np.full(1 << 20, 3e38, dtype=np.float32)),
        ("fn main(x: vec) { loop 5000 { let y = reduce_sum(silu(x)) } }",
         np.linspace(-3, 3, 1 << 20).astype(np.float32)),
    ]
    for src, inp in cases:
        prog = parse_text(src)
        for tier in TIERS:
            t0 = time.monotonic()
            r = sandbox.run(prog, inp, tier=tier, limits=lim)
            assert r.error_code == "DEADLINE_EXCEEDED", (src, tier, r.error_code, r.error)
            assert time.monotonic() - t0 < 1.0, (src, tier, time.monotonic() - t0)


def test_dot_sums_in_index_order_without_a_python_loop():
    """Review #7: Dot with extreme scales summed 2^20 products in a Python loop (0.2 s per
    node). `np.add.accumulate` is the same sequential float32 sum, bit for bit."""
    import time

    import numpy as np

    from nda.runtime import kernels as K
    from nda.runtime.values import NdaVec

    def reference(l, r):
        acc = np.float32(0.0)
        with np.errstate(all="ignore"):
            for x in l.to_f32() * r.to_f32():
                acc = np.float32(acc + x)
        return acc

    rng = np.random.default_rng(7)
    for la, lb, codes in [(127, 0, [2, -2, 1, 2]), (127, 0, [-2, 2, 1]), (-128, -128, [-1, -1]),
                          (-128, -20, [1, 2, -1]), (126, 1, [2] * 40 + [-2] * 3), (100, 27, [1, -1, 2])]:
        l, r = NdaVec.from_codes(np.array(codes, np.int8), la), NdaVec.from_codes(np.ones(len(codes), np.int8), lb)
        assert K.dot(l, r).view(np.uint32) == reference(l, r).view(np.uint32), (la, lb, codes)
    for _ in range(200):
        n = int(rng.integers(0, 300))
        la, lb = (int(x) for x in rng.choice([-128, -100, -75, 0, 64, 100, 126, 127], 2))
        l = NdaVec.from_codes(rng.choice(np.array([-2, -1, 1, 2], np.int8), n), la)
        r = NdaVec.from_codes(rng.choice(np.array([-2, -1, 1, 2], np.int8), n), lb)
        assert K.dot(l, r).view(np.uint32) == reference(l, r).view(np.uint32), (n, la, lb)
    big = NdaVec.from_codes(rng.choice(np.array([-2, -1, 1, 2], np.int8), 1 << 20), 127)
    t0 = time.monotonic()
    K.dot(big, big)
    assert time.monotonic() - t0 < 0.1


# --- review #5: Syscall arguments and the memory limit -------------------------------------------

SYSCALL_ARGS = """
    import numpy as np
    from nda.sandbox import runner as sandbox
    from nda.syntax import sexpr
    from nda.runtime.state import Limits
    inp = np.ones(1 << 20, dtype=np.float32)   # a Vector of 262,152 accounted bytes
    lim = Limits(max_memory_bytes=16 << 20)
    def prog(k):
        return sexpr.parse_sexpr("(let x (scope)) (syscall 0 " + "(vecop negate (load x)) " * k + ")").sequence
    def runs(k):
        rs = [sandbox.run(prog(k), inp, tier=t, optimize=o, limits=lim)
              for t in ("interp", "closure", "native") for o in (True, False)]
        assert all(r.observable() == rs[0].observable() for r in rs), [r.error for r in rs]
        return rs[0]
    ok = runs(40)            # ≈ 10.6 MB of arguments: under the limit, the run is unchanged
    assert ok.is_success() and ok.output_vec == [0.0] and ok.executed_nodes == 3 + 2 * 40, ok.error
    bad = runs(2000)         # ≈ 524 MB of arguments: stopped once they pass 16 MiB
    assert bad.error_code == "MEMORY_LIMIT", bad.error
    print(bad.error, bad.executed_nodes)
"""


def test_syscall_arguments_are_memory_check_points():
    """Review #5: a 4,000-argument Syscall held 4 GB (1 GB accounted) under a 256 MiB limit and
    succeeded: arguments are evaluated with no statement boundary in between. Each argument is
    now a memory check point (docs/decisions.md #2), on every tier."""
    out = _limited(SYSCALL_ARGS, 3 << 30)
    msg, nodes = out.strip().rsplit(" ", 1)
    assert msg.startswith("memory limit exceeded: ") and msg.endswith(f" > {16 << 20} bytes")
    used = int(msg.split()[3])
    assert 16 << 20 < used <= (16 << 20) + 262152  # the first argument past the limit stops it
    assert int(nodes) < 3 + 2 * 70


# --- review #3 / #4: host memory of decoded weights and caches -----------------------------------

BIG_MATRIX = """
    import resource
    from nda.sandbox import runner as sandbox
    from nda.syntax.text import parse_text
    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    prog = parse_text("fn main() { matrix[16384, 16384] }")   # 2 × 32 MiB of planes
    base = peak()
    outs = []
    for tier in ("interp", "closure", "native"):
        r = sandbox.run(prog, [1.0] * 16384, tier=tier)
        assert r.is_success() and r.output_dim == 16384, r.error
        outs.append(r.observable())
    assert outs[0] == outs[1] == outs[2]
    print(peak() - base)
"""


def test_a_huge_matrix_needs_a_small_multiple_of_its_planes():
    """Review #3: a 35-byte program's 16384² Matrix was decoded whole (float32: 1 GiB, plus
    index arrays): 1.4–1.9 GB of host memory under a 256 MiB limit. It is now decoded in row
    blocks (planes: 64 MiB; growth measured from after parsing)."""
    grew = int(_limited(BIG_MATRIX, 1536 << 20).strip())
    assert grew < 4 * (64 << 20), grew


@pytest.mark.parametrize("native", [True, False])
def test_blocked_gemv_equals_the_whole_decode(native):
    import numpy as np

    from nda.runtime import kernels_tensor as T
    from nda.runtime.values import quantize

    rng = np.random.default_rng(3)
    rows, cols = 1100, 3997  # 4.4 M weights (> WHOLE_F32_BYTES / 4), padded rows
    nb = (cols + 7) // 8
    s, e = (rng.integers(0, 256, rows * nb, dtype=np.uint8).tobytes() for _ in range(2))
    w = T.MatrixWeights(rows, cols, s, e, native=native)
    assert w._planes is not None and w.idx is None and not w.keeps_whole  # blocked: plane views only
    if w.native:
        assert w.nbytes == 2 * rows * nb  # the planes: nothing decoded, ever
    else:
        assert w.nbytes == 2 * rows * nb + 32 * rows * nb + w.lut.nbytes  # planes + float32 once kept
    whole = T.decode_matrix_f32(rows, cols, s, e)
    x = quantize(rng.standard_normal(cols).astype(np.float32))
    ref = T._encode_lut(cols).take(np.dot(whole, x.codes.astype(np.float32)).astype(np.intp))
    calls = []
    out = w.apply(x, 3, lambda: calls.append(1))
    assert out.codes.tolist() == ref.tolist() and out.log2 == 3 + x.log2
    assert len(calls) >= 2  # called between row blocks (the deadline check)
    assert w.apply(x, 3).codes.tolist() == ref.tolist()  # second run (numpy: float32 kept, ≤ 64 MiB)
    assert (w._f32 is None) == w.native

    def stop():
        raise RuntimeError("deadline")
    with pytest.raises(RuntimeError):
        T.MatrixWeights(rows, cols, s, e, native=native).apply(x, 0, stop)


CACHE_GROWTH = """
    import gc
    from nda.sandbox import runner as sandbox
    from nda.syntax.text import parse_text
    def rss():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) * 1024
    after = []
    for i in range(12):   # 12 distinct programs, 16 MiB of planes each
        r = sandbox.run(parse_text("fn main() { matrix[8192, %d] }" % (8192 - 8 * i)), [1.0] * (8192 - 8 * i), tier="closure")
        assert r.is_success(), r.error
        gc.collect()
        after.append(rss())
    from nda.tiers.closure import default_engine
    e = default_engine()
    assert e.program_bytes <= e.program_byte_budget and sandbox._PROGRAM_INFO.nbytes <= 64 << 20
    print(after[5], after[-1])
"""


def test_compile_caches_are_bounded_in_bytes():
    """Review #4: every distinct program kept its planes (and once its decoded weights) in the
    program cache and the sandbox's program-info cache: +32 MB (+272 MB) per program, for up
    to 256/512 programs. Both caches (and the callee cache) are now bounded in bytes too."""
    mid, end = (int(x) for x in _limited(CACHE_GROWTH, 3 << 30).split())
    assert end - mid < 48 << 20, (mid, end)  # 6 more programs (+96 MiB of planes) at a plateau


def test_cache_byte_accounting():
    import numpy as np

    from nda.core import ir
    from nda.sandbox import runner as sandbox
    from nda.tiers.closure import Engine

    def matrix_prog(k):  # 64 × 1024: 8 KiB per plane, a distinct content per k
        return (ir.Matrix(64, 1024, 0, bytes([k]) * 8192, bytes([255 - k]) * 8192),)

    one = Engine()
    assert sandbox.run(matrix_prog(0), np.ones(1024, np.float32), tier="closure", engine=one).is_success()
    unit = next(iter(one.programs.values())).nbytes
    assert unit > 2 * 8192  # its planes (and the numpy way's decode) counted
    budget = 3 * unit + unit // 2
    eng = Engine(program_byte_budget=budget, kernel_byte_budget=1 << 30)
    for k in range(8):
        r = sandbox.run(matrix_prog(k), np.ones(1024, np.float32), tier="closure", engine=eng)
        assert r.is_success()
        assert eng.program_bytes == sum(u.nbytes for u in eng.programs.values()) <= budget
    assert len(eng.programs) == 3
    assert all(u.nbytes == unit for u in eng.programs.values())
    huge = Engine(program_byte_budget=1000)  # a unit over the whole budget is not kept
    assert sandbox.run(matrix_prog(1), np.ones(1024, np.float32), tier="closure", engine=huge).is_success()
    assert len(huge.programs) == 0 and huge.program_bytes == 0
    info = sandbox._ProgramInfoCache(byte_budget=50_000)
    progs = [matrix_prog(k) for k in range(6)]
    for p in progs:
        info.get(p)
    assert 1 <= len(info) < 6 and info.nbytes <= 50_000
    assert info.get(progs[-1]).as_tuple() == sandbox._compute_program_info(progs[-1]).as_tuple()


# --- review #9: the callee cache and Limits ------------------------------------------------------

def test_callee_depth_is_checked_against_the_current_limits():
    """Review #9: a callee compiled by a run with max_node_depth 1000 kept that verdict for a
    later run with 256 (limit bypassed), and the reverse order failed with "exceeds 1000"."""
    from nda.core import ir
    from nda.sandbox import runner as sandbox
    from nda.syntax import sexpr
    from nda.tiers.closure import Engine
    from nda.runtime.state import Limits

    u = sexpr.parse_sexpr("(module (def main (scope (call @f))) (def f (scope (int 1))))")
    n = ir.Int(1)
    for _ in range(299):
        n = ir.Scope((n,))
    mod = ir.Module(tuple(ir.Def(d.name, n) if d.name == "f" else d for d in u.module.defs))
    big, small = Limits(max_node_depth=1000), Limits()
    for order in ((big, small, big), (small, big, small)):
        for tier in TIERS:
            eng = Engine()
            for lim in order:
                r = sandbox.run(mod, [1.0], tier=tier, limits=lim, engine=eng)
                if lim is big:
                    assert r.is_success() and r.output_vec == [1.0], (tier, r.error)
                else:
                    assert (r.error_code, r.error) == ("VALIDATION_ERROR", "node nesting exceeds 256"), tier


def test_native_scratch_pools_are_bounded_per_engine():
    """Found while fixing #4: cached tier 2 units keep their regions' spare scratch blocks
    (up to 4 × 8 MiB per region), +4 MB per distinct program here. The spare blocks of one
    engine's regions now share a byte budget."""
    from nda.tiers import native
    from nda.sandbox import runner as sandbox
    from nda.syntax import sexpr
    from nda.tiers.closure import Engine

    eng = Engine()
    budget = native._BUDGETS.setdefault(eng, native._PoolBudget(3 << 20))
    for i in range(6):  # a region at a closed position records 200,000 pushes (0.8 MB block)
        src = "(let s (int %d)) (add (scope (loop 100000 (store s (add (load s) (int 1))))) (int 1))" % i
        r = sandbox.run(sexpr.parse_sexpr(src).sequence, [1.0], tier="native", engine=eng)
        assert r.is_success() and r.executed_nodes == 400006, r.error
        assert 0 <= budget.bytes <= 3 << 20
    assert budget.bytes >= 1 << 20  # blocks are still pooled within the budget
    from nda.tiers import native_codegen
    assert all(native.buffer_offset(k) == native_codegen.buffer_offset(k) for k in range(40))
    eng.cache_clear()
    import gc
    gc.collect()
    assert budget.bytes == 0  # dropped units return their blocks' bytes
