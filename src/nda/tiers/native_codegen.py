"""Tier 2 code generation: LLVM IR for one pure scalar region, and the process's JIT engine.

In: a region node that `nda.tiers.native.analyze` accepted (every node of an eligible kind, stack
discipline checked) and its `RegionPlan` (variable indices, node count).
Out: `build_ir(node, plan, name, clock, version, record) -> str`, the textual LLVM IR of
`i32 name(ptr mem)` (emitted directly as text: building it with llvmlite.ir cost more than
compiling it), and `Jit`, which compiles such IR and returns a `NativeCode` holding the
function's address and the resource tracker that keeps the machine code alive.

Two variants: the *recording* code stores every pushed value in the push buffer; the
*counting* code (`record=False`, for regions whose pushes `nda.tiers.native` keeps lazy) only counts
them and keeps the last one, so a loop that pushes is a plain arithmetic loop for LLVM (the
counting loop becomes a closed form at O2). A region that reads back values it pushed (an
operand or a Let/Store child that is not a plain value expression) has no counting variant.

This module imports llvmlite at import time; `nda.tiers.native` imports it only when a region is
about to be compiled, so `import nda.tiers.native` stays cheap and works without llvmlite.

The memory block `mem` (layout shared with `nda.tiers.native`, little-endian):

    i64 [0] remaining fuel        (in)   nodes the region may count before fuel runs out
    i64 [1] boundary limit        (in)   largest push count allowed at a statement boundary
    i64 [2] max_while_iterations  (in)
    i64 [3] deadline              (in)   time.monotonic_ns() value of the run's deadline
    i32 [4] last pushed value     (out, counting variant only; the clock callback's address
                                         is a constant of the code)
    i64 [5] executed nodes        (out)
    i64 [6] loop entries          (out)
    i64 [7] pushed values         (out)
    i32 [k] variables             (in/out, at byte 64)
    i8  [k] bound flags           (in/out, at byte 64 + 4k)
    i32 [...] push buffer         (out, at byte `buffer_offset(k)`)

Return codes: 0 CONTINUE, 1 BREAK (the region's signal), 3 BAILOUT (fuel or While limit would be
exceeded: re-run in tier 1), 4 CHECK (the push count passed the boundary limit: memory limit or
buffer too small, `nda.tiers.native` decides), 5 DEADLINE.

Generated code follows language.md exactly for the eligible kinds: i32 wrapping `add`, Compare
→ +1/−1 (signed), truthiness `x > 0`, Loop counts are u32 (count 0 runs zero times), Break
leaves the innermost loop (or returns BREAK from the region), a Break inside an expression child
is swallowed by that child's parent (decisions.md #1), statement-boundary checks after sequence
elements (deferred past loop-free elements, see `_Gen.seq`). `executed` is incremented per
node (LLVM folds the increments of a basic block into one add); fuel, deadline and While limit
are checked on every loop back edge and fuel once more at the exit, so a committed result never
counts past the remaining fuel. O2 code (`version`) runs counted loops with statically bounded
iterations in unchecked chunks that provably need none of those checks (`_Gen.loop`).
"""

from __future__ import annotations

import ctypes
import itertools
import threading
import time
from collections import OrderedDict

import llvmlite.binding as llvm

from nda.core import ir
from nda.runtime.llvm_host import host_target

CONTINUE, BREAK, BAILOUT, CHECK, DEADLINE = 0, 1, 3, 4, 5
VARS_OFFSET = 64
POLL_NODES = 1 << 20  # nodes between two deadline polls inside native code


def buffer_offset(k: int) -> int:
    """Byte offset of the push buffer for a region with `k` variables (8-aligned)."""
    return (VARS_OFFSET + 5 * k + 7) & ~7


_CMP = {ir.CmpOp.Eq: "eq", ir.CmpOp.Ne: "ne", ir.CmpOp.Lt: "slt", ir.CmpOp.Gt: "sgt",
        ir.CmpOp.Le: "sle", ir.CmpOp.Ge: "sge"}


def _valueable(n, memo: dict) -> bool:
    """Pushes exactly one value computed without statement boundaries: kept in SSA registers."""
    k = id(n)
    r = memo.get(k)
    if r is None:
        t = type(n)
        if t is ir.Int or t is ir.Load:
            r = True
        elif t is ir.Add or t is ir.Compare:
            r = _valueable(n.lhs, memo) and _valueable(n.rhs, memo)
        elif t is ir.VecOp:
            r = _valueable(n.operand, memo)
        elif t is ir.Let:
            r = _valueable(n.init, memo)
        elif t is ir.Store:
            r = _valueable(n.value, memo)
        else:
            r = False
        memo[k] = r
    return r


class _Gen:
    """Emits the textual IR of one region function (LLVM ≥ 15, opaque pointers).

    Variables, counters and the push count live in allocas that the SROA pass promotes to SSA
    registers, so the emitter can stay simple: one load/op/store per step.
    """

    def __init__(self, plan, name: str, clock: int, version: bool = False, record: bool = True):
        self.plan = plan
        self.name = name
        self.version = version   # emit unchecked chunks of counted loops (`_Gen.loop`)
        self.record = record     # store pushed values (else count them and keep the last one)
        self.fast = False        # emitting an unchecked chunk: no boundary or back-edge checks
        self.memo: dict = {}
        self.n = 0
        self.entry: list = []
        self.blocks: list = []
        self.cur: list = []
        self.ended = False
        self.exits: dict = {}
        self.targets: list = []  # break target labels, innermost last
        e = self.entry
        k = len(plan.names)
        words = []
        for i in range(4):
            p = self.tmp()
            e.append(f"  {p} = getelementptr i8, ptr %mem, i64 {8 * i}")
            w = self.tmp()
            e.append(f"  {w} = load i64, ptr {p}")
            words.append(w)
        self.remaining, self.blimit, self.wlimit, self.deadline = words
        self.clock = self.tmp()
        e.append(f"  {self.clock} = inttoptr i64 {clock} to ptr")
        self.varp, self.boundp, self.buf = self.tmp(), self.tmp(), self.tmp()
        e.append(f"  {self.varp} = getelementptr i8, ptr %mem, i64 {VARS_OFFSET}")
        e.append(f"  {self.boundp} = getelementptr i8, ptr %mem, i64 {VARS_OFFSET + 4 * k}")
        e.append(f"  {self.buf} = getelementptr i8, ptr %mem, i64 {buffer_offset(k)}")
        self.ex = self.slot("i64", "0")
        self.li = self.slot("i64", "0")
        self.sp = self.slot("i64", "0")
        self.last = None if record else self.slot("i32", "0")
        m = self.tmp()
        e.append(f"  {m} = call i64 @llvm.smin.i64(i64 {self.remaining}, i64 {POLL_NODES})")
        self.lim = self.slot("i64", m)
        self.vars, self.bound = [], []
        for i in range(k):
            pv, pb = self.tmp(), self.tmp()
            e.append(f"  {pv} = getelementptr i32, ptr {self.varp}, i64 {i}")
            e.append(f"  {pb} = getelementptr i8, ptr {self.boundp}, i64 {i}")
            v, b = self.tmp(), self.tmp()
            e.append(f"  {v} = load i32, ptr {pv}")
            e.append(f"  {b} = load i8, ptr {pb}")
            self.vars.append((self.slot("i32", v), pv))
            self.bound.append((self.slot("i8", b), pb))

    # -- emission helpers ----------------------------------------------------------------------
    def tmp(self) -> str:
        self.n += 1
        return f"%t{self.n}"

    def label(self, hint: str) -> str:
        self.n += 1
        return f"{hint}{self.n}"

    def slot(self, ty: str, init: str) -> str:
        p = self.tmp()
        self.entry.append(f"  {p} = alloca {ty}")
        self.entry.append(f"  store {ty} {init}, ptr {p}")
        return p

    def alloca(self, ty: str) -> str:
        p = self.tmp()
        self.entry.append(f"  {p} = alloca {ty}")
        return p

    def begin(self, label: str) -> None:
        self.cur = [f"{label}:"]
        self.blocks.append(self.cur)
        self.ended = False

    def op(self, text: str) -> str:
        t = self.tmp()
        self.cur.append(f"  {t} = {text}")
        return t

    def do(self, text: str) -> None:
        self.cur.append("  " + text)

    def br(self, label: str) -> None:
        self.cur.append(f"  br label %{label}")
        self.ended = True

    def cbr(self, cond: str, yes: str, no: str) -> None:
        self.cur.append(f"  br i1 {cond}, label %{yes}, label %{no}")
        self.ended = True

    def load(self, ty: str, ptr: str) -> str:
        return self.op(f"load {ty}, ptr {ptr}")

    def store(self, ty: str, v, ptr: str) -> None:
        self.do(f"store {ty} {v}, ptr {ptr}")

    def incr(self, ptr: str, k: int = 1) -> str:
        v = self.op(f"add i64 {self.load('i64', ptr)}, {k}")
        self.store("i64", v, ptr)
        return v

    def count(self, k: int = 1) -> None:
        self.incr(self.ex, k)

    def push(self, v: str) -> None:
        p = self.load("i64", self.sp)
        if self.record:
            self.store("i32", v, self.op(f"getelementptr i32, ptr {self.buf}, i64 {p}"))
        else:
            self.store("i32", v, self.last)
        self.store("i64", self.op(f"add i64 {p}, 1"), self.sp)

    def pop(self) -> str:
        if not self.record:
            raise NotCountable("the region reads back its own pushes")
        p = self.op(f"sub i64 {self.load('i64', self.sp)}, 1")
        self.store("i64", p, self.sp)
        return self.load("i32", self.op(f"getelementptr i32, ptr {self.buf}, i64 {p}"))

    def top(self) -> str:
        if not self.record:
            raise NotCountable("the region reads back its own pushes")
        p = self.op(f"sub i64 {self.load('i64', self.sp)}, 1")
        return self.load("i32", self.op(f"getelementptr i32, ptr {self.buf}, i64 {p}"))

    def exit(self, code: int) -> str:
        """Label of the block that stores the outputs and returns `code` (one per code)."""
        lab = self.exits.get(code)
        if lab is not None:
            return lab
        lab = self.exits[code] = f"exit{code}"
        saved = (self.cur, self.ended)
        self.begin(lab)
        ex = self.load("i64", self.ex)
        for i, src in ((5, ex), (6, self.load("i64", self.li)), (7, self.load("i64", self.sp))):
            self.store("i64", src, self.op(f"getelementptr i8, ptr %mem, i64 {8 * i}"))
        if not self.record:
            self.store("i32", self.load("i32", self.last), self.op("getelementptr i8, ptr %mem, i64 32"))
        if code in (CONTINUE, BREAK):
            for (v, pv), (b, pb) in zip(self.vars, self.bound):
                self.store("i32", self.load("i32", v), pv)
                self.store("i8", self.load("i8", b), pb)
            ok = f"{lab}_ok"
            self.cbr(self.op(f"icmp sgt i64 {ex}, {self.remaining}"), self.exit(BAILOUT), ok)
            self.begin(ok)
        self.do(f"ret i32 {code}")
        self.cur, self.ended = saved
        return lab

    def boundary(self) -> None:
        """Statement boundary: the push count must not pass the limit (else CHECK)."""
        if self.fast:
            return
        nxt = self.label("seq")
        self.cbr(self.op(f"icmp sgt i64 {self.load('i64', self.sp)}, {self.blimit}"), self.exit(CHECK), nxt)
        self.begin(nxt)

    def back_edge(self, header: str) -> None:
        """Fuel and deadline poll on a loop back edge, then jump to `header`."""
        if self.fast:
            self.br(header)
            return
        ex = self.load("i64", self.ex)
        poll, tick, ok = self.label("poll"), self.label("tick"), self.label("intime")
        self.cbr(self.op(f"icmp sgt i64 {ex}, {self.load('i64', self.lim)}"), poll, header)
        self.begin(poll)
        self.cbr(self.op(f"icmp sgt i64 {ex}, {self.remaining}"), self.exit(BAILOUT), tick)
        self.begin(tick)
        now = self.op(f"call i64 {self.clock}()")
        self.cbr(self.op(f"icmp sgt i64 {now}, {self.deadline}"), self.exit(DEADLINE), ok)
        self.begin(ok)
        nxt = self.op(f"add i64 {ex}, {POLL_NODES}")
        self.store("i64", self.op(f"call i64 @llvm.smin.i64(i64 {self.remaining}, i64 {nxt})"), self.lim)
        self.br(header)

    def assign(self, name: int, v: str) -> None:
        i = self.plan.index[name]
        self.store("i32", v, self.vars[i][0])
        self.store("i8", "1", self.bound[i][0])

    # -- sequences and statements ------------------------------------------------------------
    def seq(self, nodes) -> bool:
        """Emit a sequence; True when control cannot fall through its end (it always breaks).

        The boundary check after an element is omitted when the next element has no loop: the
        stack never drops below an element's starting depth while it runs and no statement
        lowers it, so a push count over the limit here is still over it at the next check
        (after that element, or at a Break inside it), which is reached in bounded time.
        Bailing out there instead is exact (tier 1 re-runs the whole region), and at most
        `plan.nodes` values are pushed between two executed checks.
        """
        last = len(nodes) - 1
        for j, n in enumerate(nodes):
            if type(n) is ir.Break:
                self.count()
                self.boundary()
                self.br(self.targets[-1])
                return True
            if self.stmt(n):
                return True
            if j == last or self.plan.has_loop(nodes[j + 1]):
                self.boundary()
        return False

    def swallowed(self, n) -> None:
        """Emit `n` as a statement whose Break signal is ignored (an expression child)."""
        cont = self.label("cont")
        self.targets.append(cont)
        done = self.stmt(n)
        self.targets.pop()
        if not done:
            self.br(cont)
        self.begin(cont)

    def value(self, n) -> str:
        """The single value `n` pushes, popped (an SSA value when possible)."""
        if _valueable(n, self.memo):
            return self.val(n)
        self.swallowed(n)
        return self.pop()

    def truth(self, c: str) -> str:
        return self.op(f"icmp sgt i32 {c}, 0")

    def stmt(self, n) -> bool:
        """Emit statement `n`; True when it always signals Break (control does not fall through)."""
        t = type(n)
        if t is ir.Let or t is ir.Store:
            self.count()
            child = n.init if t is ir.Let else n.value
            if _valueable(child, self.memo):
                v = self.val(child)
                self.push(v)
            else:
                self.swallowed(child)
                v = self.top()
            self.assign(n.name, v)
            return False
        if _valueable(n, self.memo):
            self.push(self.val(n))
            return False
        if t is ir.Scope:
            self.count()
            return self.seq(n.children)
        if t is ir.Add or t is ir.Compare:
            self.count()
            self.swallowed(n.lhs)
            self.swallowed(n.rhs)
            r = self.pop()
            l = self.pop()
            self.push(self.binary(n, l, r))
            return False
        if t is ir.VecOp:
            self.count()
            self.swallowed(n.operand)
            self.push(self.unary(n, self.pop()))
            return False
        if t is ir.If:
            self.count()
            c = self.truth(self.value(n.cond))
            then, other, merge = self.label("then"), self.label("else"), self.label("endif")
            self.cbr(c, then, other)
            through = False
            for lab, body in ((then, n.then_body), (other, n.else_body or ())):
                self.begin(lab)
                if not self.seq(body):
                    self.br(merge)
                    through = True
            self.begin(merge)
            if not through:
                self.do("unreachable")
                self.ended = True
                return True
            return False
        if t is ir.Loop:
            self.count()
            self.incr(self.li)
            if n.count == 0 or not n.body:  # an empty body does nothing, however often it runs
                return False
            self.loop(n)
            return False
        if t is ir.While:
            self.count()
            self.incr(self.li)
            iters = self.alloca("i64")
            self.store("i64", "0", iters)
            header, body, latch, done = (self.label(x) for x in ("while", "wbody", "wlatch", "endwhile"))
            self.br(header)
            self.begin(header)
            self.cbr(self.truth(self.value(n.cond)), body, done)
            self.begin(body)
            self.targets.append(done)
            ended = self.seq(n.body)
            self.targets.pop()
            if not ended:
                self.br(latch)
            self.begin(latch)
            it = self.incr(iters)
            go = self.label("wnext")
            self.cbr(self.op(f"icmp sge i64 {it}, {self.wlimit}"), self.exit(BAILOUT), go)
            self.begin(go)
            self.back_edge(header)
            self.begin(done)
            return False
        raise AssertionError(f"not an eligible statement: {t.__name__}")  # analyze() prevents it

    def loop(self, n) -> None:
        """A counted Loop (count ≥ 1, non-empty body).

        With `version` (O2 code), a Loop whose iterations have statically bounded work W and
        pushes P (no While inside) runs in chunks: at the header, k = min(iterations left,
        (lim − executed) / W, (boundary limit − pushes) / P); if k > 0 the next k iterations run
        as an unchecked copy of the body (no boundary checks, no back-edge polls — none of them
        could fail or poll within the chunk: executed stays ≤ lim ≤ remaining fuel and below the
        next deadline poll, pushes stay ≤ the boundary limit), which LLVM can optimize as a
        plain counted loop; otherwise one checked iteration runs, as without `version`.
        """
        ctr = self.alloca("i64")
        self.store("i64", "0", ctr)
        header, body, latch, done = (self.label(x) for x in ("loop", "body", "latch", "endloop"))
        bounds = None
        if self.version and not self.fast:
            w, p = self.plan.iteration(n.body)
            if w is not None and p is not None and w > 0:
                bounds = (w, p)
        self.br(header)
        self.begin(header)
        c = self.load("i64", ctr)
        go = self.label("pick") if bounds else body
        self.cbr(self.op(f"icmp ult i64 {c}, {n.count}"), go, done)
        if bounds:
            w, p = bounds
            self.begin(go)
            room = self.op(f"sub i64 {self.load('i64', self.lim)}, {self.load('i64', self.ex)}")
            k = self.op(f"call i64 @llvm.smin.i64(i64 {self.op(f'sub i64 {n.count}, {c}')}, "
                        f"i64 {self.op(f'sdiv i64 {room}, {w}')})")
            if p > 0:
                space = self.op(f"sub i64 {self.blimit}, {self.load('i64', self.sp)}")
                k = self.op(f"call i64 @llvm.smin.i64(i64 {k}, i64 {self.op(f'sdiv i64 {space}, {p}')})")
            fpre, fhead, fbody, flatch = (self.label(x) for x in ("fpre", "fhead", "fbody", "flatch"))
            self.cbr(self.op(f"icmp sgt i64 {k}, 0"), fpre, body)
            self.begin(fpre)
            end = self.op(f"add i64 {c}, {k}")
            self.br(fhead)
            self.begin(fhead)
            self.cbr(self.op(f"icmp ult i64 {self.load('i64', ctr)}, {end}"), fbody, header)
            self.begin(fbody)
            self.fast = True
            self.targets.append(done)
            ended = self.seq(n.body)
            self.targets.pop()
            self.fast = False
            if not ended:
                self.br(flatch)
            self.begin(flatch)
            self.incr(ctr)
            self.br(fhead)
        self.begin(body)
        self.targets.append(done)
        ended = self.seq(n.body)
        self.targets.pop()
        if not ended:
            self.br(latch)
        self.begin(latch)
        self.incr(ctr)
        self.back_edge(header)
        self.begin(done)

    # -- values --------------------------------------------------------------------------------
    def val(self, n) -> str:
        t = type(n)
        self.count()
        if t is ir.Int:
            return str(n.value)
        if t is ir.Load:
            return self.load("i32", self.vars[self.plan.index[n.name]][0])
        if t is ir.Add or t is ir.Compare:
            l = self.val(n.lhs)
            r = self.val(n.rhs)
            return self.binary(n, l, r)
        if t is ir.VecOp:
            return self.unary(n, self.val(n.operand))
        if t is ir.Let or t is ir.Store:
            v = self.val(n.init if t is ir.Let else n.value)
            self.assign(n.name, v)
            return v
        raise AssertionError(f"not a value node: {t.__name__}")

    def binary(self, n, l: str, r: str) -> str:
        if type(n) is ir.Add:
            return self.op(f"add i32 {l}, {r}")  # no nsw: i32 wrapping
        return self.op(f"select i1 {self.op(f'icmp {_CMP[n.op]} i32 {l}, {r}')}, i32 1, i32 -1")

    def unary(self, n, x: str) -> str:
        if n.op == ir.VecOpKind.Negate:
            return self.op(f"sub i32 0, {x}")
        if n.op == ir.VecOpKind.Abs:
            neg = self.op(f"sub i32 0, {x}")
            return self.op(f"select i1 {self.op(f'icmp slt i32 {x}, 0')}, i32 {neg}, i32 {x}")
        return x  # ReduceSum of Scalar(x, 0) is x

    def finish(self, root) -> str:
        self.begin("start")
        self.targets.append(self.exit(BREAK))
        if not self.stmt(root):
            self.br(self.exit(CONTINUE))
        out = [f'define i32 @"{self.name}"(ptr %mem) {{', "entry:"]
        out += self.entry
        out.append("  br label %start")
        for blk in self.blocks:
            out += blk
        out.append("}")
        out.append("declare i64 @llvm.smin.i64(i64, i64)")
        return "\n".join(out) + "\n"


class NotCountable(Exception):
    """The region cannot run without its push buffer (it pops or peeks values it pushed)."""


def build_ir(node, plan, name: str, clock: int, version: bool = False, record: bool = True) -> str:
    """LLVM IR text of the region function `name` for `node`; `clock` is the address of an
    `int64_t (*)(void)` returning time.monotonic_ns() (it must outlive the code); `version`
    emits unchecked chunks of counted loops (`_Gen.loop`); `record=False` builds the counting
    variant (raises `NotCountable` when the region reads its own pushes back)."""
    return _Gen(plan, name, clock, version, record).finish(node)


# ---------------------------------------------------------------------------------------------
# The JIT


class NativeCode:
    """A compiled region: `call(address of mem) -> code`. Keeps its machine code alive.
    `counting`: the counting variant (no push buffer; the last pushed value in word 4)."""

    __slots__ = ("tracker", "address", "call", "compile_ns", "optimized", "counting")

    def __init__(self, tracker, address: int, compile_ns: int, optimized: bool, counting: bool = False):
        self.tracker = tracker
        self.address = address
        self.call = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)(address)
        self.compile_ns = compile_ns
        self.optimized = optimized
        self.counting = counting


class Jit:
    """One LLJIT engine (ORC) plus a bounded cache of compiled regions keyed by
    (region node, optimized, counting variant).

    IR is cleaned up by SROA/instcombine/simplifycfg (variables and counters become
    registers) — for O2 counting variants, the whole LLVM O2 IR pipeline runs instead (loop
    optimizations: it turns the counting loop into a closed form; ~2.2× the compile time) —
    then one of two target machines makes machine code: LLVM O0 (fast instruction selection,
    ~4× quicker to compile) for regions expected to be cheap, O2 for hot ones (~5× faster
    code); `nda.tiers.native` chooses. The object is linked into the
    engine as its own library; its resource tracker lives in the `NativeCode`, so machine code
    is freed once neither the cache nor a compiled closure uses it. Compilation is serialized
    by a lock (the engine is shared by threads); running compiled code needs no lock.
    """

    def __init__(self, capacity: int = 1024):
        target, cpu, features = host_target()
        self.tms = {opt: target.create_target_machine(cpu, features, opt=2 if opt else 0, jit=True)
                    for opt in (False, True)}
        self.lljit = llvm.create_lljit_compiler(self.tms[False])
        self.pb = llvm.create_pass_builder(self.tms[True], llvm.create_pipeline_tuning_options(speed_level=2))
        self.clock = ctypes.CFUNCTYPE(ctypes.c_int64)(time.monotonic_ns)
        self.clock_address = ctypes.cast(self.clock, ctypes.c_void_p).value
        self.capacity = capacity
        self.cache: OrderedDict = OrderedDict()
        self.lock = threading.Lock()
        self.serial = itertools.count()

    def compile(self, node, plan, optimize: bool = False, use_cache: bool = True,
                counting: bool = False) -> NativeCode | None:
        """The region's code (cached); the counting variant with `counting` (None when the
        region reads its own pushes back)."""
        key = (node, optimize, counting)
        with self.lock:
            if use_cache and key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
            t0 = time.perf_counter_ns()
            name = f"nda_region_{next(self.serial)}"
            try:
                text = build_ir(node, plan, name, self.clock_address, optimize, not counting)
            except NotCountable:
                code = None
            else:
                mod = llvm.parse_assembly(text)
                mod.verify()
                if optimize and counting:
                    self.pb.getModulePassManager().run(mod, self.pb)  # the O2 IR pipeline
                else:
                    fpm = llvm.create_new_function_pass_manager()
                    fpm.add_sroa_pass()
                    fpm.add_instruction_combine_pass()
                    fpm.add_simplify_cfg_pass()
                    for f in mod.functions:
                        fpm.run(f, self.pb)
                obj = self.tms[optimize].emit_object(mod)
                lib = llvm.JITLibraryBuilder().add_object_img(obj).export_symbol(name)
                tracker = lib.link(self.lljit, name)
                code = NativeCode(tracker, tracker[name], time.perf_counter_ns() - t0, optimize, counting)
            if use_cache:
                self.cache[key] = code
                while len(self.cache) > self.capacity:
                    self.cache.popitem(last=False)
            return code
