"""Quantized tensor kernels: the Matrix GEMV (§7), the Gemv node (§13) and the RMS norm (§8).

In: a node's planes (bytes or uint8 arrays) and shape; JitVal operands.
Out: `MatrixWeights` / `NormGain` (a node's planes prepared once, at compile time) whose `apply`
runs the node on each execution, and the entry points `matrix_apply` / `norm_apply` / `gemv`
that every tier calls (through `nda.runtime.kernels`), bit-exact to `values-and-kernels.md` §7, §8, §13,
or `NdaRuntimeError` with the spec's exact messages.

How (values-and-kernels.md §1): a code is 3·s + e − 2 for its bits (s, e). A Matrix runs the
native popcount GEMV of `nda.runtime.native_gemv` straight from its planes (one call per
execution; nothing decoded or kept) when that kernel could be built, else — or with
`native=False` — *the numpy way*: the 8 codes of a byte of each plane are one row of the
65,536-row tables of `nda.runtime.values`, indexed by (sign byte << 8) | extra byte, so decoding
a matrix is one gather; the GEMV runs in float32 BLAS (exact: every partial sum is an integer of
magnitude ≤ 4·cols < 2^24) and ENCODEs the accumulators through a table indexed by the
accumulator itself. Both are exact integer row sums: they agree bit for bit. A large Matrix
(float32 codes above 16 MiB) runs in row blocks, so host memory stays near its plane bytes.
The norm counts the ±1 codes and maps every code through one small table (for a constant
gain, the common case, a 5-entry table indexed by the code alone).
"""

from __future__ import annotations

import threading

import numpy as np

from nda.core.errors import DIMENSION_MISMATCH, NdaRuntimeError
from nda.runtime.native_gemv import gemv_kernel
from nda.runtime.native_gemv import scratch as native_scratch
from nda.runtime.values import (
    ENC_WRAP, PAIR_CODES_F32, PAIR_CODES_I8, NdaVec, broadcast, codes_from_planes, encode,
    make_vec, pair_index, sat_i8,
)

# Exact-float32 GEMV bound: |acc| ≤ 4·cols must stay below 2^24.
_F32_EXACT_COLS = (1 << 22) - 1


def _err(message: str, code: str) -> NdaRuntimeError:
    return NdaRuntimeError(message, code)


# ---------------------------------------------------------------------------------------------
# GEMV (§7) and Gemv (§13)


def _pair_index(rows: int, cols: int, sign, extra) -> np.ndarray:
    need = rows * ((cols + 7) >> 3)
    try:
        return pair_index(sign, extra, need)
    except ValueError:
        raise ValueError(f"Matrix planes need {need} bytes each, got {len(sign)} and {len(extra)}") from None


def _decode_pairs(rows: int, cols: int, idx: np.ndarray) -> np.ndarray:
    stride8 = ((cols + 7) >> 3) << 3
    w = PAIR_CODES_F32.take(idx, axis=0).reshape(rows, stride8)
    return w if cols == stride8 else w[:, :cols]


SCRATCH_PAIRS = 1 << 15  # float32 pairs of the per-thread decode buffer (1 MiB)
_SCRATCH = threading.local()


def _decode_scratch(rows: int, cols: int, idx: np.ndarray) -> np.ndarray:
    """`_decode_pairs` for a matrix used once: into this thread's reused buffer when it fits
    (fresh memory costs a cache miss per line on every first write; a reused buffer is
    usually still cached), else a transient array. The result is valid until the thread's
    next decode."""
    need = idx.shape[0]
    if need > SCRATCH_PAIRS:
        return _decode_pairs(rows, cols, idx)
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None:
        buf = _SCRATCH.buf = np.empty((SCRATCH_PAIRS, 8), dtype=np.float32)
    w = PAIR_CODES_F32.take(idx, axis=0, mode="clip", out=buf[:need])  # indices < 65,536: clip is exact
    stride8 = ((cols + 7) >> 3) << 3
    w = w.reshape(rows, stride8)
    return w if cols == stride8 else w[:, :cols]


def decode_matrix_f32(rows: int, cols: int, sign, extra) -> np.ndarray:
    """A Matrix node's planes as a read-only (rows, cols) float32 code matrix.

    Row r starts at byte r·ceil(cols/8); padding bits of each row are ignored (the result is
    then a view with a row stride of 8·ceil(cols/8) elements, which BLAS takes as is).
    """
    w = _decode_pairs(rows, cols, _pair_index(rows, cols, sign, extra))
    w.flags.writeable = False
    return w


def _encode_lut(cols: int) -> np.ndarray:
    """ENCODE over [−4·cols, 4·cols], indexed by the accumulator itself (negative indices wrap):
    acc 0, 1 → +1; 2 … k → +2; −k … −2 → −2; −1 → −1 (k = 4·cols), read-only."""
    k = 4 * cols
    if k == 0:
        return np.frombuffer(b"\x01", dtype=np.int8)
    return np.frombuffer(b"\x01\x01" + b"\x02" * (k - 1) + b"\xfe" * (k - 1) + b"\xff", dtype=np.int8)


def _encode_acc(acc: np.ndarray) -> np.ndarray:
    """ENCODE of an integer-valued accumulator array (float32 or int64)."""
    c = np.minimum(acc, 4)
    np.maximum(c, -4, out=c)
    return ENC_WRAP[c.astype(np.intp)]


# A Matrix whose float32 code matrix would exceed `WHOLE_F32_BYTES` is *blocked*: an execution
# decodes it in row blocks of about `BLOCK_BYTES` into one reused buffer, so transient host
# memory stays a small multiple of its planes whatever its shape (docs/decisions.md #13). A
# blocked matrix that runs again keeps its float32 matrix only up to `KEEP_F32_BYTES`.
WHOLE_F32_BYTES = 16 << 20
KEEP_F32_BYTES = 64 << 20
BLOCK_BYTES = 4 << 20
NATIVE_BLOCK_BYTES = 256 << 10  # of each plane, per native call of a blocked matrix
_UNIT_STRIDE = (1,)


def _plane_u8(plane, need: int) -> np.ndarray:
    a = np.frombuffer(plane, dtype=np.uint8) if isinstance(plane, (bytes, bytearray, memoryview)) \
        else np.asarray(plane, dtype=np.uint8).reshape(-1)
    return a[:need]


def _plane_arg(plane, need: int) -> tuple:
    """(what the native kernel is given for a plane, the plane object to hold, bytes copied):
    a `bytes` object as is (ctypes passes its buffer), else the address of a contiguous uint8
    copy of its first `need` bytes (what the kernel reads must not change under it) — only a
    blocked matrix's contiguous planes are held as views, as the numpy way does."""
    if plane.__class__ is bytes:
        return plane, plane, 0
    a = _plane_u8(plane, need)
    if a.flags.c_contiguous and need > WHOLE_F32_BYTES >> 5:
        return a.ctypes.data, a, 0
    a = np.array(a, dtype=np.uint8, order="C")
    return (a.ctypes.data if need else None), a, need


class MatrixWeights:
    """A Matrix node's planes, prepared once: what `matrix_apply` runs on each execution.

    Two ways to run it, chosen at construction (`native`, passed explicitly):
    - native (the default when `nda.runtime.native_gemv` has a compiled kernel): one call of
      the native popcount GEMV straight from the planes, which ENCODEs as it goes; nothing is
      decoded or kept, so preparing is O(1) and `nbytes` is the planes;
    - numpy (`native=False`, or no llvmlite / the JIT failed): the planes decoded to float32
      codes and one float32 BLAS GEMV (exact: every partial sum is an integer of magnitude
      ≤ 4·cols < 2^24), ENCODEd through `lut` (indexed by the accumulator).
    Both compute the same exact integer row sums, so they agree bit for bit.

    `f32` / `codes`: the (rows, cols) codes as float32 / int8 (on demand; kept only by the
    numpy way, see below); `nbytes`: host memory the object holds or pins at most (the planes
    it was built from included); `keeps_whole`: run in one piece (else blocked, below);
    `keeps`: worth keeping in a kernel cache (the numpy way: keeps its float32 matrix from its
    second execution on). `np.asarray(w)` is the int8 code matrix.

    Numpy way: the float32 matrix is 4 bytes per weight, and fresh memory is expensive (a page
    fault per 4 KiB), so it is only *kept* from the second execution on: the first one decodes
    into a transient buffer (one table gather over the byte pairs) that the allocator reuses.

    A *blocked* matrix (float32 codes above `WHOLE_F32_BYTES`) keeps only views of its planes:
    an execution runs a block of rows at a time (native: `NATIVE_BLOCK_BYTES` of each plane;
    numpy: `BLOCK_BYTES` of float32 codes decoded into one buffer), calling `check` (the run's
    deadline check) between blocks. The numpy way keeps its float32 matrix from its second
    execution on if that is at most `KEEP_F32_BYTES` (~10× faster GEMVs than decoding again).
    """

    __slots__ = ("rows", "cols", "idx", "_lut", "_f32", "_codes", "_runs", "_planes", "nbytes",
                 "keeps", "keeps_whole", "_kern", "_sp", "_ep")

    def __init__(self, rows: int, cols: int, sign, extra, native: bool = True):
        self.rows, self.cols = rows, cols
        need = rows * ((cols + 7) >> 3)  # byte pairs; the float32 matrix is 32 B per pair
        self._f32 = self._codes = self._lut = None
        self._runs = 0
        self.keeps_whole = whole = need <= WHOLE_F32_BYTES >> 5
        self._kern = kern = gemv_kernel() if native else None
        if kern is not None:
            if len(sign) < need or len(extra) < need:
                raise ValueError(f"Matrix planes need {need} bytes each, got {len(sign)} and {len(extra)}")
            self.idx = None
            self._sp, ps, held_s = _plane_arg(sign, need)
            self._ep, pe, held_e = _plane_arg(extra, need)
            self._planes = (ps, pe)
            self.keeps = whole  # cheap to keep; a blocked one is O(1) to prepare again
            self.nbytes = len(sign) + len(extra) + held_s + held_e
            return
        self._lut = lut = _encode_lut(cols)
        # nbytes: host bytes held or pinned at most — planes, idx (2 B per pair), the float32
        # matrix once kept, the ENCODE table
        if whole:
            self.idx = _pair_index(rows, cols, sign, extra)
            self._planes = None
            self.keeps = True
            self.nbytes = len(sign) + len(extra) + 34 * need + lut.nbytes
        else:  # blocked
            if len(sign) < need or len(extra) < need:
                raise ValueError(f"Matrix planes need {need} bytes each, got {len(sign)} and {len(extra)}")
            self.idx = None
            self._planes = (_plane_u8(sign, need), _plane_u8(extra, need))
            self.keeps = keep = need <= KEEP_F32_BYTES >> 5  # keeps its decode from run 2 on
            self.nbytes = len(sign) + len(extra) + (32 * need if keep else 0) + lut.nbytes

    @property
    def native(self) -> bool:
        """Whether executions run the native kernel (else the numpy way)."""
        return self._kern is not None

    @property
    def lut(self) -> np.ndarray:
        """ENCODE indexed by the accumulator (`_encode_lut`; kept by the numpy way only)."""
        t = self._lut
        return _encode_lut(self.cols) if t is None else t

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def f32(self) -> np.ndarray:
        w = self._f32
        if w is None:
            idx = self.idx if self._planes is None else _pair_index(self.rows, self.cols, *self._planes)
            w = _decode_pairs(self.rows, self.cols, idx)
            w.flags.writeable = False
            if self.keeps and self._kern is None:
                self._f32 = w
        return w

    @property
    def codes(self) -> np.ndarray:
        c = self._codes
        if c is None:
            c = self.f32.astype(np.int8)
            c.setflags(write=False)
            if self.keeps and self._kern is None:
                self._codes = c
        return c

    def __array__(self, dtype=None, copy=None):
        return self.codes if dtype is None else self.codes.astype(dtype)

    def apply(self, x, scale: int, check=None) -> NdaVec:
        """The Matrix node (§7) on operand `x` with scale `scale` (`check`: called between
        the row blocks of a blocked matrix)."""
        cols = self.cols
        if x.__class__ is not NdaVec:
            x = broadcast(cols, x)
        if x.n != cols:
            raise _err(f"Matrix GEMV dimension mismatch: input len {x.n} \u2260 matrix cols {cols}",
                       DIMENSION_MISMATCH)
        kern = self._kern
        if kern is not None:
            c = x.codes
            if c.strides != _UNIT_STRIDE:
                c = np.ascontiguousarray(c)
            out = np.empty(self.rows, dtype=np.int8)
            if self.keeps_whole:
                kern(self._sp, self._ep, 0, self.rows, cols, c, out, native_scratch(cols))
            else:
                self._native_blocks(c, out, check)
        else:
            w = self._f32
            if w is not None:
                acc = np.dot(w, x.codes.astype(np.float32))
            elif self._runs and self.keeps:  # a second execution: keep the float32 matrix
                acc = np.dot(self.f32, x.codes.astype(np.float32))
            elif self._planes is None:
                self._runs = 1
                acc = np.dot(_decode_scratch(self.rows, cols, self.idx), x.codes.astype(np.float32))
            else:
                self._runs = 1
                acc = self._blocked_acc(x.codes, check)
            out = self._lut.take(acc.astype(np.intp))
        out.setflags(write=False)
        log2 = scale + x.log2
        return NdaVec(self.rows, -128 if log2 < -128 else (127 if log2 > 127 else log2), out, None, None)

    def _native_blocks(self, c: np.ndarray, out: np.ndarray, check, block: int = NATIVE_BLOCK_BYTES) -> None:
        """The native kernel over `block` bytes of each plane at a time, `check` after each."""
        rows, cols = self.rows, self.cols
        per = max(1, block // max(1, (cols + 7) >> 3))
        kern, sp, ep, sc = self._kern, self._sp, self._ep, native_scratch(cols)
        for r0 in range(0, rows, per):
            kern(sp, ep, r0, min(rows, r0 + per), cols, c, out, sc)
            if check is not None:
                check()

    def _blocked_acc(self, xcodes: np.ndarray, check) -> np.ndarray:
        """Row sums Σ_c w[r][c]·x[c] (exact float32), decoding `BLOCK_BYTES` of rows at a time."""
        rows, cols = self.rows, self.cols
        nb = (cols + 7) >> 3
        stride8 = nb << 3
        xf = np.zeros(stride8, dtype=np.float32)  # padding columns meet 0: they add nothing
        xf[:cols] = xcodes
        per = max(1, BLOCK_BYTES // (4 * stride8))
        s, e = self._planes
        acc = np.empty(rows, dtype=np.float32)
        idx = np.empty(min(per, rows) * nb, dtype=np.uint16)
        buf = np.empty((idx.shape[0], 8), dtype=np.float32)
        for r0 in range(0, rows, per):
            r1 = min(rows, r0 + per)
            k = (r1 - r0) * nb
            i = idx[:k]
            np.copyto(i, s[r0 * nb:r1 * nb])
            i <<= 8
            i |= e[r0 * nb:r1 * nb]
            w = PAIR_CODES_F32.take(i, axis=0, out=buf[:k])
            np.dot(w.reshape(r1 - r0, stride8), xf, out=acc[r0:r1])
            if check is not None:
                check()
        return acc


def matrix_weights(rows: int, cols: int, sign: bytes, extra: bytes, native: bool = True) -> MatrixWeights:
    """Prepare a Matrix node's planes (`MatrixWeights`: the native kernel, or with
    `native=False` the numpy way; int8 codes on demand).

    Row r starts at byte r·ceil(cols/8); padding bits of each row are ignored.
    """
    return MatrixWeights(rows, cols, sign, extra, native)


def _gemv_codes(w: np.ndarray, xcodes: np.ndarray) -> np.ndarray:
    """out[r] = ENCODE(Σ_c w[r][c]·x[c]) for an int8 (rows, cols) matrix."""
    cols = w.shape[1]
    if cols <= _F32_EXACT_COLS:
        acc = w.astype(np.float32) @ xcodes.astype(np.float32)
    else:
        acc = w.astype(np.int64) @ xcodes.astype(np.int64)
    return _encode_acc(acc)


def matrix_apply(weights, cols: int, scale: int, x, check=None) -> NdaVec:
    """The Matrix node (§7): broadcast a non-Vector input to `cols`, check len, GEMV.

    `weights` is a `MatrixWeights` (fast path; `check` is called between the row blocks of a
    blocked matrix) or any (rows, cols) int8 code matrix.
    """
    if type(weights) is MatrixWeights:
        return weights.apply(x, scale, check)
    if type(x) is not NdaVec:
        x = broadcast(cols, x)
    if x.n != cols:
        raise _err(f"Matrix GEMV dimension mismatch: input len {x.n} \u2260 matrix cols {cols}",
                   DIMENSION_MISMATCH)
    return make_vec(_gemv_codes(np.asarray(weights), x.codes), sat_i8(scale + x.log2))


def gemv(m: NdaVec, v: NdaVec) -> NdaVec:
    """The Gemv node (§13): element (r, c) of the matrix is element r·cols + c of `m`."""
    cols = v.n
    if cols == 0:
        raise _err("Gemv cols cannot be zero", DIMENSION_MISMATCH)
    rows = m.n // cols
    w = m.codes[: rows * cols].reshape(rows, cols)
    return make_vec(_gemv_codes(w, v.codes), sat_i8(m.log2 + v.log2))


# ---------------------------------------------------------------------------------------------
# RMS norm (§8)


def norm_gain(size: int, weight: bytes, bias: bytes) -> np.ndarray:
    """Gain codes (int8, `size` elements): `weight` is the sign plane, `bias` the extra plane."""
    nb = (size + 7) >> 3
    if len(weight) < nb or len(bias) < nb:
        raise ValueError(f"Norm planes need {nb} bytes each, got {len(weight)} and {len(bias)}")
    g = codes_from_planes(size, bytes(weight), bytes(bias))
    g.flags.writeable = False
    return g


def isqrt_inv(v: int) -> int:
    """§8 fixed-point inverse square root (three Newton steps, result ≤ 2^14)."""
    h = v.bit_length() // 2
    x = 1 << (14 - h) if h <= 14 else 1
    for _ in range(3):
        t = (v * x * x) >> 14
        term = 49152 - t
        if term < 0:
            term = 0
        x = (x * term) >> 15
        if x == 0:
            break
    return x if x < 16384 else 16384


def _norm_table(n1: int, n2: int) -> np.ndarray:
    """Output code for (c, g), indexed by c + 5·g (mod 25), given nrm(±1) = ±n1, nrm(±2) = ±n2."""
    t = np.ones(25, dtype=np.int8)
    for c in (-2, -1, 1, 2):
        nrm = (n1 if abs(c) == 1 else n2) * (1 if c > 0 else -1)
        for g in (-2, -1, 1, 2):
            t[(c + 5 * g) % 25] = encode(nrm * g)  # ENCODE saturates: clamp(…, −4, 4) is implied
    t.flags.writeable = False
    return t


# ENCODE(nrm·g) only depends on min(nrm, 2) for nrm ≥ 0: tables for n1, n2 ∈ {0, 1, 2}
_NORM_TABLES = tuple(_norm_table(a, b) for a in range(3) for b in range(3))


def _norm_select(n: int, ones: int) -> int:
    """Index into `_NORM_TABLES` for a length-n input with `ones` codes ±1 (the rest ±2)."""
    sum_sq = ones + 4 * (n - ones)
    inv = isqrt_inv(((sum_sq << 14) // n) + 1)
    n1 = inv >> 7  # trunc(±inv / 128) = ±n1
    n2 = (2 * inv) >> 7  # trunc(±2·inv / 128) = ±n2
    return (n1 if n1 < 2 else 2) * 3 + (n2 if n2 < 2 else 2)


def _const_gain_tables(g: int) -> tuple:
    """For a constant gain g: the 9 tables of `_NORM_TABLES` as 5-entry tables indexed by the
    code c (mod 5: entries for c = 0, 1, 2, −2, −1)."""
    out = []
    for t in _NORM_TABLES:
        t5 = t[(np.array([0, 1, 2, -2, -1]) + 5 * g) % 25]
        t5.flags.writeable = False
        out.append(t5)
    return tuple(out)


# gain g ∈ {−2, −1, +1, +2} → its 9 tables, at index g mod 5
_CONST_GAIN_TABLES = tuple(_const_gain_tables(g) if g else None for g in (0, 1, 2, -2, -1))


def _uniform_bit(plane, n: int) -> int | None:
    """The common value of the first n bits of a plane (LSB first), or None if they differ
    (or n = 0)."""
    full, rem = n >> 3, n & 7
    b = bytes(plane[: full + (1 if rem else 0)])
    bit = None
    if full:
        first = b[0]
        if (first != 0 and first != 255) or b.count(first, 0, full) != full:
            return None
        bit = first & 1
    if rem:
        mask = (1 << rem) - 1
        last = b[full] & mask
        lb = 1 if last == mask else (0 if last == 0 else None)
        if lb is None or (bit is not None and lb != bit):
            return None
        bit = lb
    return bit


class NormGain:
    """A Norm node's planes decoded once: what `norm_apply` runs on each execution.

    The output code of element i is `_NORM_TABLES[k][c_i + 5·g_i]`, k chosen by the count of
    ±1 codes in the input. With a constant gain g (the common case) that is a 5-entry table
    indexed by the code alone (one gather); otherwise the table is indexed by `c + 5·g`.
    The table per count is memoized (a pure function of the count: no observable state).
    """

    __slots__ = ("size", "g5", "const", "_gain", "_tables", "_memo", "nbytes")

    def __init__(self, size: int, weight: bytes, bias: bytes):
        self.size = size
        # host bytes held or pinned at most: planes, gains (+ ×5), one memo entry per count
        self.nbytes = len(weight) + len(bias) + 2 * size + 8 * (size + 1)
        nb = (size + 7) >> 3
        if len(weight) < nb or len(bias) < nb:
            raise ValueError(f"Norm planes need {nb} bytes each, got {len(weight)} and {len(bias)}")
        s, e = _uniform_bit(weight, size), _uniform_bit(bias, size)
        self._gain = self.g5 = None
        self._memo: dict = {}
        if s is not None and e is not None:
            self.const = 3 * s + e - 2  # every gain code is the same: read it off the planes
            self._tables = _CONST_GAIN_TABLES[self.const]
        else:
            self.const = None
            g = PAIR_CODES_I8.take(pair_index(weight, bias, nb), axis=0).reshape(-1)[:size]
            g.setflags(write=False)
            self._gain = g
            self.g5, self._tables = g * np.int8(5), _NORM_TABLES
            self.g5.setflags(write=False)

    @property
    def gain(self) -> np.ndarray:
        """The int8 gain codes."""
        g = self._gain
        if g is None:
            g = np.full(self.size, self.const, dtype=np.int8)
            g.setflags(write=False)
            self._gain = g
        return g

    def apply(self, x) -> NdaVec:
        """The Norm node (§8) on operand `x`."""
        size = self.size
        if x.__class__ is not NdaVec:
            x = broadcast(size, x)
        if x.n != size:
            raise _err(f"Norm dimension mismatch: input len {x.n} \u2260 norm size {size}",
                       DIMENSION_MISMATCH)
        if size == 0:
            return make_vec(np.empty(0, dtype=np.int8), 0)
        c = x.codes
        b = c.tobytes()
        ones = b.count(1) + b.count(255)  # codes +1 and −1 (int8 bytes 0x01, 0xFF)
        t = self._memo.get(ones)
        if t is None:
            t = self._memo[ones] = self._tables[_norm_select(size, ones)]
        out = t.take(c) if self.g5 is None else t.take(c + self.g5)
        out.setflags(write=False)
        return NdaVec(size, 0, out, None, None)


def norm_apply(gain, size: int, x) -> NdaVec:
    """The Norm node (§8): broadcast a non-Vector input to `size`, check len, RMS norm.

    `gain` is a `NormGain` (fast path) or the int8 gain codes of `norm_gain`.
    """
    if type(gain) is NormGain:
        return gain.apply(x)
    if type(x) is not NdaVec:
        x = broadcast(size, x)
    if x.n != size:
        raise _err(f"Norm dimension mismatch: input len {x.n} \u2260 norm size {size}",
                   DIMENSION_MISMATCH)
    if size == 0:
        return make_vec(np.empty(0, dtype=np.int8), 0)
    c = x.codes
    table = _NORM_TABLES[_norm_select(size, int(np.count_nonzero(c & 1)))]  # ±1 odd, ±2 even
    idx = gain * np.int8(5)
    idx += c
    return make_vec(table.take(idx), 0)
