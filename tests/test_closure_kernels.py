"""Tier 1's kernel cache (`closure.Engine.matrix_weights` / `norm_gain`): decoded planes are
shared by content, bounded in entries and bytes, and never change a result."""

from __future__ import annotations

import numpy as np

from nda.core import ir
from nda.tiers.closure import Engine
from nda.sandbox.runner import run
from nda.syntax.sexpr import parse_sexpr


def _matrix(rows, cols, byte):
    n = rows * ((cols + 7) // 8)
    return ir.Matrix(rows, cols, 0, bytes([byte]) * n, bytes([byte ^ 0xFF]) * n)


def test_equal_planes_share_one_decode():
    eng = Engine()
    a, b = _matrix(4, 16, 0xA5), _matrix(4, 16, 0xA5)
    assert eng.matrix_weights(a) is eng.matrix_weights(b)
    assert eng.matrix_weights(_matrix(4, 16, 0x5A)) is not eng.matrix_weights(a)
    n1 = ir.Norm(16, b"\xff\x0f", b"\x00\xf0")
    assert eng.norm_gain(n1) is eng.norm_gain(ir.Norm(16, b"\xff\x0f", b"\x00\xf0"))
    info = eng.cache_info()
    assert info["cached_kernels"] == 3 and info["kernel_bytes"] > 0
    eng.cache_clear()
    assert eng.cache_info()["cached_kernels"] == 0 and eng.kernel_bytes == 0


def test_kernel_cache_bounded_by_entries_and_bytes():
    eng = Engine(kernel_capacity=3)
    for k in range(6):
        eng.matrix_weights(_matrix(2, 8, k))
    assert len(eng.kernels) == 3
    assert eng.kernel_bytes == sum(w.nbytes for w in eng.kernels.values())
    big = Engine(kernel_byte_budget=1)  # every entry is over budget: only the newest is kept
    for k in range(4):
        big.matrix_weights(_matrix(2, 8, k))
    assert len(big.kernels) == 1


def test_block_results_do_not_depend_on_the_cache():
    src = ("(matrix 16 24 :sign a5 :extra 3c) (norm 16 :weight ff :bias 00) "
           "(matrix 16 16 :sign 0f :extra f0) (norm 16 :weight 5a :bias c3) "
           "(matrix 16 16 :sign 0f :extra f0) (norm 16 :weight ff :bias 00)")
    seq = parse_sexpr(src).sequence
    inp = np.linspace(-3, 3, 24).astype(np.float32)
    ref = run(seq, inp, tier="interp")
    assert ref.is_success(), ref.error
    eng = Engine()
    for _ in range(3):  # cold, second execution (matrices kept), warm
        assert run(seq, inp, tier="closure", engine=eng).observable() == ref.observable()
    assert eng.cache_info()["cached_kernels"] == 4  # equal 16×16 matrices and equal norms share
    assert run(seq, inp, tier="closure", engine=Engine(kernel_capacity=1)).observable() == ref.observable()


def test_kernel_only_programs_skip_an_optimizer_that_would_not_change_them():
    from nda.tiers.closure import _opt_inert
    from nda.tiers.optimize import optimize_sequence

    seq = tuple(parse_sexpr(open_block4()).sequence)
    assert _opt_inert(seq)
    assert all(a is b for a, b in zip(optimize_sequence(seq), seq)) and len(optimize_sequence(seq)) == len(seq)
    assert not _opt_inert(seq + tuple(parse_sexpr("(loop 2 (int 1))").sequence))


def open_block4() -> str:
    from pathlib import Path

    return (Path(__file__).resolve().parents[1] / "examples" / "block4.sexpr").read_text()
