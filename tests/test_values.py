"""Tests for nda.runtime.values: codes and planes, ENCODE, the quantizer, broadcasts, JitVal helpers,
memory sizes and print formats (values-and-kernels.md §1–§6, runtime.md §5–§6)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nda.runtime.values import (
    I32_MAX, I32_MIN, NdaVec, Scalar, bits_f32, broadcast_float, broadcast_scalar, encode,
    encode_array, f32, f32_bits, fmt_f32, fmt_list, is_vector, kind_name, make_scalar, pow2_f32,
    quantize, quantize1, real, sat_i8, to_f32, to_f32_list, truthy, value_size, wrap32,
)

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

CODES = np.array([-2, -1, 1, 2], dtype=np.int8)
codes_st = st.lists(st.sampled_from([-2, -1, 1, 2]), max_size=70)
f32_st = st.integers(0, 0xFFFFFFFF).map(bits_f32)


def plain_encode(v: int) -> int:
    """ENCODE as written in §3: clamp to [−4, 4], index into [0,0,0,1,2,2,3,3,3] → code."""
    idx = [0, 0, 0, 1, 2, 2, 3, 3, 3][max(-4, min(4, v)) + 4]
    return {0: -2, 1: -1, 2: 1, 3: 2}[idx]


def plain_decode(n: int, sign: bytes, extra: bytes) -> list[int]:
    out = []
    for i in range(n):
        s = (sign[i >> 3] >> (i & 7)) & 1
        e = (extra[i >> 3] >> (i & 7)) & 1
        out.append({(0, 0): -2, (0, 1): -1, (1, 0): 1, (1, 1): 2}[(s, e)])
    return out


# ------------------------------------------------------------------ §1, §2 codes and planes


def test_worked_decode():
    v = NdaVec.from_planes(8, -1, bytes([0xCA]), bytes([0xA6]))
    assert v.codes.tolist() == [-2, 2, -1, 1, -2, -1, 1, 2]
    assert v.to_f32().tolist() == [-1.0, 1.0, -0.5, 0.5, -1.0, -0.5, 0.5, 1.0]
    assert v.to_f32().dtype == np.float32


def test_planes_from_codes():
    v = NdaVec.from_codes(np.array([-2, 2, -1, 1, -2, -1, 1, 2], dtype=np.int8), -1)
    assert bytes(v.sign) == b"\xca" and bytes(v.extra) == b"\xa6"


def test_zeros_is_all_plus_one():
    v = NdaVec.zeros(8, 3)
    assert v.codes.tolist() == [1] * 8 and v.log2 == 3
    assert bytes(v.sign) == b"\xff" and bytes(v.extra) == b"\x00"
    v5 = NdaVec.zeros(5, 0)
    assert bytes(v5.sign) == b"\x1f" and bytes(v5.extra) == b"\x00"  # padding written as 0
    assert NdaVec.zeros(0, 0).n == 0 and bytes(NdaVec.zeros(0, 0).sign) == b""


def test_from_planes_ignores_and_clears_padding():
    v = NdaVec.from_planes(3, 0, bytes([0xFF]), bytes([0xF8]))
    assert v.codes.tolist() == [1, 1, 1]
    assert bytes(v.sign) == b"\x07" and bytes(v.extra) == b"\x00"
    assert v == NdaVec.zeros(3, 0)
    with pytest.raises(ValueError):
        NdaVec.from_planes(9, 0, b"\x00", b"\x00\x00")


def test_vectors_are_immutable():
    v = NdaVec.from_codes([1, 2, -1], 0)
    with pytest.raises(ValueError):
        v.codes[0] = 2
    with pytest.raises(ValueError):
        v.sign[0] = 0


@given(codes_st, st.integers(-128, 127))
def test_decode_of_encode(codes, log2):
    v = NdaVec.from_codes(np.array(codes, dtype=np.int8), log2)
    assert len(v.sign) == len(v.extra) == (len(codes) + 7) // 8
    back = NdaVec.from_planes(len(codes), log2, bytes(v.sign), bytes(v.extra))
    assert back.codes.tolist() == codes and back == v and hash(back) == hash(v)
    assert plain_decode(len(codes), bytes(v.sign), bytes(v.extra)) == codes


@given(st.integers(0, 70), st.data())
def test_planes_roundtrip_with_random_padding(n, data):
    nb = (n + 7) // 8
    sign = data.draw(st.binary(min_size=nb, max_size=nb))
    extra = data.draw(st.binary(min_size=nb, max_size=nb))
    v = NdaVec.from_planes(n, 0, sign, extra)
    assert v.codes.tolist() == plain_decode(n, sign, extra)
    w = NdaVec.from_codes(v.codes.copy(), 0)
    mask = (1 << (n & 7)) - 1 if n & 7 else 0xFF
    for p, q in ((w.sign, sign), (w.extra, extra)):
        assert len(p) == nb
        if nb:  # identical bytes, except that padding bits come back as 0
            assert bytes(p[:-1]) == q[:-1] and int(p[-1]) == q[-1] & mask


def test_to_f32_extremes_without_warnings():
    v = NdaVec.from_codes([2, -2, 1], 127)
    assert v.to_f32().tolist() == [math.inf, -math.inf, 2.0 ** 127]
    w = NdaVec.from_codes([1, -2], -128)
    assert w.to_f32().tolist() == [2.0 ** -128, -(2.0 ** -127)]


# ------------------------------------------------------------------ §3 ENCODE


def test_encode_table():
    assert [encode(v) for v in (-7, -2, -1, 0, 1, 2, 9)] == [-2, -2, -1, 1, 1, 2, 2]
    assert encode(10 ** 30) == 2 and encode(-(10 ** 30)) == -2


@given(st.integers(-(2 ** 70), 2 ** 70))
def test_encode_matches_plain_definition(v):
    assert encode(v) == plain_encode(v)


@given(st.lists(st.integers(-(2 ** 63), 2 ** 63 - 1), max_size=40))
def test_encode_array_int64(xs):
    out = encode_array(np.array(xs, dtype=np.int64))
    assert out.dtype == np.int8 and out.tolist() == [plain_encode(x) for x in xs]


@given(st.lists(st.integers(-(2 ** 80), 2 ** 80), max_size=20))
def test_encode_array_python_ints(xs):
    assert encode_array(xs).tolist() == [plain_encode(x) for x in xs]


def test_encode_array_other_dtypes():
    assert encode_array(np.array([0, 1, 2 ** 64 - 1], dtype=np.uint64)).tolist() == [1, 1, 2]
    assert encode_array(np.array([-128, -1, 0, 127], dtype=np.int8)).tolist() == [-2, -1, 1, 2]
    assert encode_array([2 ** 63, -1]).tolist() == [2, -1]


# ------------------------------------------------------------------ scalars and f32 helpers


def test_make_scalar_normalizes():
    assert make_scalar(5, 0) == 5 and type(make_scalar(5, 0)) is int
    assert make_scalar(5, -1) == Scalar(5, -1)
    assert Scalar(5, -1) != Scalar(5, 1) and Scalar(5, -1) != 5
    with pytest.raises(AttributeError):
        Scalar(1, 1).x = 2
    assert repr(Scalar(3, -2)) == "Scalar(3, -2)"


@given(st.integers(-(2 ** 70), 2 ** 70))
def test_wrap32(x):
    w = wrap32(x)
    assert I32_MIN <= w <= I32_MAX and (w - x) % (1 << 32) == 0
    assert w == int(np.array(x & 0xFFFFFFFF, dtype=np.uint64).astype(np.uint32).view(np.int32))


def test_sat_i8():
    assert [sat_i8(v) for v in (-500, -128, 0, 127, 300)] == [-128, -128, 0, 127, 127]


def test_pow2_f32():
    assert pow2_f32(0) == 1.0 and pow2_f32(-149) == 2.0 ** -149 and pow2_f32(-150) == 0.0
    assert pow2_f32(127) == 2.0 ** 127 and pow2_f32(128) == math.inf
    assert type(pow2_f32(3)) is np.float32


def _nearest_f32_ok(x: int, f: np.float32) -> bool:
    if abs(x) >= 2 ** 128 - 2 ** 103:
        return math.isinf(f)
    fv = Fraction(float(f))
    up = Fraction(float(np.nextafter(f, np.float32(np.inf))))
    dn = Fraction(float(np.nextafter(f, np.float32(-np.inf))))
    d = abs(fv - x)
    if d > abs(up - x) or d > abs(dn - x):
        return False
    if d == abs(up - x) or d == abs(dn - x):  # a tie: the even mantissa wins
        return f32_bits(f) & 1 == 0
    return True


@given(st.integers(-(2 ** 130), 2 ** 130))
def test_f32_of_ints_rounds_correctly(x):
    assert _nearest_f32_ok(x, f32(x))


def test_f32_specials():
    assert f32(1e39) == math.inf and f32(-1e39) == -math.inf
    assert f32(3.4028235677973362e38) == np.float32(3.4028235e38)
    assert math.isnan(f32(math.nan)) and type(f32(1.5)) is np.float32
    assert f32(2 ** 128) == math.inf and f32(16777217) == 16777216.0


def test_bits_roundtrip_keeps_nan_payload():
    for u in (0x7FC00001, 0xFF800001, 0x80000000, 0x3F800000):
        assert f32_bits(bits_f32(u)) == u


def test_real():
    assert real(7) == 7.0 and type(real(7)) is np.float32
    assert real(Scalar(3, -1)) == 1.5
    assert real(Scalar(16777217, 1)) == 33554432.0  # x is rounded to f32 first
    assert real(Scalar(1, -128)) == 2.0 ** -128
    assert real(Scalar(I32_MAX, 127)) == math.inf
    assert real(np.float32(2.5)) == 2.5
    with pytest.raises(TypeError):
        real(NdaVec.zeros(1, 0))


def test_kinds_and_to_f32():
    v = NdaVec.from_codes([1, -2], -1)
    assert [kind_name(x) for x in (3, Scalar(1, 2), np.float32(1), v)] == \
        ["Scalar", "Scalar", "Float", "Vector"]
    assert is_vector(v) and not is_vector(3)
    assert to_f32_list(v) == [0.5, -1.0]
    assert to_f32_list(Scalar(5, -2)) == [1.25] and to_f32_list(-3) == [-3.0]
    assert to_f32(np.float32(0.1)).dtype == np.float32
    assert to_f32_list(NdaVec.zeros(0, 0)) == []


def test_truthy():
    assert truthy(1) and not truthy(0) and not truthy(-1)
    assert truthy(Scalar(1, -100)) and not truthy(Scalar(0, 5))
    assert truthy(np.float32(0.1)) and not truthy(np.float32(-0.0))
    assert not truthy(np.float32("nan"))
    assert truthy(NdaVec.from_codes([2, -1], 0)) and not truthy(NdaVec.from_codes([1, -1], 0))
    assert not truthy(NdaVec.zeros(0, 0))


def test_value_size():
    assert value_size(3) == value_size(Scalar(1, 1)) == value_size(np.float32(1)) == 8
    assert value_size(NdaVec.zeros(0, 0)) == 8
    assert value_size(NdaVec.zeros(1, 0)) == 10
    assert value_size(NdaVec.zeros(896, 0)) == 8 + 2 * 112
    assert value_size(NdaVec.zeros(9, 0)) == 12


# ------------------------------------------------------------------ §4 quantizer


@pytest.mark.parametrize("xs, codes, log2, decoded", [
    ([0.3, -1.2, 2.0, 0.0], [1, -1, 2, 1], 0, [1, -1, 2, 1]),
    ([3.0, -0.9], [2, -1], 1, [4, -2]),
    ([1, 2, 3], [1, 1, 2], 1, [2, 2, 4]),
    ([1, 2, -1], [1, 2, -1], 0, [1, 2, -1]),
    ([1.0] * 896, [2] * 896, -1, [1.0] * 896),
    ([], [], 0, []),
])
def test_quantizer_examples(xs, codes, log2, decoded):
    q = quantize(xs)
    assert q.codes.tolist() == codes and q.log2 == log2 and q.to_f32().tolist() == decoded


def test_quantizer_nan_inf_and_zero():
    q = quantize([math.nan, 1.0, -0.0])
    assert q.codes.tolist() == [-1, 2, 1] and q.log2 == -1  # NaN ignored by amax, negative
    q = quantize([math.nan])
    assert q.codes.tolist() == [-1] and q.log2 == 0
    q = quantize([math.inf, 1.0, -math.inf])
    assert q.codes.tolist() == [1, 1, -1] and q.log2 == 127
    q = quantize([1e-9, -1e-9])
    assert q.codes.tolist() == [1, -1] and q.log2 == 0
    assert quantize([1e39]).log2 == 127  # the double rounds to +inf in f32
    assert quantize(np.array([4.0, 1.0], dtype=np.float32)).codes.tolist() == [2, 1]


def reference_quantize(xs):
    """§4 with numpy float32 scalars, one element at a time."""
    a = [np.float32(x) for x in xs]
    amax = np.float32(0)
    for x in a:
        if not math.isnan(x) and abs(x) > amax:
            amax = abs(x)
    scale = np.float32(1.0) if amax < np.float32(1e-8) else amax / np.float32(2)
    codes = []
    with np.errstate(all="ignore"):
        inv = np.float32(1) / scale
        for x in a:
            q = x * inv
            large = bool(abs(q) >= np.float32(1.5))
            pos = bool(x >= 0)
            codes.append((2 if large else 1) * (1 if pos else -1))
    if math.isinf(scale):
        l2 = 127
    else:
        t = math.log2(float(scale))
        l2 = max(-128, min(127, int(math.copysign(math.floor(abs(t) + 0.5), t))))
    return codes, l2


@given(st.lists(f32_st, max_size=40))
@settings(max_examples=300)
def test_quantize_matches_reference(xs):
    q = quantize(np.array(xs, dtype=np.float32))
    codes, l2 = reference_quantize(xs)
    assert q.codes.tolist() == codes and q.log2 == l2 and q.n == len(xs)


@given(st.lists(st.floats(-(2.0 ** 100), 2.0 ** 100, allow_nan=False, width=32),
                min_size=1, max_size=40))
def test_quantize_invariants(xs):
    q = quantize(xs)
    a = np.array(xs, dtype=np.float32)
    assert ((q.codes > 0) == (a >= 0)).all()
    amax = float(np.max(np.abs(a)))
    if amax >= float(np.float32(1e-8)):
        i = int(np.argmax(np.abs(a)))
        assert abs(int(q.codes[i])) == 2  # the largest element always saturates
        assert q.log2 == sat_i8(int(math.copysign(math.floor(abs(math.log2(amax / 2)) + 0.5),
                                                  math.log2(amax / 2))))
    else:
        assert q.log2 == 0 and (np.abs(q.codes) == 1).all()


@given(f32_st)
@settings(max_examples=500)
def test_quantize1_closed_form(f):
    q = quantize(np.array([f], dtype=np.float32))
    assert quantize1(f) == (int(q.codes[0]), q.log2)


# ------------------------------------------------------------------ §6 broadcasts


def test_broadcast_scalar_quirk():
    for x, code in ((-2, -2), (-1, -1), (1, 1), (0, 2), (2, 2), (5, 2), (-7, 2)):
        v = broadcast_scalar(3, x, -4)
        assert v.codes.tolist() == [code] * 3 and v.log2 == -4
    assert broadcast_scalar(0, 1, 0).n == 0


def test_broadcast_float():
    v = broadcast_float(4, np.float32(3.0))
    assert v.codes.tolist() == [2] * 4 and v.log2 == 1  # round(log2 1.5) = 1
    v = broadcast_float(2, np.float32(-0.3))
    assert v.codes.tolist() == [-2, -2] and v.log2 == -3  # round(log2 0.15) = round(-2.74)
    assert broadcast_float(1, np.float32(1e-9)).codes.tolist() == [1]
    assert broadcast_float(1, np.float32(-1e-9)).codes.tolist() == [-1]
    assert broadcast_float(1, np.float32(-0.0)).codes.tolist() == [1]
    assert broadcast_float(2, np.float32(-0.0)).log2 == 0


# ------------------------------------------------------------------ runtime.md §6 formats


@pytest.mark.parametrize("x, text", [
    (math.nan, "NaN"), (math.inf, "inf"), (-math.inf, "-inf"), (42.0, "42.0"), (0.5, "0.5"),
    (-0.0, "-0.0"), (0.0, "0.0"), (-3.0, "-3.0"), (0.1, "0.1"), (1000000.0, "1000000.0"),
    (1e-5, "1e-5"), (1.5e-7, "1.5e-7"), (1e16, "1e16"), (3.4028235e38, "3.4028235e38"),
    (1e15, "1000000000000000.0"), (1e-4, "0.0001"), (9.9e-5, "9.9e-5"), (1e-45, "1e-45"),
    (-2.5e20, "-2.5e20"), (0.7310586, "0.7310586"), (16777217.0, "16777216.0"),
])
def test_fmt_f32(x, text):
    assert fmt_f32(np.float32(x)) == text


def test_fmt_list():
    assert fmt_list([]) == "[]"
    assert fmt_list(np.array([42.0, -0.5], dtype=np.float32)) == "[42.0, -0.5]"
    assert fmt_list([1e-5, math.nan]) == "[1e-5, NaN]"


@given(f32_st)
def test_fmt_f32_reads_back(f):
    s = fmt_f32(f)
    if math.isnan(f):
        assert s == "NaN"
    else:
        back = np.float32(float(s.replace("inf", "Infinity")))
        assert f32_bits(back) == f32_bits(f)
        assert "+" not in s and "e0" not in s and "e-0" not in s
