"""Tests for nda.runtime.kernels: GEMV, RMS norm, Add, VecOp, Compare, Bitwise, Math, MathFunc, Cast,
Dot, Gemv and the simulated machine (values-and-kernels.md §7–§13, language.md §3.2–§3.3)."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nda.core.errors import DIMENSION_MISMATCH, OUT_OF_BOUNDS, TYPE_ERROR, NdaRuntimeError
from fractions import Fraction

from nda.runtime.kernels import (
    Machine, _cr_slow, _fraction_to_f32, add_vals, bitwise, bitwise_not, cast, compare, cos_f32,
    MatrixWeights, NormGain, decode_matrix_f32, dot, exp_f32, gemv, isqrt_inv, math, mathfunc,
    matrix_apply, matrix_weights, norm_apply, norm_gain, peek, poke, print_line, silu_f32, sin_f32, syscall_print_line, vec_add, vecop,
)
from nda.runtime.values import (
    I32_MAX, I32_MIN, NdaVec, Scalar, bits_f32, encode, f32_bits, quantize, wrap32,
)

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

codes_st = st.sampled_from([-2, -1, 1, 2])
f32_st = st.integers(0, 0xFFFFFFFF).map(bits_f32)


def vec(codes, log2=0) -> NdaVec:
    return NdaVec.from_codes(np.array(codes, dtype=np.int8), log2)


def raises(code: str, message: str):
    class _Ctx:
        def __enter__(self):
            return self

        def __exit__(self, et, ev, tb):
            assert et is NdaRuntimeError, f"expected NdaRuntimeError, got {et}"
            assert ev.code == code and ev.message == message, (ev.code, ev.message)
            return True

    return _Ctx()


def plain_code(sign: bytes, extra: bytes, bit: int) -> int:
    s = (sign[bit >> 3] >> (bit & 7)) & 1
    e = (extra[bit >> 3] >> (bit & 7)) & 1
    return {(0, 0): -2, (0, 1): -1, (1, 0): 1, (1, 1): 2}[(s, e)]


def bits(x) -> int:
    return f32_bits(np.float32(x))


# ------------------------------------------------------------------ §7 GEMV


def test_gemv_2x8_worked_example():
    w = matrix_weights(2, 8, bytes.fromhex("ff0f"), bytes.fromhex("00f0"))
    assert w.codes.tolist() == [[1] * 8, [1, 1, 1, 1, -1, -1, -1, -1]] and w.codes.dtype == np.int8
    assert np.asarray(w).tolist() == w.codes.tolist() and w.shape == (2, 8)
    x = quantize([2, -2, 1, 1, -1, 2, 0.5, -0.5])
    assert x.codes.tolist() == [2, -2, 1, 1, -1, 2, 1, -1] and x.log2 == 0
    out = matrix_apply(w, 8, 0, x)
    assert out.codes.tolist() == [2, 1] and out.log2 == 0 and out.to_f32().tolist() == [2.0, 1.0]


def test_reference_chain_matrix_then_norm():
    w = matrix_weights(128, 896, b"\xaa" * (128 * 112), b"\x55" * (128 * 112))
    assert w.codes[0, :4].tolist() == [-1, 1, -1, 1]
    x = quantize([1.0] * 896)
    y = matrix_apply(w, 896, 0, x)
    assert y.codes.tolist() == [1] * 128 and y.log2 == -1
    assert y.to_f32().tolist() == [0.5] * 128
    z = norm_apply(norm_gain(128, b"\xff" * 16, b"\x00" * 16), 128, y)
    assert z.codes.tolist() == [1] * 128 and z.log2 == 0


def test_matrix_dimension_mismatch_and_broadcasts():
    w = matrix_weights(1, 3, b"\x07", b"\x00")  # +1 +1 +1
    msg = "Matrix GEMV dimension mismatch: input len 2 \u2260 matrix cols 3"
    with raises(DIMENSION_MISMATCH, msg):
        matrix_apply(w, 3, 0, vec([1, 1]))
    out = matrix_apply(w, 3, 0, 0)  # Int 0 broadcasts to +2
    assert out.codes.tolist() == [2] and out.log2 == 0
    out = matrix_apply(w, 3, 2, Scalar(-1, 5))
    assert out.codes.tolist() == [-2] and out.log2 == 7
    out = matrix_apply(w, 3, 0, np.float32(-0.25))  # code −2, log2 round(log2 0.125) = −3
    assert out.codes.tolist() == [-2] and out.log2 == -3
    assert matrix_apply(w, 3, 127, vec([2, 2, 2], 100)).log2 == 127  # saturated
    assert matrix_apply(w, 3, -128, vec([2, 2, 2], -100)).log2 == -128


def test_matrix_degenerate_shapes():
    w = matrix_weights(3, 0, b"", b"")
    assert matrix_apply(w, 0, 0, vec([])).codes.tolist() == [1, 1, 1]  # acc 0 → +1
    w = matrix_weights(0, 5, b"", b"")
    assert matrix_apply(w, 5, 1, vec([1] * 5)).n == 0
    with pytest.raises(ValueError):
        matrix_weights(2, 9, b"\x00" * 3, b"\x00" * 4)


@given(st.integers(0, 9), st.integers(0, 40), st.integers(-128, 127), st.integers(-128, 127),
       st.data())
@settings(max_examples=200)
def test_gemv_against_plain_integer_product(rows, cols, scale, xlog2, data):
    stride = (cols + 7) // 8
    sign = data.draw(st.binary(min_size=rows * stride, max_size=rows * stride))
    extra = data.draw(st.binary(min_size=rows * stride, max_size=rows * stride))
    xc = data.draw(st.lists(codes_st, min_size=cols, max_size=cols))
    w = matrix_weights(rows, cols, sign, extra)
    out = matrix_apply(w, cols, scale, vec(xc, xlog2))
    expect = []
    for r in range(rows):
        acc = sum(plain_code(sign, extra, r * stride * 8 + c) * xc[c] for c in range(cols))
        expect.append(encode(acc))
    assert out.codes.tolist() == expect
    assert out.log2 == max(-128, min(127, scale + xlog2))
    # a plain int8 matrix (no cached float32 form) gives the same result
    assert matrix_apply(np.array(w), cols, scale, vec(xc, xlog2)) == out
    assert bytes(out.sign) == bytes(vec(expect).sign)  # padding written as 0


def test_gemv_saturating_accumulators():
    cols = 1000
    w = matrix_weights(2, cols, b"\xff" * 125 + b"\x00" * 125, b"\xff" * 125 + b"\x00" * 125)
    out = matrix_apply(w, cols, 0, vec([2] * cols))
    assert out.codes.tolist() == [2, -2]  # ±4000 saturate


# ------------------------------------------------------------------ §8 RMS norm


def plain_norm(codes, gain):
    n = len(codes)
    sum_sq = sum(c * c for c in codes)
    v = ((sum_sq << 14) // n) + 1
    k = v.bit_length()
    h = k // 2
    x = 1 << (14 - h) if h <= 14 else 1
    for _ in range(3):
        t = (v * x * x) >> 14
        x = (x * max(0, 3 * 2 ** 14 - t)) >> 15
        if x == 0:
            break
    inv = min(x, 2 ** 14)
    out = []
    for c, g in zip(codes, gain):
        nrm = (abs(c) * inv // 128) * (1 if c > 0 else -1)
        out.append(encode(max(-4, min(4, nrm * g))))
    return out


def test_isqrt_inv_examples():
    assert isqrt_inv(16385) == 127
    assert isqrt_inv(34817) == 87
    assert isqrt_inv(1) == 16384  # capped at 2^14
    assert isqrt_inv(65537) == 64  # four codes ±2


def test_norm_worked_examples():
    g8 = norm_gain(8, b"\xff", b"\x00")
    assert g8.tolist() == [1] * 8
    out = norm_apply(g8, 8, vec([2, -2, 1, 1, -1, 2, 1, -1], 5))
    assert out.codes.tolist() == [1, -1, 1, 1, 1, 1, 1, 1] and out.log2 == 0
    g = norm_gain(128, b"\xff" * 16, b"\x00" * 16)
    assert norm_apply(g, 128, vec([1] * 128, -1)).to_f32().tolist() == [1.0] * 128


def test_norm_errors_and_edges():
    g = norm_gain(3, b"\x07", b"\x00")
    with raises(DIMENSION_MISMATCH, "Norm dimension mismatch: input len 4 \u2260 norm size 3"):
        norm_apply(g, 3, vec([1, 1, 1, 1]))
    empty = norm_apply(norm_gain(0, b"", b""), 0, vec([]))
    assert empty.n == 0 and empty.log2 == 0
    assert norm_apply(norm_gain(0, b"", b""), 0, 7).n == 0  # a scalar broadcasts to size 0
    assert norm_apply(g, 3, 1).codes.tolist() == plain_norm([1, 1, 1], [1, 1, 1])
    assert norm_apply(g, 3, np.float32(-8.0)).codes.tolist() == plain_norm([-2] * 3, [1] * 3)
    with pytest.raises(ValueError):
        norm_gain(9, b"\x00", b"\x00\x00")


@given(st.lists(st.tuples(codes_st, codes_st), min_size=1, max_size=300), st.integers(-128, 127))
@settings(max_examples=200)
def test_norm_against_plain_python(pairs, log2):
    codes = [p[0] for p in pairs]
    gain = [p[1] for p in pairs]
    gv = vec(gain)
    g = norm_gain(len(gain), bytes(gv.sign), bytes(gv.extra))
    assert g.tolist() == gain
    out = norm_apply(g, len(codes), vec(codes, log2))
    assert out.codes.tolist() == plain_norm(codes, gain) and out.log2 == 0


@given(st.integers(1, 300), st.sampled_from([-2, -1, 1, 2]), st.data())
@settings(max_examples=200)
def test_norm_fast_path_matches_plain_python(n, g0, data):
    """`NormGain` (memoized tables; one gather for a constant gain) against the plain formula,
    for constant and mixed gains, every input mix of ±1/±2 and repeated calls (memo hits)."""
    const = data.draw(st.booleans())
    gain = [g0] * n if const else data.draw(st.lists(codes_st, min_size=n, max_size=n))
    gv = vec(gain)
    ng = NormGain(n, bytes(gv.sign), bytes(gv.extra))
    assert (ng.const is not None) == (len(set(gain)) == 1)
    for _ in range(3):
        codes = data.draw(st.lists(codes_st, min_size=n, max_size=n))
        log2 = data.draw(st.integers(-128, 127))
        out = ng.apply(vec(codes, log2))
        assert out.codes.tolist() == plain_norm(codes, gain) and out.log2 == 0
        assert not out.codes.flags.writeable
        assert norm_apply(ng, n, vec(codes, log2)) == out == norm_apply(ng.gain, n, vec(codes, log2))


def test_norm_fast_path_broadcasts_and_errors():
    ng = NormGain(3, b"\x07", b"\x00")
    assert ng.apply(1).codes.tolist() == plain_norm([1, 1, 1], [1, 1, 1])
    assert ng.apply(np.float32(-8.0)).codes.tolist() == plain_norm([-2] * 3, [1] * 3)
    with raises(DIMENSION_MISMATCH, "Norm dimension mismatch: input len 4 \u2260 norm size 3"):
        ng.apply(vec([1, 1, 1, 1]))
    assert NormGain(0, b"", b"").apply(7).n == 0
    # a constant gain is read off the planes; padding bits beyond size are ignored
    for size, w, b, const in ((10, b"\xff\xff", b"\x00\xfc", 1), (10, b"\xff\xfe", b"\x00\x00", None),
                              (3, b"\xf8", b"\xff", -1), (9, b"\x00\x02", b"\xff\x00", None),
                              (16, b"\x00\x00", b"\x00\x00", -2), (16, b"\xff\xff", b"\xff\xff", 2)):
        ng = NormGain(size, w, b)
        assert ng.const == const and ng.gain.tolist() == norm_gain(size, w, b).tolist()
        x = vec([2, -1, 1, 1, -2, 2, 1, -1, 2, 1, 1, -2, 1, 1, 2, -1][:size])
        assert ng.apply(x) == norm_apply(norm_gain(size, w, b), size, x)


def test_pair_table_decoding_matches_bitwise_decoding():
    """The 65,536-entry (sign byte, extra byte) table decodes every byte pair bit for bit."""
    s = bytes(b >> 8 for b in range(65536))
    e = bytes(b & 255 for b in range(65536))
    w = decode_matrix_f32(65536, 8, s, e)
    assert w.dtype == np.float32 and not w.flags.writeable
    expect = [[plain_code(s, e, 8 * r + c) for c in range(8)] for r in range(0, 65536, 257)]
    assert w[::257].tolist() == expect
    codes = np.array([plain_code(s, e, 8 * r + c) for r in range(256) for c in range(8)]).reshape(256, 8)
    assert np.array_equal(w[:256], codes)


@given(st.integers(0, 12), st.integers(0, 70), st.data())
@settings(max_examples=100)
def test_matrix_weights_padding_and_int8_view(rows, cols, data):
    """Rows padded to whole bytes (cols % 8 ≠ 0) decode and multiply like the plain definition."""
    stride = (cols + 7) // 8
    sign = data.draw(st.binary(min_size=rows * stride, max_size=rows * stride + 3))
    extra = data.draw(st.binary(min_size=rows * stride, max_size=rows * stride + 3))
    w = matrix_weights(rows, cols, sign, extra)
    assert isinstance(w, MatrixWeights) and w.shape == (rows, cols) == w.codes.shape
    expect = [[plain_code(sign, extra, r * stride * 8 + c) for c in range(cols)] for r in range(rows)]
    assert w.codes.tolist() == expect == w.f32.astype(int).tolist()
    xc = data.draw(st.lists(codes_st, min_size=cols, max_size=cols))
    out = w.apply(vec(xc, 3), -1)
    assert out.codes.tolist() == [encode(sum(a * b for a, b in zip(row, xc))) for row in expect]
    assert out.log2 == 2 and not out.codes.flags.writeable


def test_matrix_weights_kept_from_the_second_execution():
    """The numpy way: the first execution decodes into a transient buffer; the second keeps
    the float32 matrix; every execution gives the same result as the plain int8 path (and as
    the native kernel, which keeps nothing)."""
    sign, extra = bytes(range(7, 7 + 24)), bytes(range(100, 124))
    w = matrix_weights(8, 20, sign, extra)  # stride 3 bytes: padded rows
    x = vec([1, -2, 2, -1, 1] * 4, -3)
    expect = matrix_apply(np.asarray(w).copy(), 20, 5, x)
    for _ in range(3):
        assert w.apply(x, 5) == expect and w._f32 is None and w._codes is None
    w = matrix_weights(8, 20, sign, extra, native=False)
    assert not w.native
    assert w.apply(x, 5) == expect and w._f32 is None
    assert w.apply(x, 5) == expect and w._f32 is not None
    assert w.apply(x, 5) == expect and matrix_apply(w, 20, 5, x) == expect
    assert not w.f32.flags.writeable and w.nbytes >= w.f32.size * 4


def test_norm_all_inv_regimes():
    # v ≥ 16385 for n ≥ 1, so inv ≤ 127: n1 = 0 and n2 ∈ {0, 1} (ones → 127, all ±2 → 64)
    g = norm_gain(4, b"\x05", b"\x0c")  # gains +1, −2, +2, −1
    for codes in ([2, 2, 2, 2], [1, 1, 1, 1], [1, -2, 2, -1], [-1, 2, 1, 2]):
        assert norm_apply(g, 4, vec(codes)).codes.tolist() == plain_norm(codes, g.tolist())
    g1 = norm_gain(1, b"\x00", b"\x00")  # gain −2
    assert norm_apply(g1, 1, vec([1])).codes.tolist() == plain_norm([1], [-2]) == [1]
    assert norm_apply(g1, 1, vec([2])).codes.tolist() == plain_norm([2], [-2]) == [-2]


# ------------------------------------------------------------------ §9, §10 Add


def plain_vec_add(xc, xl, dc, dl):
    o = max(xl, dl)

    def term(c, k):
        if k == 0:
            return c
        if k >= 31:
            return 0
        return int(c / 2 ** k)

    return [encode(term(a, o - xl) + term(b, o - dl)) for a, b in zip(xc, dc)], o


def test_vec_add_equal_scale_sums():
    for a, b, s in ((2, 2, 2), (2, -2, 1), (1, -1, 1), (-1, -1, -2), (-2, 1, -1), (1, 1, 2)):
        assert vec_add(vec([a]), vec([b])).codes.tolist() == [s]


def test_vec_add_shifted_example():
    out = vec_add(vec([2, 2], -1), vec([1, 1], 0))
    assert out.codes.tolist() == [2, 2] and out.log2 == 0 and out.to_f32().tolist() == [2.0, 2.0]
    # conformance: input [1, 1] (codes +2 @ −1) + Int 1 (broadcast +1 @ 0)
    assert add_vals(quantize([1.0, 1.0]), 1).to_f32().tolist() == [2.0, 2.0]


@given(st.lists(st.tuples(codes_st, codes_st), max_size=40), st.integers(-128, 127),
       st.integers(-128, 127))
def test_vec_add_against_plain(pairs, xl, dl):
    xc = [p[0] for p in pairs]
    dc = [p[1] for p in pairs]
    out = vec_add(vec(xc, xl), vec(dc, dl))
    assert (out.codes.tolist(), out.log2) == plain_vec_add(xc, xl, dc, dl)


def test_add_vector_rules():
    with raises(DIMENSION_MISMATCH, "Add dimension mismatch: lhs len 2 \u2260 rhs len 3"):
        add_vals(vec([1, 1]), vec([1, 1, 1]))
    out = add_vals(0, vec([1, -1, -2]))  # Int 0 broadcasts to +2
    assert out.codes.tolist() == [2, 1, 1]
    out = add_vals(vec([1, 1]), np.float32(-3.0))  # −2 @ log2 1: x shifted by 1 → 0
    assert out.codes.tolist() == [-2, -2] and out.log2 == 1


@given(st.integers(I32_MIN, I32_MAX), st.integers(-128, 127),
       st.integers(I32_MIN, I32_MAX), st.integers(-128, 127))
def test_add_scalar_rule_against_plain(x, s, y, t):
    res = add_vals(x if s == 0 else Scalar(x, s), y if t == 0 else Scalar(y, t))
    if s == t == 0:
        assert res == wrap32(x + y) and type(res) is int
        return
    o = max(s, t)
    code = encode(wrap32((x >> min(o - s, 31)) + (y >> min(o - t, 31))))
    if o == 0:
        assert res == code and type(res) is int
    else:
        assert res == Scalar(code, o)


def test_add_float_rules():
    assert add_vals(2147483647, 1) == -2147483648
    r = add_vals(np.float32(0.5), Scalar(3, -1))
    assert type(r) is np.float32 and r == 2.0
    assert add_vals(1, np.float32(0.25)) == 1.25
    big = np.float32(3.4028235e38)
    assert add_vals(big, big) == np.inf
    expect = np.float32(0.1) + np.float32(0.2)
    assert bits(add_vals(np.float32(0.1), np.float32(0.2))) == bits(expect)


@given(f32_st, f32_st)
def test_float_add_matches_numpy_f32(a, b):
    with np.errstate(all="ignore"):
        expect = a + b
    got = add_vals(a, b)
    assert type(got) is np.float32
    assert (np.isnan(got) and np.isnan(expect)) or bits(got) == bits(expect)


# ------------------------------------------------------------------ §11 VecOp


def test_reduce_sum_requantizes():
    assert vecop(3, quantize([1.0, 1.0, 1.0])) == Scalar(2, 1)  # r = 3.0 → 4.0
    assert vecop(3, vec([2, 2, 1])) == Scalar(2, 1)  # 5.0 → 4.0
    assert vecop(3, vec([2, 2, 2])) == Scalar(2, 2)  # 6.0 → 8.0
    assert vecop(3, vec([2, 2])) == Scalar(2, 1)  # 4.0
    assert vecop(3, vec([1, -1])) == 1  # 0 → Scalar(1, 0)
    assert vecop(3, vec([])) == 1
    assert vecop(3, vec([-2, -1], -3)) == Scalar(-2, -2)  # −0.375 → −2 @ round(log2 .1875) = −2
    assert vecop(3, 5) == 5 and vecop(3, Scalar(5, 2)) == Scalar(5, 2)
    assert bits(vecop(3, np.float32(-0.0))) == bits(-0.0)


def test_silu():
    out = vecop(0, quantize([1.0, -1.0]))
    assert out.codes.tolist() == [2, -1] and out.log2 == -1 and out.to_f32().tolist() == [1.0, -0.5]
    y = silu_f32(np.array([1.0, -1.0], dtype=np.float32))  # spec §11 values, bit for bit
    assert [bits(v) for v in y] == [bits(0.7310586), bits(-0.26894143)]
    f = vecop(0, np.float32(1.0))
    assert type(f) is np.float32 and f == np.float32(0.7310586)
    assert vecop(0, 1) == Scalar(2, -1)  # 0.731 → quantize → +2 @ round(log2 .3655) = −1
    assert vecop(0, Scalar(-4, 1)) == Scalar(-2, -10)  # silu(−8) ≈ −0.002683 → −2 @ round(−9.54)
    assert np.isnan(vecop(0, np.float32("nan")))
    assert vecop(0, np.float32("-inf")) != vecop(0, np.float32("-inf"))  # NaN
    assert vecop(0, np.float32(-200.0)) == np.float32(-200.0) / (np.float32(1) + np.float32(np.inf))


def test_silu_scalar_matches_vector_path():
    for x in (-8, -3, -1, 1, 2, 7, 1000):
        r = vecop(0, x)
        q = quantize(silu_f32(np.array([x], dtype=np.float32)))
        expect = (int(q.codes[0]), q.log2)
        got = (r, 0) if type(r) is int else (r.x, r.s)
        assert got == expect


def test_negate_abs():
    assert vecop(1, vec([2, -1, 1], 3)) == vec([-2, 1, -1], 3)
    assert vecop(2, vec([2, -1, -2], -3)) == vec([2, 1, 2], -3)
    assert vecop(1, 5) == -5 and vecop(1, I32_MIN) == I32_MIN
    assert vecop(1, Scalar(5, 2)) == Scalar(-5, 2)
    assert vecop(2, -5) == 5 and vecop(2, I32_MIN) == I32_MIN
    assert vecop(2, Scalar(-5, -2)) == Scalar(5, -2)
    assert vecop(1, np.float32(3.0)) == -3.0
    assert bits(vecop(1, np.float32(0.0))) == 0x80000000
    assert f32_bits(vecop(1, bits_f32(0x7FC00001))) == 0xFFC00001  # sign flip only
    assert f32_bits(vecop(2, bits_f32(0xFF800001))) == 0x7F800001
    with pytest.raises(ValueError):
        vecop(9, 1)


# ------------------------------------------------------------------ Compare


def test_compare_scalars():
    assert compare(0, 4, 4) == 1 and compare(2, 4, 4) == -1 and compare(4, 4, 4) == 1
    assert compare(3, 5, 3) == 1 and compare(5, 3, 5) == -1 and compare(1, 3, 5) == 1
    assert compare(0, Scalar(1, -1), np.float32(0.5)) == 1
    assert compare(0, np.float32(1.0), np.float32(1.0000001)) == 1  # |Δ| < 1e−6
    assert compare(1, np.float32(1.0), np.float32(1.0000001)) == -1
    assert compare(0, np.float32(1.0), np.float32(1.00001)) == -1
    nan = np.float32("nan")
    assert [compare(op, nan, 1) for op in range(6)] == [-1] * 6
    inf = np.float32("inf")
    assert compare(0, inf, inf) == -1 and compare(1, inf, inf) == -1  # inf − inf is NaN
    assert compare(4, inf, inf) == 1
    assert compare(2, Scalar(3, 1), 7) == 1  # 6 < 7 on real values
    assert compare(0, 16777217, 16777216) == -1  # both Scalar(_, 0): exact integers


def test_compare_vectors():
    out = compare(0, quantize([0.25, 1.0]), 1)
    assert out.codes.tolist() == [1, -1] and out.log2 == 0 and out.to_f32().tolist() == [1.0, -1.0]
    out = compare(2, vec([1, -2], 4), vec([2, -2, -1]))  # padded lhs: [1, −2, 0]
    assert out.codes.tolist() == [1, -1, -1]
    out = compare(3, vec([1, -2], 4), vec([2, -2, -1]))
    assert out.codes.tolist() == [-1, -1, 1]
    out = compare(0, np.float32(3.0), vec([2, 1]))  # Float broadcast to code +2
    assert out.codes.tolist() == [1, -1]
    assert compare(1, vec([]), vec([])).n == 0
    assert compare(0, vec([]), 5).codes.tolist() == [-1]  # n = max(0, 1) = 1: pad 0 vs +2


# ------------------------------------------------------------------ Bitwise


def test_bitwise_scalar_examples():
    assert bitwise(0, 6, 3) == 2 and bitwise(1, 6, 1) == 7 and bitwise(2, 5, 3) == 6
    assert bitwise(4, 1, 3) == 8 and bitwise(5, 16, 2) == 4 and bitwise_not(0) == -1
    assert bitwise(3, 0, None) == -1
    assert bitwise(4, 1, 31) == I32_MIN and bitwise(4, 3, 31) == I32_MIN
    assert bitwise(4, 1, 32) == 1 and bitwise(5, -16, 2) == -4 and bitwise(5, -1, 33) == -1
    assert bitwise(0, Scalar(6, 3), Scalar(3, -7)) == Scalar(2, 3)  # lhs scale kept
    assert bitwise(0, 6, Scalar(3, -7)) == 2
    assert bitwise_not(Scalar(5, 2)) == Scalar(-6, 2)
    with raises(TYPE_ERROR, "Missing rhs for binary Bitwise op"):
        bitwise(0, 1, None)


@given(st.integers(I32_MIN, I32_MAX), st.integers(I32_MIN, I32_MAX),
       st.sampled_from([0, 1, 2, 4, 5]))
def test_bitwise_i32_against_numpy(a, b, op):
    x, y = np.int32(a), np.int32(b)
    sh = np.int32(b & 31)
    expect = {0: x & y, 1: x | y, 2: x ^ y,
              4: (np.int64(a) << np.int64(b & 31)).astype(np.uint64).astype(np.uint32)
              .view(np.int32),
              5: x >> sh}[op]
    assert bitwise(op, a, b) == int(expect)


def test_bitwise_floats():
    assert bits(bitwise(0, np.float32(1.5), np.float32(-1.0))) == 0x3F800000  # bit patterns
    assert bits(bitwise(2, np.float32(1.0), np.float32(1.0))) == 0
    assert bits(bitwise(5, np.float32(-1.0), bits_f32(4))) == 0xBF800000 >> 4  # logical shift
    assert bits(bitwise(4, bits_f32(0x80000001), bits_f32(1))) == 2
    assert bits(bitwise(1, 1, np.float32(0.0))) == 0x3F800000  # Scalar → its f32 value
    assert bits(bitwise_not(np.float32(0.0))) == 0xFFFFFFFF


def test_bitwise_vectors():
    out = bitwise(0, vec([2, -1, 1, -2], 3), vec([1, -2, 1]))  # n = min(len)
    assert out.codes.tolist() == [encode(2 & 1), encode(-1 & -2), encode(1 & 1)] and out.log2 == 3
    out = bitwise(4, vec([1, -1, 2], 1), 31)  # 2 << 31 wraps to 0 → +1
    assert out.codes.tolist() == [-2, -2, 1] and out.log2 == 1
    out = bitwise(5, 64, vec([-2, 1], -2))  # scalar kept on its side: 64 >> (c & 31)
    assert out.codes.tolist() == [encode(64 >> 30), encode(64 >> 1)] and out.log2 == -2
    out = bitwise(4, 3, vec([-1]))  # 3 << 31 wraps to −2^31
    assert out.codes.tolist() == [-2]
    out = bitwise(1, vec([-2, 1]), np.float32(-5.0))  # Float → code −2
    assert out.codes.tolist() == [encode(-2 | -2), encode(1 | -2)]
    out = bitwise(0, Scalar(7, 4), vec([2, -1]))
    assert out.codes.tolist() == [encode(7 & 2), encode(7 & -1)] and out.log2 == 0
    assert bitwise_not(vec([2, -1], 2)) == vec([-2, 1], 2)


# ------------------------------------------------------------------ Math, MathFunc, Cast


def test_math():
    r = math(3, 7, 2)
    assert type(r) is np.float32 and r == 3.5
    assert math(0, np.float32(1.0), 2) == 3.0 and math(1, 5, Scalar(3, -1)) == 3.5
    assert math(2, np.float32(3.4028235e38), 2) == np.inf
    assert math(3, 1, 0) == np.inf and math(3, -1, 0) == -np.inf
    assert math(3, 1, np.float32(-0.0)) == -np.inf and np.isnan(math(3, 0, 0))
    assert math(3, np.float32(1.0), 3) == np.float32(1.0) / np.float32(3.0)
    with raises(TYPE_ERROR, "Unsupported type mismatch in Math"):
        math(0, vec([1]), np.float32(1.0))
    with raises(TYPE_ERROR, "Unsupported type mismatch in Math"):
        math(0, 1, vec([1]))


@given(f32_st, f32_st, st.sampled_from([0, 1, 2, 3]))
@settings(max_examples=300)
def test_math_matches_numpy_f32(a, b, op):
    with np.errstate(all="ignore"):
        expect = (a + b, a - b, a * b, a / b)[op]
    got = math(op, a, b)
    assert (np.isnan(got) and np.isnan(expect)) or bits(got) == bits(expect)


def test_mathfunc():
    assert mathfunc(2, 9) == 3.0 and mathfunc(3, 0) == 1.0 and mathfunc(0, 0) == 0.0
    assert mathfunc(1, np.float32(0.0)) == 1.0
    assert np.isnan(mathfunc(2, -1)) and mathfunc(3, 1000) == np.inf
    assert np.isnan(mathfunc(0, np.float32(np.inf)))
    assert type(mathfunc(0, Scalar(3, -1))) is np.float32
    assert mathfunc(0, Scalar(3, -1)) == np.sin(np.float32(1.5))
    with raises(TYPE_ERROR, "MathFunc operand must be scalar"):
        mathfunc(0, vec([1]))


# correctly rounded float32 exp / sin / cos (the slow path is an independent decimal evaluation)


@given(st.floats(-(2.0 ** 130), 2.0 ** 130, allow_nan=False, allow_subnormal=True))
def test_fraction_to_f32_matches_numpy_rounding(x):
    with np.errstate(over="ignore"):
        expect = np.float32(x)  # double → f32 conversion is correctly rounded
    assert bits(_fraction_to_f32(Fraction(x))) == bits(expect) or (x == 0 and expect == 0)


def test_fraction_to_f32_edges():
    assert bits(_fraction_to_f32(Fraction(2 ** 128 - 2 ** 103))) == bits(np.inf)  # tie → even (inf)
    assert _fraction_to_f32(Fraction(2 ** 128 - 2 ** 103 - 1)) == np.float32(3.4028235e38)
    assert _fraction_to_f32(Fraction(1, 2 ** 150)) == 0.0  # tie → even (0)
    assert _fraction_to_f32(Fraction(3, 2 ** 151)) == np.float32(2.0 ** -149)
    assert _fraction_to_f32(Fraction(-1, 3)) == np.float32(-1 / 3)


@given(st.sampled_from(["exp", "sin", "cos"]), st.floats(-110, 90, width=32))
@settings(max_examples=150)
def test_fast_transcendentals_match_decimal(name, x):
    fast = {"exp": exp_f32, "sin": sin_f32, "cos": cos_f32}[name](np.array([x], dtype=np.float32))
    assert bits(fast[0]) == bits(_cr_slow(name, float(np.float32(x))))


@given(st.floats(2.0 ** 20, 2.0 ** 127, width=32), st.sampled_from(["sin", "cos"]))
@settings(max_examples=30)
def test_sin_cos_large_arguments(x, name):
    fast = {"sin": sin_f32, "cos": cos_f32}[name](np.array([x], dtype=np.float32))
    assert bits(fast[0]) == bits(_cr_slow(name, float(np.float32(x))))


def test_transcendental_specials():
    assert exp_f32(np.array([1.0], dtype=np.float32))[0] == np.float32(2.7182817)  # CR value
    e = exp_f32(np.array([0, 89, -104, np.inf, -np.inf, 88.72283], dtype=np.float32))
    assert e.tolist()[:5] == [1.0, np.inf, 0.0, np.inf, 0.0]
    assert np.isfinite(e[5]) and bits(e[5]) == bits(_cr_slow("exp", float(np.float32(88.72283))))
    assert bits(_cr_slow("sin", -0.0)) == 0x80000000 and _cr_slow("cos", -0.0) == 1.0
    assert np.isnan(exp_f32(np.array([np.nan], dtype=np.float32))[0])
    s = sin_f32(np.array([0.0, -0.0, np.inf], dtype=np.float32))
    assert bits(s[0]) == 0 and bits(s[1]) == 0x80000000 and np.isnan(s[2])
    assert cos_f32(np.array([0.0], dtype=np.float32))[0] == 1.0


def test_cast():
    assert cast(0, np.float32(-2.7), 0) == -2 and cast(0, np.float32(2.7), 0) == 2
    assert cast(0, np.float32("nan"), 0) == 0
    assert cast(0, np.float32(1e10), 0) == I32_MAX and cast(0, np.float32(-np.inf), 0) == I32_MIN
    assert cast(0, Scalar(3, -1), 0) == 1 and cast(0, Scalar(-3, -1), 0) == -1
    assert cast(0, Scalar(3, 2), 0) == 12 and cast(0, Scalar(1, 40), 0) == I32_MAX
    assert cast(0, Scalar(-1, 31), 0) == I32_MIN and cast(0, Scalar(-5, -100), 0) == 0
    assert cast(0, 7, 0) == 7
    r = cast(1, Scalar(3, -2), 0)
    assert type(r) is np.float32 and r == 0.75 and cast(1, 16777217, 0) == 16777216.0
    assert cast(1, np.float32(0.1), 0) == np.float32(0.1)
    assert cast(2, 1, 3) == vec([1, 1, 1]) and cast(2, Scalar(0, -2), 2) == vec([2, 2], -2)
    assert cast(2, np.float32(3.0), 2) == vec([2, 2], 1) and cast(2, 5, 0).n == 0
    v = vec([1, 2])
    assert cast(2, v, 5) is v
    with raises(TYPE_ERROR, "Cannot cast Vector to Int"):
        cast(0, v, 0)
    with raises(TYPE_ERROR, "Cannot cast Vector to Float"):
        cast(1, v, 0)


# ------------------------------------------------------------------ §12 Dot, §13 Gemv


def sequential_dot(a: NdaVec, b: NdaVec) -> np.float32:
    acc = np.float32(0.0)
    with np.errstate(all="ignore"):
        for x, y in zip(a.to_f32(), b.to_f32()):
            acc = np.float32(acc + np.float32(x * y))
    return acc


def test_dot():
    w = matrix_weights(1, 2, b"\x03", b"\x00")
    x = matrix_apply(w, 2, 0, quantize([1.0, 1.0]))
    assert x.to_f32().tolist() == [1.0]
    r = dot(x, x)
    assert type(r) is np.float32 and r == 1.0
    assert dot(vec([2, -1, 1], -1), vec([1, 1, 2], 2)) == 6.0  # (2 − 1 + 2) · 2^(−1+2)
    assert bits(dot(vec([]), vec([]))) == 0 and bits(dot(vec([1, -1]), vec([1, 1]))) == 0
    with raises(DIMENSION_MISMATCH, "Dot vector length mismatch"):
        dot(vec([1, 1]), vec([1]))


@given(st.lists(st.tuples(codes_st, codes_st), max_size=60), st.integers(-128, 127),
       st.integers(-128, 127))
@settings(max_examples=300)
def test_dot_matches_sequential_f32(pairs, la, lb):
    a = vec([p[0] for p in pairs], la)
    b = vec([p[1] for p in pairs], lb)
    got, expect = dot(a, b), sequential_dot(a, b)
    assert (np.isnan(got) and np.isnan(expect)) or bits(got) == bits(expect)


def test_dot_extreme_scales_use_sequential_order():
    a = vec([2, 2, -2, -2, 1], 127)  # inf, inf, −inf, … → NaN
    assert np.isnan(dot(a, vec([1] * 5)))
    a = vec([1, 1, 1], -100)
    b = vec([1, 2, 1], -60)  # products underflow to 0 / subnormals
    assert bits(dot(a, b)) == bits(sequential_dot(a, b))


def test_gemv_node_kernel():
    m = vec([1] * 8 + [1, 1, 1, 1, -1, -1, -1, -1], 2)
    v = quantize([2, -2, 1, 1, -1, 2, 0.5, -0.5])
    out = gemv(m, v)
    assert out.codes.tolist() == [2, 1] and out.log2 == 2
    with raises(DIMENSION_MISMATCH, "Gemv cols cannot be zero"):
        gemv(m, vec([]))
    out = gemv(vec([1, 2], 3), vec([1, 1, 1], -1))  # rows = 0
    assert out.n == 0 and out.log2 == 2
    out = gemv(vec([2, 2, -2, 1, 1, 1, -1], 120), vec([1, 1, 1], 100))  # 7 // 3 = 2 rows
    assert out.codes.tolist() == [encode(2 + 2 - 2), encode(1 + 1 + 1)] and out.log2 == 127


@given(st.integers(1, 20), st.integers(0, 6), st.data())
@settings(max_examples=150)
def test_gemv_logical_layout_and_original_equivalence(cols, rows, data):
    extra_elems = data.draw(st.integers(0, cols - 1))  # ignored: rows = len(m) // cols
    mc = data.draw(st.lists(codes_st, min_size=rows * cols + extra_elems,
                            max_size=rows * cols + extra_elems))
    vc = data.draw(st.lists(codes_st, min_size=cols, max_size=cols))
    out = gemv(vec(mc, 0), vec(vc, 0))
    expect = [encode(sum(mc[r * cols + c] * vc[c] for c in range(cols))) for r in range(rows)]
    assert out.codes.tolist() == expect
    if cols % 8 == 0 and rows:
        mv = vec(mc[: rows * cols])  # the original reinterprets m's planes with a row stride
        w = matrix_weights(rows, cols, bytes(mv.sign), bytes(mv.extra))
        assert matrix_apply(w, cols, 0, vec(vc)) == out


# ------------------------------------------------------------------ simulated machine


def test_poke_peek_heap():
    m = Machine()
    assert len(m.heap) == 65536 and m.mmio == {} and m.mmio_bytes == 0
    poke(m, 16, 1234)
    assert peek(m, 16) == 1234 and bytes(m.heap[16:20]) == (1234).to_bytes(4, "little")
    poke(m, 65532, -2)
    assert peek(m, 65532) == -2 and bytes(m.heap[65532:]) == b"\xfe\xff\xff\xff"
    poke(m, Scalar(20, 7), Scalar(-9, 3))  # scales ignored
    assert peek(m, 20) == -9
    poke(m, np.float32(24.9), np.float32(-7.9))  # trunc address and value
    assert peek(m, 24) == -7
    poke(m, 28, np.float32("nan"))
    assert peek(m, 28) == 0
    poke(m, 32, np.float32(1e20))
    assert peek(m, 32) == I32_MAX
    assert peek(m, 1) == int.from_bytes(bytes(m.heap[1:5]), "little", signed=True)
    assert peek(m, 100) == 0
    assert m.mmio == {}


def test_poke_peek_mmio():
    m = Machine()
    poke(m, 0xF0000000 - (1 << 32), np.float32(3.5))  # Int 0xF0000000 is −268435456 as i32
    assert list(m.mmio) == [0xF0000000] and m.mmio_bytes == 8
    r = peek(m, -268435456)
    assert type(r) is np.float32 and r == 3.5
    v = vec([1] * 9)
    poke(m, 0xF0000000 - (1 << 32), v)  # any kind; replaces the old value
    assert peek(m, 0xF0000000 - (1 << 32)) is v and m.mmio_bytes == 12
    poke(m, -1, Scalar(1, 1))
    assert m.mmio[0xFFFFFFFF] == Scalar(1, 1) and m.mmio_bytes == 20
    poke(m, np.float32(1e12), 5)  # saturates to 0xFFFFFFFF
    assert m.mmio[0xFFFFFFFF] == 5 and m.mmio_bytes == 20


def test_machine_errors():
    m = Machine()
    with raises(OUT_OF_BOUNDS, "Out of bounds MMIO/heap read at address 70000"):
        peek(m, 70000)
    with raises(OUT_OF_BOUNDS, "Out of bounds MMIO/heap read at address 65533"):
        peek(m, 65533)
    with raises(OUT_OF_BOUNDS, "Out of bounds MMIO/heap write at address 70000"):
        poke(m, 70000, 1)
    with raises(OUT_OF_BOUNDS, "Out of bounds MMIO/heap write at address 65533"):
        poke(m, 65533, vec([1]))  # bounds come before the value kind
    with raises(OUT_OF_BOUNDS, "Out of bounds MMIO/heap read at address 4026531839"):
        peek(m, 0xEFFFFFFF - (1 << 32))
    with raises(TYPE_ERROR, "Peek address must be scalar"):
        peek(m, vec([1]))
    with raises(TYPE_ERROR, "Poke address must be scalar"):
        poke(m, vec([1]), 1)
    with raises(TYPE_ERROR, "Poke value must be scalar"):
        poke(m, 0, vec([1]))
    assert peek(m, np.float32("nan")) == 0 and peek(m, np.float32(-5.0)) == 0


def test_print_lines():
    assert print_line(42) == "[print] [42.0]"
    assert print_line(vec([1, -2], -1)) == "[print] [0.5, -1.0]"
    assert syscall_print_line(np.float32(1e-5)) == "[syscall print] [1e-5]"
    assert print_line(Scalar(1, -1)) == "[print] [0.5]"
    assert print_line(vec([])) == "[print] []"


# ------------------------------------------------------------------ no numpy warnings, any bits

scalar_jitval_st = st.one_of(
    f32_st, st.integers(I32_MIN, I32_MAX),
    st.builds(Scalar, st.integers(I32_MIN, I32_MAX), st.integers(-128, 127).filter(bool)),
)


@given(scalar_jitval_st, scalar_jitval_st)
@settings(max_examples=300)
def test_scalar_kernels_never_warn(a, b):
    # pytestmark turns RuntimeWarnings into errors; signaling NaNs and infinities included
    add_vals(a, b)
    for op in range(6):
        assert compare(op, a, b) in (1, -1)
    for op in (0, 1, 2, 4, 5):
        bitwise(op, a, b)
    bitwise_not(a)
    for op in range(4):
        assert type(math(op, a, b)) is np.float32
    for func in range(4):
        assert type(mathfunc(func, a)) is np.float32
    for to in range(3):
        cast(to, a, 3)
    for kind in range(4):
        vecop(kind, a)
    m = Machine()
    poke(m, 8, a)
    poke(m, 0xF0000000 - (1 << 32), b)
    peek(m, 8)
    print_line(a)
    add_vals(vec([1, -2]), a)
    compare(0, vec([1, -2, 2]), a)
    bitwise(2, vec([1, -2]), a)
    matrix_apply(matrix_weights(1, 2, b"\x03", b"\x00"), 2, 0, a)


def test_first_executions_decode_into_a_reused_thread_buffer():
    """A matrix that runs once decodes into its thread's scratch buffer (reused by the next
    decode): every result is still its own, in any order, on any thread; a matrix over the
    buffer decodes into a fresh array."""
    import threading

    from nda.runtime import kernels_tensor as KT

    rng = np.random.default_rng(5)
    shapes = [(7, 13), (128, 896), (33, 64), (896, 128), (1, 1), (300, 1000)]
    cases = []
    for rows, cols in shapes:
        nb = (cols + 7) // 8
        s, e = (rng.integers(0, 256, rows * nb + 3, dtype=np.uint8).tobytes() for _ in range(2))
        x = vec(rng.choice([-2, -1, 1, 2], cols).tolist(), 1)
        w = np.asarray(matrix_weights(rows, cols, s, e)).astype(np.int64)
        expect = [encode(int(v)) for v in w @ x.codes.astype(np.int64)]
        cases.append((rows, cols, s, e, x, expect))
    assert cases[-1][0] * ((cases[-1][1] + 7) // 8) > KT.SCRATCH_PAIRS  # the fallback is covered

    def check(order, errors):
        outs = [(i, KT.MatrixWeights(*cases[i][:4]).apply(cases[i][4], 0)) for i in order]
        for i, out in outs:  # read after later decodes reused the buffer
            if out.codes.tolist() != cases[i][5]:
                errors.append(i)
    errors: list = []
    check(list(range(len(cases))) * 2, errors)
    threads = [threading.Thread(target=check, args=(list(rng.permutation(len(cases))) * 3, errors)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
