"""The Matrix GEMV (values-and-kernels.md §7) as one native function, from the bit planes.

In: a Matrix node's sign and extra planes (row r at byte r·ceil(cols/8), LSB first; the
padding bits of each row are ignored and may be set), a row range, `cols`, the input's int8
codes (a C-contiguous numpy array) and a fresh int8 numpy array for the output.
Out: `gemv_kernel()`, the process's compiled function (None when llvmlite is missing or the
JIT fails: the caller then uses its numpy path), which writes out[r] = ENCODE(Σ_c w[r][c]·x[c])
for the rows of the range; `kernel_call` wraps it for one call.

How: a weight code is 3·s + e − 2 for its plane bits (s, e), and so is an input code for the
bits (t, f) of the input's planes, which the kernel builds first (64 codes per word: one vector
compare each). Over 64 columns a word at a time,

    Σ (3s + e − 2)(3t + f − 2) = 9·|s∧t| + 3·|s∧f| + 3·|e∧t| + |e∧f| − 6·|s| − 2·|e|
                                 − 6·|t| − 2·|f| + 4·cols

(|·| a popcount; the input's planes have zero padding bits, the last word of a row is masked to
its `cols mod 64` valid bits, so every term only counts real columns). All of it is exact
integer arithmetic in i64, so the result is the same as any other summation order, the numpy
float32 path included: the kernel is bit-exact by construction. ENCODE is applied in place.
Loads of the weight rows are unaligned 64-bit loads (a row's stride is ceil(cols/8) bytes);
the last, partial word of a row is assembled byte by byte, so nothing past a row's own bytes
(and never past the planes' end) is read.

The function is compiled once per process (llvmlite, host CPU, LLVM O3 code generation,
`llvm.ctpop.i64`; the IR is written in SSA form already, so no IR pass pipeline runs: ~15 ms
instead of ~80 ms, for the same speed), lazily on first use, and kept in a module-level cache (a memo, not configuration). It is
called through ctypes with the GIL released; the two numpy arrays are passed as object
pointers and their data pointer is read at the `PyArrayObject` field offset, which
`gemv_kernel` verifies on real arrays before it hands the function out (1 ctypes call,
~0.5 µs, instead of ~1 µs per `.ctypes.data`).
"""

from __future__ import annotations

import ctypes
import sys
import threading

import numpy as np

from nda.runtime.llvm_host import host_target

# Input columns up to this use a 4 KiB stack buffer for the input's planes; wider inputs get
# the thread's scratch buffer (`_scratch`).
STACK_COLS = 256 * 64

def _accumulate(sfx: str, s: str, e: str, word: str) -> str:
    """IR adding one 64-column word's popcounts to the row sums: the weight words `s`, `e`
    against the input's plane words at index `word`; → %a{sfx} (+|s∧t|), %b{sfx} (+|s∧f| +
    |e∧t|), %d{sfx} (+|e∧f|), %ss{sfx} (+|s|), %es{sfx} (+|e|) from %a, %b, %d, %ss, %es."""
    x = sfx
    return f"""\
  %tp{x} = getelementptr i64, ptr %xs, i64 {word}
  %t{x} = load i64, ptr %tp{x}, align 8
  %fp{x} = getelementptr i64, ptr %xe, i64 {word}
  %f{x} = load i64, ptr %fp{x}, align 8
  %st{x} = and i64 {s}, %t{x}
  %sf{x} = and i64 {s}, %f{x}
  %et{x} = and i64 {e}, %t{x}
  %ef{x} = and i64 {e}, %f{x}
  %pst{x} = call i64 @llvm.ctpop.i64(i64 %st{x})
  %psf{x} = call i64 @llvm.ctpop.i64(i64 %sf{x})
  %pet{x} = call i64 @llvm.ctpop.i64(i64 %et{x})
  %pef{x} = call i64 @llvm.ctpop.i64(i64 %ef{x})
  %pss{x} = call i64 @llvm.ctpop.i64(i64 {s})
  %pes{x} = call i64 @llvm.ctpop.i64(i64 {e})
  %a{x} = add i64 %a, %pst{x}
  %b{x}0 = add i64 %b, %psf{x}
  %b{x} = add i64 %b{x}0, %pet{x}
  %d{x} = add i64 %d, %pef{x}
  %ss{x} = add i64 %ss, %pss{x}
  %es{x} = add i64 %es, %pes{x}"""


_IR = r"""
declare i64 @llvm.ctpop.i64(i64)

define void @nda_gemv(ptr %sp, ptr %ep, i64 %r0, i64 %r1, i64 %cols, ptr %xobj, ptr %oobj, ptr %scratch) nounwind {
entry:
  %stack = alloca [512 x i64], align 16
  %xdp = getelementptr i8, ptr %xobj, i64 DATA_OFF
  %x = load ptr, ptr %xdp, align 8
  %odp = getelementptr i8, ptr %oobj, i64 DATA_OFF
  %out = load ptr, ptr %odp, align 8
  %nfull = lshr i64 %cols, 6
  %rb = and i64 %cols, 63
  %c7 = add i64 %cols, 7
  %nb = lshr i64 %c7, 3
  %hastail = icmp ne i64 %rb, 0
  %tailw = zext i1 %hastail to i64
  %nw = add i64 %nfull, %tailw
  %small = icmp ule i64 %nw, 256
  %xs = select i1 %small, ptr %stack, ptr %scratch
  %xe = getelementptr i64, ptr %xs, i64 %nw
  br label %xloop

; ---- the input's planes, 64 codes per word: t = code > 0, f = (code & 1) xor t
xloop:
  %k = phi i64 [ 0, %entry ], [ %k1, %xbody ]
  %tsum = phi i64 [ 0, %entry ], [ %tsum1, %xbody ]
  %fsum = phi i64 [ 0, %entry ], [ %fsum1, %xbody ]
  %kdone = icmp uge i64 %k, %nfull
  br i1 %kdone, label %xtail, label %xbody
xbody:
  %xoff = shl i64 %k, 6
  %xptr = getelementptr i8, ptr %x, i64 %xoff
  %v = load <64 x i8>, ptr %xptr, align 1
  %pos = icmp sgt <64 x i8> %v, zeroinitializer
  %tw = bitcast <64 x i1> %pos to i64
  %odd = trunc <64 x i8> %v to <64 x i1>
  %ow = bitcast <64 x i1> %odd to i64
  %fw = xor i64 %ow, %tw
  %tp = getelementptr i64, ptr %xs, i64 %k
  store i64 %tw, ptr %tp, align 8
  %fp = getelementptr i64, ptr %xe, i64 %k
  store i64 %fw, ptr %fp, align 8
  %tc = call i64 @llvm.ctpop.i64(i64 %tw)
  %fc = call i64 @llvm.ctpop.i64(i64 %fw)
  %tsum1 = add i64 %tsum, %tc
  %fsum1 = add i64 %fsum, %fc
  %k1 = add i64 %k, 1
  br label %xloop

xtail:
  br i1 %hastail, label %xtloop, label %consts
xtloop:
  %j = phi i64 [ 0, %xtail ], [ %j1, %xtloop ]
  %ta = phi i64 [ 0, %xtail ], [ %ta1, %xtloop ]
  %fa = phi i64 [ 0, %xtail ], [ %fa1, %xtloop ]
  %base = shl i64 %nfull, 6
  %ci = add i64 %base, %j
  %cp = getelementptr i8, ptr %x, i64 %ci
  %c = load i8, ptr %cp, align 1
  %cpos = icmp sgt i8 %c, 0
  %cposw = zext i1 %cpos to i64
  %codd8 = and i8 %c, 1
  %codd = zext i8 %codd8 to i64
  %cf = xor i64 %codd, %cposw
  %tbit = shl i64 %cposw, %j
  %fbit = shl i64 %cf, %j
  %ta1 = or i64 %ta, %tbit
  %fa1 = or i64 %fa, %fbit
  %j1 = add i64 %j, 1
  %jdone = icmp uge i64 %j1, %rb
  br i1 %jdone, label %xtstore, label %xtloop
xtstore:
  %ttp = getelementptr i64, ptr %xs, i64 %nfull
  store i64 %ta1, ptr %ttp, align 8
  %tfp = getelementptr i64, ptr %xe, i64 %nfull
  store i64 %fa1, ptr %tfp, align 8
  %ttc = call i64 @llvm.ctpop.i64(i64 %ta1)
  %tfc = call i64 @llvm.ctpop.i64(i64 %fa1)
  %tsumT = add i64 %tsum, %ttc
  %fsumT = add i64 %fsum, %tfc
  br label %consts

; ---- per-row constant: 4·cols − 6·|t| − 2·|f|
consts:
  %tot_t = phi i64 [ %tsum, %xtail ], [ %tsumT, %xtstore ]
  %tot_f = phi i64 [ %fsum, %xtail ], [ %fsumT, %xtstore ]
  %c4 = shl i64 %cols, 2
  %t6 = mul i64 %tot_t, 6
  %f2 = shl i64 %tot_f, 1
  %k0 = sub i64 %c4, %t6
  %kconst = sub i64 %k0, %f2
  %tailbytes0 = shl i64 %nfull, 3
  %tailbytes = sub i64 %nb, %tailbytes0
  %rbm1 = shl i64 1, %rb
  %vmask = sub i64 %rbm1, 1
  br label %rloop

; ---- rows
rloop:
  %r = phi i64 [ %r0, %consts ], [ %rn, %rstore ]
  %rdone = icmp uge i64 %r, %r1
  br i1 %rdone, label %exit, label %rstart
rstart:
  %roff = mul i64 %r, %nb
  %ps = getelementptr i8, ptr %sp, i64 %roff
  %pe = getelementptr i8, ptr %ep, i64 %roff
  br label %wloop
wloop:
  %w = phi i64 [ 0, %rstart ], [ %w1, %wbody ]
  %a = phi i64 [ 0, %rstart ], [ %aW, %wbody ]
  %b = phi i64 [ 0, %rstart ], [ %bW, %wbody ]
  %d = phi i64 [ 0, %rstart ], [ %dW, %wbody ]
  %ss = phi i64 [ 0, %rstart ], [ %ssW, %wbody ]
  %es = phi i64 [ 0, %rstart ], [ %esW, %wbody ]
  %wdone = icmp uge i64 %w, %nfull
  br i1 %wdone, label %wtail, label %wbody
wbody:
  %woff = shl i64 %w, 3
  %psw = getelementptr i8, ptr %ps, i64 %woff
  %pew = getelementptr i8, ptr %pe, i64 %woff
  %s = load i64, ptr %psw, align 1
  %e = load i64, ptr %pew, align 1
@ACC_W@
  %w1 = add i64 %w, 1
  br label %wloop

wtail:
  br i1 %hastail, label %btloop, label %racc
btloop:
  %q = phi i64 [ 0, %wtail ], [ %q1, %btloop ]
  %sacc = phi i64 [ 0, %wtail ], [ %sacc1, %btloop ]
  %eacc = phi i64 [ 0, %wtail ], [ %eacc1, %btloop ]
  %qo = add i64 %tailbytes0, %q
  %qps = getelementptr i8, ptr %ps, i64 %qo
  %qpe = getelementptr i8, ptr %pe, i64 %qo
  %sbyte = load i8, ptr %qps, align 1
  %ebyte = load i8, ptr %qpe, align 1
  %sb64 = zext i8 %sbyte to i64
  %eb64 = zext i8 %ebyte to i64
  %qsh = shl i64 %q, 3
  %sbs = shl i64 %sb64, %qsh
  %ebs = shl i64 %eb64, %qsh
  %sacc1 = or i64 %sacc, %sbs
  %eacc1 = or i64 %eacc, %ebs
  %q1 = add i64 %q, 1
  %qdone = icmp uge i64 %q1, %tailbytes
  br i1 %qdone, label %btdone, label %btloop
btdone:
  %sT = and i64 %sacc1, %vmask
  %eT = and i64 %eacc1, %vmask
@ACC_T@
  br label %racc

; ---- acc = 9a + 3b + d − 6·|s| − 2·|e| + const, then ENCODE
racc:
  %fa_ = phi i64 [ %a, %wtail ], [ %aT, %btdone ]
  %fb_ = phi i64 [ %b, %wtail ], [ %bT, %btdone ]
  %fd_ = phi i64 [ %d, %wtail ], [ %dT, %btdone ]
  %fs_ = phi i64 [ %ss, %wtail ], [ %ssT, %btdone ]
  %fe_ = phi i64 [ %es, %wtail ], [ %esT, %btdone ]
  %m9 = mul i64 %fa_, 9
  %m3 = mul i64 %fb_, 3
  %m6 = mul i64 %fs_, 6
  %m2 = shl i64 %fe_, 1
  %acc0 = add i64 %m9, %m3
  %acc1 = add i64 %acc0, %fd_
  %acc2 = sub i64 %acc1, %m6
  %acc3 = sub i64 %acc2, %m2
  %acc = add i64 %acc3, %kconst
  %ge2 = icmp sge i64 %acc, 2
  %ge0 = icmp sge i64 %acc, 0
  %em1 = icmp eq i64 %acc, -1
  %neg = select i1 %em1, i8 -1, i8 -2
  %nonneg = select i1 %ge2, i8 2, i8 1
  %code = select i1 %ge0, i8 %nonneg, i8 %neg
  br label %rstore
rstore:
  %op = getelementptr i8, ptr %out, i64 %r
  store i8 %code, ptr %op, align 1
  %rn = add i64 %r, 1
  br label %rloop

exit:
  ret void
}
""".replace("@ACC_W@", _accumulate("W", "%s", "%e", "%w")).replace("@ACC_T@", _accumulate("T", "%sT", "%eT", "%nfull"))

_KERNEL = None  # the ctypes function; False when it cannot be built (memo)
_KEEP = None    # what keeps the machine code alive (the JIT and its resource tracker)
_LOCK = threading.Lock()
_TLS = threading.local()

_PROTO = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                          ctypes.c_int64, ctypes.py_object, ctypes.py_object, ctypes.c_void_p)


def _data_offset() -> int | None:
    """Offset of the data pointer in a numpy array object (`PyArrayObject.data`, right after
    the object header), checked on real arrays; None when it cannot be confirmed."""
    if sys.implementation.name != "cpython":
        return None
    for off in (16, 32):
        probes = [np.empty(n, dtype=np.int8) for n in (1, 7, 4096)]
        if all(ctypes.c_void_p.from_address(id(a) + off).value == a.ctypes.data for a in probes):
            return off
    return None


def _build():
    import llvmlite.binding as llvm

    off = _data_offset()
    if off is None:
        raise RuntimeError("numpy array layout not recognised")
    target, cpu, features = host_target()
    tm = target.create_target_machine(cpu, features, opt=3, jit=True)
    mod = llvm.parse_assembly(_IR.replace("DATA_OFF", str(off)))
    mod.verify()
    jit = llvm.create_lljit_compiler(tm)
    tracker = llvm.JITLibraryBuilder().add_object_img(tm.emit_object(mod)) \
        .export_symbol("nda_gemv").link(jit, "nda_gemv")
    fn = _PROTO(tracker["nda_gemv"])
    return fn, (jit, tracker)


def _self_test(fn) -> bool:
    """The compiled function against a direct integer GEMV (plain Python) on a small case
    with a full word, a tail of 11 bits and set padding bits."""
    rows, cols = 5, 75
    nb = (cols + 7) >> 3
    s = bytes((37 * i + 11) & 255 for i in range(rows * nb))
    e = bytes((101 * i + 7) & 255 for i in range(rows * nb))
    xc = [(-2, -1, 1, 2)[(7 * c + c // 5) & 3] for c in range(cols)]
    out = np.zeros(rows, dtype=np.int8)
    fn(s, e, 0, rows, cols, np.array(xc, dtype=np.int8), out, None)

    def bit(p, r, c):
        return (p[r * nb + (c >> 3)] >> (c & 7)) & 1
    expect = []
    for r in range(rows):
        acc = sum((3 * bit(s, r, c) + bit(e, r, c) - 2) * xc[c] for c in range(cols))
        expect.append(2 if acc >= 2 else 1 if acc >= 0 else -1 if acc == -1 else -2)
    return out.tolist() == expect


def gemv_kernel():
    """The compiled GEMV (a ctypes function, see the module doc), or None when llvmlite is
    unavailable or the JIT failed (silently: the caller's numpy path is used instead)."""
    global _KERNEL, _KEEP
    k = _KERNEL
    if k is None:
        with _LOCK:
            k = _KERNEL
            if k is None:
                try:
                    fn, keep = _build()
                    ok = _self_test(fn)
                except Exception:  # noqa: BLE001 — any failure means: no native kernel
                    ok = False
                if ok:
                    _KEEP, k = keep, fn
                else:
                    k = False
                _KERNEL = k
    return k or None


def scratch(cols: int):
    """The input-planes buffer argument for `cols` columns: None (the kernel's stack buffer)
    up to `STACK_COLS`, else the address of this thread's scratch buffer (grown as needed,
    2 words per 64 columns)."""
    if cols <= STACK_COLS:
        return None
    need = 2 * ((cols + 63) >> 6)
    buf = getattr(_TLS, "buf", None)
    if buf is None or buf.shape[0] < need:
        buf = _TLS.buf = np.empty(need, dtype=np.uint64)
        _TLS.addr = buf.ctypes.data
    return _TLS.addr
