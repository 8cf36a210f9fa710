"""Node kernels: what a node computes once the tier has evaluated and popped its operands.

In: JitVals (see `nda.runtime.values`), node fields (planes, enums) and, for the simulated machine
nodes, a `Machine` (heap + MMIO map).
Out: normalized JitVals, bit-exact to `values-and-kernels.md` §7–§13 and `language.md` §3.2–§3.3,
or `NdaRuntimeError(message, code)` with the spec's exact messages.

Every tier (interpreter, closure compiler, native fallbacks) calls these functions, so the
results cannot depend on the tier. Vectors are processed with numpy on int8 code arrays.
`matrix_weights` (`MatrixWeights`) / `NormGain` prepare a node's planes once (at compile time;
planes decode with one gather in the 65,536-row byte-pair tables of `nda.runtime.values`) and apply
the kernel on each execution; `matrix_apply` / `norm_apply` are the entry points every tier
uses (they also take plain int8 code arrays: the generic path).

f32 exp / sin / cos (SiLU, MathFunc) are *correctly rounded*, not numpy's float32 SIMD versions,
whose last bit depends on the CPU (e.g. numpy gives exp(1) = 2.718282, one ulp high); this
reproduces the spec's SiLU example bit for bit and is reproducible by any tier or language.
"""

from __future__ import annotations

import math as _m
import struct
from decimal import ROUND_HALF_EVEN, Decimal, getcontext, localcontext
from fractions import Fraction

import numpy as np

from nda.core.errors import DIMENSION_MISMATCH, OUT_OF_BOUNDS, TYPE_ERROR, NdaRuntimeError
from nda.runtime.kernels_tensor import (  # noqa: F401  (re-exported: every tier calls them through here)
    MatrixWeights, NormGain, decode_matrix_f32, gemv, isqrt_inv, matrix_apply, matrix_weights,
    norm_apply, norm_gain,
)
from nda.runtime.values import (
    ENC_WRAP, HEAP_SIZE, I32_MAX, I32_MIN, INF32, NINF32, NdaVec, Scalar, bits_f32, broadcast,
    encode, encode_array, f32, f32_bits, f32_trunc_sat, fmt_list, make_scalar, make_vec, quantize,
    quantize1, real, sat_i32, scalar_parts, to_f32, value_size, wrap32,
)

_F32_1E6 = float(np.float32(1e-6))


def _err(message: str, code: str) -> NdaRuntimeError:
    return NdaRuntimeError(message, code)


# ---------------------------------------------------------------------------------------------
# GEMV (§7), Gemv (§13) and RMS norm (§8): in `kernels_tensor`, re-exported here

# ---------------------------------------------------------------------------------------------
# Add (§9, §10)

# trunc(c / 2) for c = 0, 1, 2, −2, −1 (index c mod 5)
_HALF = np.array([0, 0, 1, -1, 0], dtype=np.int8)


def vec_add(x: NdaVec, d: NdaVec) -> NdaVec:
    """§9: align both to the larger scale (truncating shifts), add codes, ENCODE."""
    if x.n != d.n:
        raise _err(f"Add dimension mismatch: lhs len {x.n} \u2260 rhs len {d.n}",
                   DIMENSION_MISMATCH)
    xl, dl = x.log2, d.log2
    if xl == dl:
        s = x.codes + d.codes
        return make_vec(ENC_WRAP[s], xl)
    if xl > dl:
        x, d, xl, dl = d, x, dl, xl  # now d has the larger scale (addition commutes)
    k = dl - xl
    if k >= 2:
        return make_vec(d.codes, dl)  # every term(x_i, k) is 0; ENCODE(code) = code
    s = _HALF[x.codes]
    s += d.codes
    return make_vec(ENC_WRAP[s], dl)


def add_vals(l, r):
    """The Add node (§10)."""
    tl, tr = type(l), type(r)
    if tl is int and tr is int:
        return wrap32(l + r)
    if tl is NdaVec or tr is NdaVec:
        if tl is not NdaVec:
            l = broadcast(r.n, l)
        elif tr is not NdaVec:
            r = broadcast(l.n, r)
        return vec_add(l, r)
    if tl is np.float32 or tr is np.float32:
        return f32(_real_d(l) + _real_d(r))  # f32 sum: double rounding is innocuous
    x, s = scalar_parts(l)
    y, t = scalar_parts(r)
    if s == 0 and t == 0:
        return wrap32(x + y)
    o = s if s > t else t
    x >>= min(o - s, 31)
    y >>= min(o - t, 31)
    return make_scalar(encode(wrap32(x + y)), o)


# ---------------------------------------------------------------------------------------------
# Correctly rounded float32 exp / sin / cos
#
# The f32 result is the exact function value rounded to nearest-even, so it does not depend on
# the CPU, the numpy build (whose float32 SIMD exp is off by an ulp on some inputs) or the tier.
# Fast path: evaluate in float64 (relative error ≪ 2^−44) and round; if the interval
# d·(1 ± 2^−44) does not round to a single f32 (a near-midpoint case, about one input in 2^19),
# recompute with `decimal` at 60+ digits and round that exactly.

_CR_EPS = 2.0 ** -44


def _fraction_to_f32(fr: Fraction) -> np.float32:
    """Round an exact rational to the nearest f32 (ties to even, subnormals, overflow → inf)."""
    if fr == 0:
        return np.float32(0.0)
    neg = fr < 0
    num, den = abs(fr.numerator), fr.denominator
    e = num.bit_length() - den.bit_length()
    if (num << max(0, -e)) < (den << max(0, e)):
        e -= 1  # now 2^e ≤ |fr| < 2^(e+1)
    q = max(e, -126) - 23  # exponent of the last mantissa bit
    if q < 0:
        m, rem = divmod(num << -q, den)
        rden = den
    else:
        m, rem = divmod(num, den << q)
        rden = den << q
    if 2 * rem > rden or (2 * rem == rden and m & 1):
        m += 1
    if m >= (1 << 24):
        m >>= 1
        q += 1
    if q + 24 > 128:
        return NINF32 if neg else INF32
    d = _m.ldexp(float(m), q)  # exact
    return np.float32(-d if neg else d)


def _dec_pi() -> Decimal:
    """π at the current decimal precision (the `decimal` documentation recipe)."""
    getcontext().prec += 2
    three = Decimal(3)
    lasts, t, s, n, na, d, da = 0, three, 3, 1, 0, 0, 24
    while s != lasts:
        lasts = s
        n, na = n + na, na + 8
        d, da = d + da, da + 32
        t = (t * n) / d
        s += t
    getcontext().prec -= 2
    return +s


def _dec_sin_cos(x: Decimal) -> tuple[Decimal, Decimal]:
    """(sin x, cos x) to the current precision; needs prec ≥ 40 + digits of |x|."""
    half_pi = _dec_pi() / 2
    k = int((x / half_pi).to_integral_value(rounding=ROUND_HALF_EVEN))
    r = x - k * half_pi
    r2 = r * r
    s, term, i = r, r, 1
    while True:
        term = -term * r2 / ((i + 1) * (i + 2))
        i += 2
        if abs(term) < Decimal(10) ** (-getcontext().prec - 5):
            break
        s += term
    c, term, i = Decimal(1), Decimal(1), 0
    while True:
        term = -term * r2 / ((i + 1) * (i + 2))
        i += 2
        if abs(term) < Decimal(10) ** (-getcontext().prec - 5):
            break
        c += term
    k %= 4
    return ((s, c), (c, -s), (-s, -c), (-c, s))[k]


def _cr_slow(name: str, x: float) -> np.float32:
    if x == 0.0:
        return np.float32(x) if name == "sin" else np.float32(1.0)  # sin(±0) = ±0
    if name == "exp" and not -104.0 <= x <= 89.0:
        return np.float32(0.0) if x < 0 else INF32  # beyond the f32 range either way
    dx = Decimal(x)  # exact
    with localcontext() as ctx:
        if name == "exp":
            ctx.prec = 70
            y = dx.exp()
        else:
            ctx.prec = 160  # |x| < 2^128 has ≤ 39 integer digits
            y = _dec_sin_cos(dx)[0 if name == "sin" else 1]
    return _fraction_to_f32(Fraction(y))


_F64_FUNCS = {"exp": np.exp, "sin": np.sin, "cos": np.cos}


def _cr_f32(name: str, x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    with np.errstate(all="ignore"):
        d64 = a.astype(np.float64)
        d = _F64_FUNCS[name](d64)
        delta = np.abs(d) * _CR_EPS
        delta[~np.isfinite(d)] = 0.0
        lo = (d - delta).astype(np.float32)
        hi = (d + delta).astype(np.float32)
    bad = (lo != hi) & ~np.isnan(d)
    if bad.any():
        for i in np.flatnonzero(bad):  # rare near-midpoint cases only
            lo.flat[i] = _cr_slow(name, float(d64.flat[i]))
    return lo


def exp_f32(x) -> np.ndarray:
    """Correctly rounded f32 exp of a float32 array."""
    return _cr_f32("exp", x)


def sin_f32(x) -> np.ndarray:
    """Correctly rounded f32 sin of a float32 array."""
    return _cr_f32("sin", x)


def cos_f32(x) -> np.ndarray:
    """Correctly rounded f32 cos of a float32 array."""
    return _cr_f32("cos", x)


# ---------------------------------------------------------------------------------------------
# VecOp (§11)


def silu_f32(x):
    """`x / (1 + exp(−x))` in f32 (exp correctly rounded, see `exp_f32`); scalar in → np.float32."""
    scalar = np.ndim(x) == 0
    a = np.array(x, dtype=np.float32, ndmin=1)
    with np.errstate(all="ignore"):
        a = a / (np.float32(1.0) + exp_f32(-a))
    return a[0] if scalar else a


def vecop(kind: int, v):
    """The VecOp node: SiLU 0, Negate 1, Abs 2, ReduceSum 3."""
    t = type(v)
    if kind == 1:  # Negate
        if t is NdaVec:
            return make_vec(-v.codes, v.log2)
        if t is int:
            return wrap32(-v)
        if t is Scalar:
            return Scalar(wrap32(-v.x), v.s)
        return bits_f32(f32_bits(v) ^ 0x80000000)
    if kind == 2:  # Abs
        if t is NdaVec:
            return make_vec(np.abs(v.codes), v.log2)
        if t is int:
            return wrap32(abs(v))
        if t is Scalar:
            return Scalar(wrap32(abs(v.x)), v.s)
        return bits_f32(f32_bits(v) & 0x7FFFFFFF)
    if kind == 3:  # ReduceSum
        if t is not NdaVec:
            return v
        total = int(v.codes.sum(dtype=np.int64))
        r = f32(float(f32(total)) * _m.ldexp(1.0, v.log2))  # exact product, one rounding
        return make_scalar(*quantize1(r))
    if kind == 0:  # SiLU
        if t is NdaVec:
            return quantize(silu_f32(v.to_f32()))
        if t is np.float32:
            return silu_f32(v)
        return make_scalar(*quantize1(silu_f32(real(v))))
    raise ValueError(f"unknown VecOp kind {kind}")


# ---------------------------------------------------------------------------------------------
# Compare (language.md §3.2)


def _cmp(op: int, a, b):
    """Apply CmpOp `op` to two numbers or two arrays (Eq/Ne exact: only used on integers)."""
    if op == 0:
        return a == b
    if op == 1:
        return a != b
    if op == 2:
        return a < b
    if op == 3:
        return a > b
    if op == 4:
        return a <= b
    if op == 5:
        return a >= b
    raise ValueError(f"unknown CmpOp {op}")


def _padded(codes: np.ndarray, n: int) -> np.ndarray:
    if codes.shape[0] == n:
        return codes
    out = np.zeros(n, dtype=np.int8)
    out[: codes.shape[0]] = codes
    return out


def compare(op: int, l, r):
    """The Compare node: +1 / −1 for scalars; a code-wise ±1 Vector (log2 0) if any is a Vector."""
    tl, tr = type(l), type(r)
    if tl is NdaVec or tr is NdaVec:
        n = max(l.n if tl is NdaVec else 1, r.n if tr is NdaVec else 1)
        a = _padded(broadcast(n, l).codes, n)
        b = _padded(broadcast(n, r).codes, n)
        res = _cmp(op, a, b).view(np.int8) * 2
        res -= 1
        return make_vec(res, 0)
    if tl is int and tr is int:
        return 1 if _cmp(op, l, r) else -1
    a = _real_d(l)
    b = _real_d(r)
    if op == 0 or op == 1:
        diff = abs(float(f32(a - b)))  # the f32 difference (double rounding is innocuous)
        if diff != diff:
            return -1
        return 1 if (diff < _F32_1E6) == (op == 0) else -1
    return 1 if _cmp(op, a, b) else -1


# ---------------------------------------------------------------------------------------------
# Bitwise (language.md §3.2)


def _i32_op(op: int, a, b):
    """i32 op on Python ints or int64 arrays (values in i32 range)."""
    if op == 0:
        return a & b
    if op == 1:
        return a | b
    if op == 2:
        return a ^ b
    if op == 4:
        return (((a * (1 << (b & 31))) if isinstance(b, int) else a * np.left_shift(1, b & 31))
                + 0x80000000) % (1 << 32) - 0x80000000
    if op == 5:
        return a >> (b & 31)
    raise ValueError(f"unknown binary BitwiseOp {op}")


def _u32_op(op: int, a: int, b: int) -> int:
    if op == 0:
        return a & b
    if op == 1:
        return a | b
    if op == 2:
        return a ^ b
    if op == 4:
        return (a << (b & 31)) & 0xFFFFFFFF
    if op == 5:
        return a >> (b & 31)
    raise ValueError(f"unknown binary BitwiseOp {op}")


def bitwise_not(v):
    """Bitwise Not: ~x (scale kept), all 32 bits of a Float, every code of a Vector negated."""
    t = type(v)
    if t is int:
        return ~v
    if t is Scalar:
        return Scalar(~v.x, v.s)
    if t is np.float32:
        return bits_f32(f32_bits(v) ^ 0xFFFFFFFF)
    return make_vec(-v.codes, v.log2)


def _vec_scalar_operand(v) -> int:
    """A non-Vector operand facing a Vector: the int of a Scalar, the code of a Float."""
    t = type(v)
    if t is int:
        return v
    if t is Scalar:
        return v.x
    return quantize1(v)[0]


def bitwise(op: int, l, r):
    """The Bitwise node for And 0, Or 1, Xor 2, Shl 4, Shr 5 (Not 3 → `bitwise_not(l)`)."""
    if op == 3:
        return bitwise_not(l)
    if r is None:
        raise _err("Missing rhs for binary Bitwise op", TYPE_ERROR)
    tl, tr = type(l), type(r)
    if tl is NdaVec or tr is NdaVec:
        if tl is NdaVec and tr is NdaVec:
            n = min(l.n, r.n)
            res = _i32_op(op, l.codes[:n].astype(np.int64), r.codes[:n].astype(np.int64))
            log2 = l.log2
        elif tl is NdaVec:
            res = _i32_op(op, l.codes.astype(np.int64), _vec_scalar_operand(r))
            log2 = l.log2
        else:
            res = _i32_op(op, np.int64(_vec_scalar_operand(l)), r.codes.astype(np.int64))
            log2 = r.log2
        return make_vec(encode_array(res), log2)
    if tl is np.float32 or tr is np.float32:
        return bits_f32(_u32_op(op, f32_bits(real(l)), f32_bits(real(r))))
    a, s = scalar_parts(l)
    b, _ = scalar_parts(r)
    return make_scalar(int(_i32_op(op, a, b)), s)


# ---------------------------------------------------------------------------------------------
# Math, MathFunc, Cast (language.md §3.2)


def _real_d(v) -> float:
    """float(real(v)), fast for ints that are exact in f32."""
    if type(v) is int and -16777216 <= v <= 16777216:
        return float(v)
    return float(real(v))


def math(op: int, l, r) -> np.float32:
    """The Math node: f32 Add 0, Sub 1, Mul 2, Div 3 on real values (÷0 → ±inf / NaN)."""
    if type(l) is NdaVec or type(r) is NdaVec:
        raise _err("Unsupported type mismatch in Math", TYPE_ERROR)
    a, b = _real_d(l), _real_d(r)
    # one f32 rounding of the double result: double rounding is innocuous for + − × ÷
    if op == 0:
        return f32(a + b)
    if op == 1:
        return f32(a - b)
    if op == 2:
        return f32(a * b)
    if op == 3:
        if b == 0.0:
            with np.errstate(all="ignore"):
                return np.float32(real(l) / real(r))
        return f32(a / b)
    raise ValueError(f"unknown MathOp {op}")


def mathfunc(func: int, v) -> np.float32:
    """The MathFunc node: f32 Sin 0, Cos 1, Sqrt 2, Exp 3 of the real value (correctly rounded)."""
    if type(v) is NdaVec:
        raise _err("MathFunc operand must be scalar", TYPE_ERROR)
    a = np.array([real(v)], dtype=np.float32)
    if func == 2:
        with np.errstate(all="ignore"):
            return np.sqrt(a)[0]  # IEEE sqrt is correctly rounded
    if func == 3:
        return exp_f32(a)[0]
    if func == 0:
        return sin_f32(a)[0]
    if func == 1:
        return cos_f32(a)[0]
    raise ValueError(f"unknown MathFuncKind {func}")


def cast(to_type: int, v, n: int):
    """The Cast node: to Int 0, Float 1, Vector 2 (`n` = conditioning length)."""
    t = type(v)
    if to_type == 0:
        if t is NdaVec:
            raise _err("Cannot cast Vector to Int", TYPE_ERROR)
        if t is int:
            return v
        if t is Scalar:
            x, s = v.x, v.s
            if s >= 0:
                return sat_i32(x << s)
            q = abs(x) >> -s  # trunc toward zero
            return -q if x < 0 else q
        return f32_trunc_sat(v, I32_MIN, I32_MAX)
    if to_type == 1:
        if t is NdaVec:
            raise _err("Cannot cast Vector to Float", TYPE_ERROR)
        return real(v)
    if to_type == 2:
        return broadcast(n, v)
    raise ValueError(f"unknown TypeKind {to_type}")


# ---------------------------------------------------------------------------------------------
# Dot (§12)


def dot(l: NdaVec, r: NdaVec) -> np.float32:
    """`acc = acc + a_i·b_i` in f32, in index order, over the decoded elements.

    Fast path (exact): when both scales are ≤ 126, E = la + lb ≥ −149 and 4·n·2^E < 2^128 with
    4·n < 2^24, every product p_i·2^E (p_i = code products, |p_i| ≤ 4) and every partial sum
    m_k·2^E (|m_k| ≤ 4k < 2^24) is representable, so each f32 step is exact and the result is
    f32(Σ p_i · 2^E). Otherwise (extreme scales or ≥ 2^22 elements) rounding depends on the
    order: the float32 products are summed strictly in index order by `np.add.accumulate`
    (a sequential running sum in float32, unlike `np.sum`'s pairwise summation), starting from
    +0.0 (so a first product −0.0 becomes +0.0, as `0.0 + p_0` does).
    """
    n = l.n
    if n != r.n:
        raise _err("Dot vector length mismatch", DIMENSION_MISMATCH)
    la, lb = l.log2, r.log2
    e = la + lb
    if la <= 126 and lb <= 126 and e >= -149 and 4 * n < (1 << 24) and \
            (4 * n) * 2.0 ** e < 2.0 ** 128:
        total = int(np.dot(l.codes.astype(np.int64), r.codes.astype(np.int64)))
        return np.float32(_m.ldexp(float(total), e))  # exact
    if n == 0:
        return np.float32(0.0)
    with np.errstate(all="ignore"):
        p = l.to_f32() * r.to_f32()
        p[0] += np.float32(0.0)
        np.add.accumulate(p, out=p)
    return p[-1]


# ---------------------------------------------------------------------------------------------
# Simulated machine (language.md §3.3)


class Machine:
    """Per-run heap (65,536 zero bytes) and MMIO map (u32 → JitVal) with its accounted size."""

    __slots__ = ("heap", "mmio", "mmio_bytes")

    def __init__(self):
        self.heap = bytearray(HEAP_SIZE)
        self.mmio: dict = {}
        self.mmio_bytes = 0


def _address(a, node: str) -> int:
    t = type(a)
    if t is int:
        return a & 0xFFFFFFFF
    if t is Scalar:
        return a.x & 0xFFFFFFFF
    if t is np.float32:
        return f32_trunc_sat(a, 0, 0xFFFFFFFF)
    raise _err(f"{node} address must be scalar", TYPE_ERROR)


def peek(machine: Machine, a):
    """The Peek node: the MMIO value at `a`, else the i32 LE at heap[a..a+4]."""
    addr = _address(a, "Peek")
    v = machine.mmio.get(addr)
    if v is not None:
        return v
    if addr + 4 <= HEAP_SIZE:
        return struct.unpack_from("<i", machine.heap, addr)[0]
    raise _err(f"Out of bounds MMIO/heap read at address {addr}", OUT_OF_BOUNDS)


def poke(machine: Machine, a, v) -> bool:
    """The Poke node: MMIO (existing key or a ≥ 0xF0000000) takes any value; the heap an i32.

    Returns True when the write went to the MMIO map (the sandbox checks memory after it).
    """
    addr = _address(a, "Poke")
    mmio = machine.mmio
    if addr >= 0xF0000000 or addr in mmio:
        old = mmio.get(addr)
        if old is not None:
            machine.mmio_bytes -= value_size(old)
        mmio[addr] = v
        machine.mmio_bytes += value_size(v)
        return True
    if addr + 4 <= HEAP_SIZE:
        t = type(v)
        if t is int:
            x = v
        elif t is Scalar:
            x = v.x
        elif t is np.float32:
            x = f32_trunc_sat(v, I32_MIN, I32_MAX)
        else:
            raise _err("Poke value must be scalar", TYPE_ERROR)
        struct.pack_into("<i", machine.heap, addr, x)
        return False
    raise _err(f"Out of bounds MMIO/heap write at address {addr}", OUT_OF_BOUNDS)


def syscall_print_line(v) -> str:
    return "[syscall print] " + fmt_list(to_f32(v))


def print_line(v) -> str:
    return "[print] " + fmt_list(to_f32(v))
