"""The native popcount GEMV (`nda.runtime.native_gemv`) against the numpy way of
`MatrixWeights` (float32 decode + BLAS): the same codes, bit for bit, on random shapes and planes
(padding bits set), inputs built from codes and from planes, any scale, whole and blocked; and
the numpy way when it is asked for or when the native kernel cannot be built."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from nda.runtime import kernels_tensor as KT
from nda.runtime import native_gemv as N
from nda.runtime.values import NdaVec, encode

CODES = np.array([-2, -1, 1, 2], dtype=np.int8)
EDGE_COLS = [1, 7, 8, 9, 63, 64, 65, 127, 128, 129, 191, 200, 511, 512, 513, 896, 1023, 1024, 1100]


def _planes(rng, rows: int, cols: int, kind: str, extra_bytes: int = 0):
    """Random planes (padding bits random too) of a rows × cols matrix, as `kind`."""
    n = rows * ((cols + 7) >> 3) + extra_bytes
    s, e = (rng.integers(0, 256, n, dtype=np.uint8) for _ in range(2))
    if kind == "bytes":
        return s.tobytes(), e.tobytes()
    if kind == "bytearray":
        return bytearray(s.tobytes()), bytearray(e.tobytes())
    return s, e  # uint8 arrays


def _x(rng, cols: int, how: str, log2: int) -> NdaVec:
    """An input of `cols` codes: from a code array, from planes (padding bits set in what is
    given: `from_planes` clears them), or from a strided (non-contiguous) code array."""
    codes = rng.choice(CODES, cols)
    if how == "codes":
        return NdaVec.from_codes(codes, log2)
    if how == "planes":
        v = NdaVec.from_codes(codes, log2)
        s, e = bytearray(v.sign.tobytes()), bytearray(v.extra.tobytes())
        if cols & 7:
            s[-1] |= 0xFF << (cols & 7) & 0xFF
            e[-1] |= 0xFF << (cols & 7) & 0xFF
        return NdaVec.from_planes(cols, log2, bytes(s), bytes(e))
    wide = np.repeat(codes, 2)
    return NdaVec.from_codes(wide[::2], log2)  # a strided view: the kernel gets a contiguous copy


def _reference(rows: int, cols: int, s, e, x: NdaVec) -> list[int]:
    """ENCODE of the exact integer row sums, straight from the bits."""
    nb = (cols + 7) >> 3
    bits = [np.unpackbits(np.frombuffer(bytes(p), np.uint8)[: rows * nb].reshape(rows, nb), axis=1,
                          bitorder="little")[:, :cols].astype(np.int64) for p in (s, e)]
    acc = (3 * bits[0] + bits[1] - 2) @ x.codes.astype(np.int64)
    return [encode(int(a)) for a in acc]


def test_the_native_kernel_is_built_here():
    """llvmlite is a dependency: without this the differential tests below would compare the
    numpy way with itself."""
    assert N.gemv_kernel() is not None
    assert KT.MatrixWeights(2, 9, b"\x00" * 4, b"\x00" * 4).native


@settings(max_examples=150, deadline=None)
@given(rows=st.integers(1, 300), cols=st.one_of(st.integers(1, 1100), st.sampled_from(EDGE_COLS)),
       kind=st.sampled_from(["bytes", "bytearray", "array"]), extra_bytes=st.sampled_from([0, 0, 5]),
       how=st.sampled_from(["codes", "planes", "strided"]), scale=st.integers(-130, 130),
       log2=st.integers(-128, 127), seed=st.integers(0, 2**32 - 1))
def test_native_equals_numpy(rows, cols, kind, extra_bytes, how, scale, log2, seed):
    rng = np.random.default_rng(seed)
    s, e = _planes(rng, rows, cols, kind, extra_bytes)
    x = _x(rng, cols, how, log2)
    nat = KT.MatrixWeights(rows, cols, s, e)
    ref = KT.MatrixWeights(rows, cols, s, e, native=False)
    assert nat.native and not ref.native
    expect = ref.apply(x, scale)
    for _ in range(2):  # the numpy way's second run uses its kept float32 matrix
        got = nat.apply(x, scale)
        assert got == expect == ref.apply(x, scale)
        assert got.codes.dtype == np.int8 and not got.codes.flags.writeable and got.n == rows
    assert got.codes.tolist() == _reference(rows, cols, s, e, x)
    assert nat._f32 is None and nat._codes is None  # the native way keeps no decode
    assert np.array_equal(np.asarray(nat), np.asarray(ref))  # int8 codes on demand, both ways


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 300), cols=st.one_of(st.integers(1, 1100), st.sampled_from(EDGE_COLS)),
       block=st.integers(1, 400), seed=st.integers(0, 2**32 - 1))
def test_native_row_blocks_equal_one_call(rows, cols, block, seed):
    """The blocked path (a call per block of rows, `check` between) on small matrices: any
    block size gives the whole call's codes, and `check` runs after every block."""
    rng = np.random.default_rng(seed)
    s, e = _planes(rng, rows, cols, "bytes")
    x = _x(rng, cols, "codes", 0)
    w = KT.MatrixWeights(rows, cols, s, e)
    out = np.empty(rows, dtype=np.int8)
    calls = []
    w._native_blocks(x.codes, out, lambda: calls.append(1), block)
    per = max(1, block // ((cols + 7) >> 3))
    assert len(calls) == -(-rows // per)
    assert out.tolist() == w.apply(x, 0).codes.tolist() == KT.MatrixWeights(rows, cols, s, e, native=False).apply(x, 0).codes.tolist()


def test_a_blocked_matrix_runs_native_between_checks():
    rng = np.random.default_rng(11)
    rows, cols = 2101, 1999  # 2101 · 250 plane bytes > WHOLE_F32_BYTES / 32: blocked; padded rows
    s, e = _planes(rng, rows, cols, "bytes")
    w = KT.MatrixWeights(rows, cols, s, e)
    assert w.native and not w.keeps_whole and not w.keeps
    x = _x(rng, cols, "codes", 5)
    calls = []
    out = w.apply(x, -3, lambda: calls.append(1))
    assert len(calls) == -(-rows // (KT.NATIVE_BLOCK_BYTES // 250)) >= 2
    assert out == KT.MatrixWeights(rows, cols, s, e, native=False).apply(x, -3)
    assert out.codes.tolist() == _reference(rows, cols, s, e, x)


def test_edge_shapes_and_values():
    """Zero rows or columns, one column, every accumulator sign at the ENCODE boundaries."""
    for rows, cols in ((0, 5), (3, 0), (1, 1)):
        nb = (cols + 7) >> 3
        w = KT.MatrixWeights(rows, cols, b"\xff" * (rows * nb), b"\x00" * (rows * nb))
        got = w.apply(NdaVec.from_codes(np.ones(cols, np.int8), 0), 0)
        assert got == KT.MatrixWeights(rows, cols, b"\xff" * (rows * nb), b"\x00" * (rows * nb), native=False).apply(
            NdaVec.from_codes(np.ones(cols, np.int8), 0), 0)
    # one row per accumulator −3 … 3 over 3 columns of x = (+1, +1, −1): weights chosen per row
    rows = [(1, 1, 1), (-1, 1, 1), (1, -1, 1), (-2, 1, 1), (1, 1, 2), (-1, -1, -1), (2, 2, -1), (-2, -2, 2)]
    sign = bytes(sum((c > 0) << i for i, c in enumerate(r)) for r in rows)
    extra = bytes(sum((c in (2, -1)) << i for i, c in enumerate(r)) for r in rows)
    x = NdaVec.from_codes(np.array([1, 1, -1], np.int8), 0)
    got = KT.MatrixWeights(len(rows), 3, sign, extra).apply(x, 0).codes.tolist()
    assert got == [encode(a + b - c) for a, b, c in rows]


def test_forced_numpy_way_never_builds_or_calls_the_kernel(monkeypatch):
    def boom():
        raise AssertionError("the native kernel was asked for")
    monkeypatch.setattr(KT, "gemv_kernel", boom)
    rng = np.random.default_rng(2)
    s, e = _planes(rng, 9, 70, "bytes")
    w = KT.matrix_weights(9, 70, s, e, native=False)
    x = _x(rng, 70, "codes", 0)
    assert not w.native and w.apply(x, 1).codes.tolist() == _reference(9, 70, s, e, x)
    assert w.apply(x, 1).codes.tolist() == _reference(9, 70, s, e, x) and w._f32 is not None


def test_no_kernel_falls_back_silently(monkeypatch, capsys):
    """When the kernel cannot be built (no llvmlite, a JIT failure, an unknown array layout)
    `gemv_kernel` is None, remembers it, and every matrix runs the numpy way; nothing is
    printed."""
    builds = []

    def failing_build():
        builds.append(1)
        raise ImportError("no llvmlite")
    monkeypatch.setattr(N, "_KERNEL", None)
    monkeypatch.setattr(N, "_build", failing_build)
    assert N.gemv_kernel() is None and N.gemv_kernel() is None and builds == [1]
    rng = np.random.default_rng(4)
    s, e = _planes(rng, 12, 130, "bytes")
    w = KT.MatrixWeights(12, 130, s, e)
    x = _x(rng, 130, "planes", 2)
    assert not w.native and w.apply(x, 0).codes.tolist() == _reference(12, 130, s, e, x)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_a_wrong_kernel_is_refused(monkeypatch):
    """The self-test at build time: a kernel that computes wrong codes is not handed out."""
    real, alive = N._build()  # `alive` holds the machine code
    keep = []

    def wrong_build():
        def fn(sp, ep, r0, r1, cols, x, out, scratch):
            real(sp, ep, r0, r1, cols, x, out, scratch)
            out[0] = -out[0]
        keep.append(fn)
        return fn, None
    monkeypatch.setattr(N, "_KERNEL", None)
    monkeypatch.setattr(N, "_build", wrong_build)
    assert N.gemv_kernel() is None and keep and alive


def test_wide_inputs_use_the_thread_scratch_buffer():
    """Inputs over `STACK_COLS` columns keep their planes in the thread's scratch buffer."""
    rng = np.random.default_rng(9)
    rows, cols = 3, N.STACK_COLS + 77
    s, e = _planes(rng, rows, cols, "array")
    x = _x(rng, cols, "codes", 0)
    assert N.scratch(cols) is not None and N.scratch(100) is None
    got = KT.MatrixWeights(rows, cols, s, e).apply(x, 0)
    assert got.codes.tolist() == _reference(rows, cols, s, e, x)
    assert got == KT.MatrixWeights(rows, cols, s, e, native=False).apply(x, 0)


def test_planes_given_as_mutable_buffers_are_copied():
    """What the kernel reads cannot change under it: a bytearray or array plane of a whole
    matrix is copied (and counted in `nbytes`); a bytes plane is used as is."""
    rng = np.random.default_rng(6)
    s, e = _planes(rng, 4, 20, "bytearray")
    x = _x(rng, 20, "codes", 0)
    w = KT.MatrixWeights(4, 20, s, e)
    before = w.apply(x, 0)
    s[:] = bytes(len(s))
    assert w.apply(x, 0) == before
    assert w.nbytes == 2 * len(s) + 2 * 12
    b = KT.MatrixWeights(4, 20, bytes(e), bytes(e))
    assert b.nbytes == 2 * len(e)
