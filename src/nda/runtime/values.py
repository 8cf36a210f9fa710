"""Run-time values of NDA programs (JitVal) and their bit-exact helpers.

In: Python ints, `Scalar`, `numpy.float32`, `NdaVec`, plane bytes, f32 lists.
Out: normalized JitVals, quad-code vectors on numpy bit planes, the quantizer and broadcasts
(`values-and-kernels.md` §1–§6), truthiness, memory accounting sizes and the print formats
(`runtime.md` §5–§6).

A JitVal is exactly one of:
- a Python `int` in i32 range: `Scalar(x, 0)` (the common case; never a bool);
- `Scalar(x, s)` with `s != 0` (build it with `make_scalar`, which returns an int for `s == 0`);
- a `numpy.float32` scalar: `Float(f)`;
- an `NdaVec`: `Vector`.

All f32 arithmetic here is correctly rounded f32 arithmetic: either numpy float32 operations, or
an exact (or double-rounding-innocuous) computation in Python doubles followed by one rounding
to f32 through `f32`, which never emits numpy warnings.
"""

from __future__ import annotations

import math
import struct
from typing import Iterable, Union

import numpy as np

I32_MIN = -(1 << 31)
I32_MAX = (1 << 31) - 1
HEAP_SIZE = 65536

_F32_OVERFLOW = 2.0 ** 128 - 2.0 ** 103  # |d| >= this rounds to ±inf in f32 (ties to even)
F32_1E8 = np.float32(1e-8)
_F32_ZERO = np.float32(0.0)
_F32_1_5 = np.float32(1.5)
INF32 = np.float32(np.inf)
NINF32 = np.float32(-np.inf)

# code index (s << 1) | e → code (§1)
DECODE_TABLE = np.array([-2, -1, 1, 2], dtype=np.int8)
# The 8 codes (LSB first) of one byte of each plane, indexed by (sign byte << 8) | extra byte:
# code = DECODE_TABLE[2s + e] = 3·s + e − 2 for the bits (s, e). 65,536 × 8 tables (float32,
# 2 MiB, for the GEMV; int8, 512 KiB), built once at import: decoding planes is one gather.
_BYTE_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little")
PAIR_CODES_F32 = ((3 * _BYTE_BITS.astype(np.float32) - 2)[:, None, :] + _BYTE_BITS[None, :, :]).reshape(65536, 8)
PAIR_CODES_I8 = PAIR_CODES_F32.astype(np.int8)
PAIR_CODES_F32.flags.writeable = False
PAIR_CODES_I8.flags.writeable = False
# ENCODE on v ∈ [−4, 4] indexed by v modulo 9 (negative indices wrap in numpy fancy indexing)
ENC_WRAP = np.array([1, 1, 2, 2, 2, -2, -2, -2, -1], dtype=np.int8)
# (positive << 1) | large → code (quantizer step 4)
_PL_TABLE = np.array([-1, -2, 1, 2], dtype=np.int8)
# 2^k as f32 for k in [−149, 127]
_POW2_LO = -149
_POW2 = tuple(np.float32(2.0 ** k) for k in range(_POW2_LO, 128))


# ---------------------------------------------------------------------------------------------
# Scalars


class Scalar:
    """`Scalar(x, s)`: i32 `x` times 2^`s` (i8 `s`). Only used for `s != 0` (see `make_scalar`)."""

    __slots__ = ("x", "s")

    def __init__(self, x: int, s: int):
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "s", s)

    def __setattr__(self, name, value):
        raise AttributeError("Scalar is immutable")

    def __eq__(self, other) -> bool:
        return type(other) is Scalar and self.x == other.x and self.s == other.s

    def __hash__(self) -> int:
        return hash(("Scalar", self.x, self.s))

    def __repr__(self) -> str:
        return f"Scalar({self.x}, {self.s})"


JitVal = Union[int, Scalar, np.float32, "NdaVec"]


def make_scalar(x: int, s: int):
    """The normalized JitVal for `Scalar(x, s)`: a plain int when `s == 0`."""
    return x if s == 0 else Scalar(x, s)


def scalar_parts(v) -> tuple[int, int]:
    """(x, s) of an int or Scalar JitVal."""
    return (v, 0) if type(v) is int else (v.x, v.s)


def wrap32(x: int) -> int:
    """Two's complement wrap of a Python int to i32."""
    return ((x + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def sat_i8(x: int) -> int:
    """Saturate to [−128, 127]."""
    return -128 if x < -128 else (127 if x > 127 else x)


def sat_i32(x: int) -> int:
    """Saturate to [−2^31, 2^31 − 1]."""
    return I32_MIN if x < I32_MIN else (I32_MAX if x > I32_MAX else x)


# ---------------------------------------------------------------------------------------------
# f32 helpers


def _int_to_f32(x: int) -> np.float32:
    """Correct rounding (ties to even) of an arbitrary Python int to f32."""
    a = -x if x < 0 else x
    if a < (1 << 53):
        return np.float32(float(x))  # exact in double, one rounding to f32
    shift = a.bit_length() - 24
    m, rem = a >> shift, a & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    if rem > half or (rem == half and (m & 1)):
        m += 1
    if m.bit_length() > 24:
        m >>= 1
        shift += 1
    if shift + 24 > 128:
        return NINF32 if x < 0 else INF32
    d = math.ldexp(float(m), shift)  # exact: m has 24 bits
    return np.float32(-d if x < 0 else d)


def f32(x) -> np.float32:
    """Round a number to the nearest f32 (overflow → ±inf), without numpy warnings."""
    if type(x) is np.float32:
        return x
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return _int_to_f32(int(x))
    d = float(x)
    if -_F32_OVERFLOW < d < _F32_OVERFLOW or d != d:
        return np.float32(d)
    return INF32 if d > 0 else NINF32


def pow2_f32(k: int) -> np.float32:
    """2^k as f32: 0 below 2^−149, inf above 2^127."""
    if k < _POW2_LO:
        return np.float32(0.0)
    if k > 127:
        return INF32
    return _POW2[k - _POW2_LO]


def f32_bits(f) -> int:
    """The u32 bit pattern of an f32 (bit-exact, NaN payloads kept)."""
    return int(np.asarray(f, dtype=np.float32).view(np.uint32))


def bits_f32(u: int) -> np.float32:
    """The f32 whose bit pattern is the u32 `u` (bit-exact)."""
    return np.frombuffer(struct.pack("<I", u & 0xFFFFFFFF), dtype=np.float32)[0]


def real(v) -> np.float32:
    """The f32 real value of a non-Vector JitVal: `f32(x) * 2^s` in f32 (x rounded first)."""
    t = type(v)
    if t is np.float32:
        return v
    if t is int:
        return np.float32(v)  # |v| < 2^53: exact in double, one rounding
    if t is Scalar:
        # the product of an f32 and a power of two is exact in double: one rounding to f32
        return f32(float(np.float32(v.x)) * math.ldexp(1.0, v.s))
    raise TypeError(f"real() of {kind_name(v)}")


def f32_trunc_sat(f, lo: int, hi: int) -> int:
    """`trunc(f)` saturated to [lo, hi]; NaN → 0."""
    d = float(f)
    if d != d:
        return 0
    if d <= lo:
        return lo
    if d >= hi:
        return hi
    return int(d)


# ---------------------------------------------------------------------------------------------
# Encoding


def encode(v: int) -> int:
    """ENCODE (§3): ≤ −2 → −2, −1 → −1, 0 and 1 → +1, ≥ 2 → +2."""
    if v >= 2:
        return 2
    if v >= 0:
        return 1
    return -1 if v == -1 else -2


def encode_array(a) -> np.ndarray:
    """Vectorised ENCODE of integers (int arrays of any width, or Python ints of any size)."""
    try:
        arr = np.asarray(a)
    except OverflowError:
        arr = np.array(list(a), dtype=object)
    if arr.dtype == object:
        arr = np.clip(arr, -4, 4).astype(np.intp)
    elif arr.dtype.kind == "u":
        arr = np.minimum(arr, 4).astype(np.intp)
    elif arr.dtype.kind == "b":
        arr = arr.astype(np.intp)
    else:
        arr = np.clip(arr, -4, 4).astype(np.intp)
    return ENC_WRAP[arr]


def _u8(plane) -> np.ndarray:
    if isinstance(plane, (bytes, bytearray, memoryview)):
        return np.frombuffer(plane, dtype=np.uint8)
    return np.asarray(plane, dtype=np.uint8).reshape(-1)


def _plane_bytes(plane):
    return plane if isinstance(plane, (bytes, bytearray)) else _u8(plane).tobytes()


def pair_index(sign, extra, nbytes: int) -> np.ndarray:
    """`(sign byte << 8) | extra byte` for the first `nbytes` bytes of two planes (uint16):
    the row of `PAIR_CODES_F32` / `PAIR_CODES_I8` holding their 8 codes."""
    if nbytes <= 2048:  # small planes: interleave the bytes (little-endian u16 = e | s << 8)
        s, e = _plane_bytes(sign), _plane_bytes(extra)
        if len(s) < nbytes or len(e) < nbytes:
            raise ValueError(f"planes need {nbytes} bytes each, got {len(s)} and {len(e)}")
        pairs = bytearray(2 * nbytes)
        pairs[0::2] = e[:nbytes]
        pairs[1::2] = s[:nbytes]
        return np.frombuffer(pairs, dtype="<u2")
    s, e = _u8(sign), _u8(extra)
    if s.shape[0] < nbytes or e.shape[0] < nbytes:
        raise ValueError(f"planes need {nbytes} bytes each, got {s.shape[0]} and {e.shape[0]}")
    idx = s[:nbytes].astype(">u2").view("<u2")  # big-endian copy of a byte: (s << 8) little-endian
    idx |= e[:nbytes].astype("<u2")
    return idx


def codes_from_planes(n: int, sign, extra) -> np.ndarray:
    """Decode the first n elements of two planes (bytes or uint8 arrays) into int8 codes
    (missing bytes read as 0: code −2)."""
    nb = (n + 7) >> 3
    try:
        idx = pair_index(sign, extra, nb)
    except ValueError:  # short planes: pad with zero bytes
        s, e = _u8(sign)[:nb], _u8(extra)[:nb]
        s = np.concatenate([s, np.zeros(nb - s.shape[0], dtype=np.uint8)])
        e = np.concatenate([e, np.zeros(nb - e.shape[0], dtype=np.uint8)])
        idx = pair_index(s, e, nb)
    c = PAIR_CODES_I8.take(idx, axis=0).reshape(-1)
    return c if c.shape[0] == n else c[:n]


def _planes_from_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sign plane, extra plane) of int8 codes: s = code > 0; e = (code & 1) XOR s (codes 2
    and −1 have e = 1), both packed in one call."""
    bits = np.empty((2, codes.shape[0]), dtype=np.int8)
    np.greater(codes, 0, out=bits[0].view(np.bool_))
    np.bitwise_and(codes, 1, out=bits[1])
    bits[1] ^= bits[0]
    p = np.packbits(bits, axis=1, bitorder="little")
    return p[0], p[1]


# ---------------------------------------------------------------------------------------------
# NdaVec


class NdaVec:
    """An immutable quad-code vector: `n` elements, scale 2^`log2`.

    Stored on two bit planes (`sign`, `extra`: uint8 arrays of ceil(n/8) bytes, LSB first) and/or
    an int8 `codes` array (−2, −1, +1, +2); whichever side was not given is computed on first
    use and cached. Planes computed here always have zero padding bits.
    """

    __slots__ = ("n", "log2", "_codes", "_sign", "_extra")

    def __init__(self, n: int, log2: int, codes, sign, extra):
        self.n = n
        self.log2 = log2
        self._codes = codes
        self._sign = sign
        self._extra = extra

    @classmethod
    def from_codes(cls, codes, log2: int) -> "NdaVec":
        """Wrap a code array (values in {−2, −1, +1, +2}, not checked; taken over: made read-only)."""
        c = np.asarray(codes)
        if c.dtype != np.int8:
            c = c.astype(np.int8)
        if c.ndim != 1:
            c = c.reshape(-1)
        c.flags.writeable = False
        return cls(c.shape[0], log2, c, None, None)

    @classmethod
    def from_planes(cls, n: int, log2: int, sign, extra) -> "NdaVec":
        """Wrap two planes of ceil(n/8) bytes; padding bits are cleared."""
        nb = (n + 7) >> 3
        planes = []
        for p in (sign, extra):
            if isinstance(p, (bytes, bytearray, memoryview)):
                a = np.frombuffer(bytes(p), dtype=np.uint8)
            else:
                a = np.asarray(p, dtype=np.uint8)
            if a.shape[0] < nb:
                raise ValueError(f"plane has {a.shape[0]} bytes, {nb} needed for len {n}")
            a = a[:nb].copy()
            if n & 7:
                a[-1] &= (1 << (n & 7)) - 1
            a.flags.writeable = False
            planes.append(a)
        return cls(n, log2, None, planes[0], planes[1])

    @classmethod
    def zeros(cls, n: int, log2: int) -> "NdaVec":
        """Sign 0xFF / extra 0x00: every element is +1 (the original's misnomer)."""
        return cls.from_codes(np.ones(n, dtype=np.int8), log2)

    @property
    def codes(self) -> np.ndarray:
        c = self._codes
        if c is None:
            c = codes_from_planes(self.n, self._sign, self._extra)
            c.flags.writeable = False
            self._codes = c
        return c

    def _planes(self) -> None:
        s, e = _planes_from_codes(self._codes)
        s.flags.writeable = False
        e.flags.writeable = False
        self._sign, self._extra = s, e

    @property
    def sign(self) -> np.ndarray:
        if self._sign is None:
            self._planes()
        return self._sign

    @property
    def extra(self) -> np.ndarray:
        if self._extra is None:
            self._planes()
        return self._extra

    def code(self, i: int) -> int:
        return int(self.codes[i])

    def to_f32(self) -> np.ndarray:
        """Decoded elements `f32(code) * 2^log2`, in f32."""
        c = self.codes.astype(np.float32)
        if self.log2 == 0:
            return c
        p = pow2_f32(self.log2)
        if self.log2 >= 127:
            with np.errstate(over="ignore"):
                c *= p
        else:
            c *= p  # exact: |code| ≤ 2 and 2^log2 ≥ 2^−128
        return c

    def __len__(self) -> int:
        return self.n

    def __eq__(self, other) -> bool:
        return (type(other) is NdaVec and self.n == other.n and self.log2 == other.log2
                and np.array_equal(self.codes, other.codes))

    def __hash__(self) -> int:
        return hash((self.n, self.log2, self.codes.tobytes()))

    def __repr__(self) -> str:
        c = self.codes.tolist()
        body = ", ".join(map(str, c[:16])) + (", …" if self.n > 16 else "")
        return f"NdaVec(n={self.n}, log2={self.log2}, codes=[{body}])"


def make_vec(codes: np.ndarray, log2: int) -> NdaVec:
    """Fast `from_codes` for a fresh 1-D int8 array owned by the caller (made read-only)."""
    codes.setflags(write=False)
    return NdaVec(len(codes), log2, codes, None, None)


# ---------------------------------------------------------------------------------------------
# Kinds, conversions, truthiness, sizes


def is_vector(v) -> bool:
    return type(v) is NdaVec


def kind_name(v) -> str:
    """"Scalar", "Float" or "Vector"."""
    t = type(v)
    if t is int or t is Scalar:
        return "Scalar"
    if t is np.float32:
        return "Float"
    if t is NdaVec:
        return "Vector"
    raise TypeError(f"not a JitVal: {v!r}")


def to_f32(v) -> np.ndarray:
    """§5 `to_f32`: the decoded elements of a Vector, else a one-element f32 array."""
    if type(v) is NdaVec:
        return v.to_f32()
    return np.array([real(v)], dtype=np.float32)


def to_f32_list(v) -> list[float]:
    return to_f32(v).tolist()


def truthy(v) -> bool:
    """§5: Scalar x > 0 (scale ignored), Float f > 0, Vector Σcodes > 0 (empty → false)."""
    t = type(v)
    if t is int:
        return v > 0
    if t is Scalar:
        return v.x > 0
    if t is np.float32:
        return bool(v > 0)
    return int(v.codes.sum(dtype=np.int64)) > 0


def value_size(v) -> int:
    """runtime.md §5 accounting: 8 for Scalar/Float, 8 + 2·ceil(len/8) for a Vector."""
    if type(v) is NdaVec:
        return 8 + 2 * ((v.n + 7) >> 3)
    return 8


# ---------------------------------------------------------------------------------------------
# Print formats (runtime.md §6)

_FMT_LO = np.float32(1e-4)
_FMT_HI = np.float32(1e16)


def fmt_f32(x) -> str:
    """The original's f32 debug format: NaN, inf, -inf, 42.0, 0.5, -0.0, 1e-5, 3.4028235e38."""
    f = x if type(x) is np.float32 else f32(x)
    if f != f:
        return "NaN"
    if f == INF32:
        return "inf"
    if f == NINF32:
        return "-inf"
    a = abs(f)
    if a == 0 or (_FMT_LO <= a and a < _FMT_HI):
        return np.format_float_positional(f, unique=True, trim="0")
    s = np.format_float_scientific(f, unique=True, trim="-")
    mant, exp = s.split("e")
    return f"{mant}e{int(exp)}"


def fmt_list(xs: Iterable) -> str:
    """`"[" + ", ".join(fmt_f32(x)) + "]"`."""
    if not (isinstance(xs, np.ndarray) and xs.dtype == np.float32):
        with np.errstate(over="ignore"):
            xs = np.asarray(xs, dtype=np.float32)
    return "[" + ", ".join(fmt_f32(x) for x in xs.reshape(-1)) + "]"


# ---------------------------------------------------------------------------------------------
# Quantizer and broadcasts (§4, §6)


def _round_log2(scale: float) -> int:
    """round_half_away(log2(scale)) saturated to i8 (+inf → 127)."""
    if scale == math.inf:
        return 127
    l2 = math.log2(scale)
    r = math.floor(abs(l2) + 0.5)
    return sat_i8(r if l2 >= 0 else -r)


def quantize(xs) -> NdaVec:
    """§4: the f32 quantizer (amax ignores NaN; codes from the unsnapped scale)."""
    if isinstance(xs, np.ndarray) and xs.dtype == np.float32:
        a = xs.reshape(-1)
    else:
        with np.errstate(over="ignore"):  # doubles beyond the f32 range become ±inf
            a = np.asarray(xs, dtype=np.float32).reshape(-1)
    absa = np.abs(a)
    amax = np.maximum.reduce(absa) if a.shape[0] else _F32_ZERO  # NaN if any element is NaN
    if amax != amax:
        return _quantize_nan(a, absa)
    scale = np.float32(1.0) if amax < F32_1E8 else amax / np.float32(2.0)
    # index (positive << 1) | large, built in place in the comparison's own buffer
    idx = np.greater_equal(a, _F32_ZERO).view(np.int8)
    np.add(idx, idx, out=idx)
    if scale != INF32:  # else q = x·0 is 0 or NaN: never large
        np.multiply(absa, np.float32(1.0) / scale, out=absa)  # |x·inv| = |x|·inv exactly in f32
        idx += np.greater_equal(absa, _F32_1_5).view(np.int8)
    codes = _PL_TABLE.take(idx)
    codes.setflags(write=False)
    return NdaVec(codes.shape[0], _round_log2(float(scale)), codes, None, None)


def _quantize_nan(a: np.ndarray, absa: np.ndarray) -> NdaVec:
    """`quantize` of an input with NaNs (amax ignores them; NaN is negative and never large)."""
    keep = absa[absa == absa]
    amax = np.fmax.reduce(keep, initial=_F32_ZERO)
    scale = np.float32(1.0) if amax < F32_1E8 else amax / np.float32(2.0)
    if scale == INF32:
        large = np.zeros(a.shape[0], dtype=bool)  # q = x·0 is 0 or NaN: never large
    else:
        inv = np.float32(1.0) / scale
        with np.errstate(invalid="ignore"):  # signaling NaN inputs
            large = (absa * inv) >= _F32_1_5
    idx = (a >= 0).view(np.int8) << 1
    idx |= large.view(np.int8)
    return make_vec(_PL_TABLE[idx], _round_log2(float(scale)))


def quantize1(f) -> tuple[int, int]:
    """`quantize([f])` as (code, log2), in closed form (§6)."""
    f = f if type(f) is np.float32 else f32(f)
    d = float(f)
    if d != d:
        return -1, 0  # amax 0, scale 1, NaN is negative and never large
    a = abs(d)
    if a == math.inf:
        return (1 if d > 0 else -1), 127
    if a < float(F32_1E8):
        return (1 if d >= 0 else -1), 0  # covers ±0.0 (positive)
    # scale = |f|/2 (exact), inv = 1/scale, |f·inv| rounds to 2 (≥ 1.5): always large
    return (2 if d > 0 else -2), _round_log2(a / 2.0)


def broadcast_scalar(n: int, x: int, s: int) -> NdaVec:
    """§6: n equal codes, log2 s; x ∈ {−2, −1, +1} keeps its code, any other value gives +2."""
    code = x if x in (-2, -1, 1) else 2
    return make_vec(np.full(n, code, dtype=np.int8), s)


def broadcast_float(n: int, f) -> NdaVec:
    """§6: `quantize([f])` spread to n elements."""
    code, l2 = quantize1(f)
    return make_vec(np.full(n, code, dtype=np.int8), l2)


def broadcast(n: int, v) -> NdaVec:
    """A Vector is returned as is; an int/Scalar or Float is broadcast to n elements."""
    t = type(v)
    if t is NdaVec:
        return v
    if t is int:
        return broadcast_scalar(n, v, 0)
    if t is Scalar:
        return broadcast_scalar(n, v.x, v.s)
    return broadcast_float(n, v)
