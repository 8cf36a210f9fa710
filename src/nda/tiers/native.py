"""Tier 2: tier 1 plus native code (llvmlite) for pure scalar regions (runtime.md §2.3).

In: a top-level sequence, a prepared `RunState`, the sandbox options (`opts["auto"]` is True
when the user asked for tier `auto`).
Out: the state after the run, exactly as tier 0 would leave it; `run_tier2` returns the tier
that ran (2, or 1 when llvmlite is not installed).

How it works. `run_tier2` runs the tier 1 closure compiler with a `RegionCompiler` hooked into
`Compiler.stmt`. For each statement-position node the hook asks `analyze`: is this a *pure scalar
region* (every node an Int, Break, Load, Let, Store, Add, Compare, VecOp{Negate, Abs,
ReduceSum}, Loop, While, If or Scope; operands and conditions push exactly one value, Let/Store
children at least one, so the region never pops what it did not push) that contains a Loop or
While? The subtree tier 1 reaches first is the maximal one. Such a region becomes a closure that

1. guards the entry state: every variable the region names must hold a Python `int`
   (= `Scalar(_, 0)`) or be unbound, and a variable that may be read before the region writes
   it (definite-assignment analysis) must be bound; anything else, or collected kind counts,
   runs the region's tier 1 closure instead;
2. copies the variables into a scratch block and calls the native function, which counts
   `executed_nodes` and `loop_iterations` exactly, keeps every value the region pushes in an
   i32 buffer (or only counts them, see below), and checks the memory limit at each statement
   boundary, the fuel and the deadline on every loop back edge (the deadline every 2^20 nodes
   through a clock callback);
3. commits (counters, variables written, pushes appended to the stack, the region's
   Continue/Break signal), or — on BAILOUT (fuel, While limit or memory limit would be
   exceeded) — discards everything and re-runs the region in tier 1 from the same entry state,
   which then fails (or not) exactly as tier 0 does. A deadline raises the deadline error.

Lazy pushes (docs/decisions.md T2.12–T2.14). Converting pushes to Python ints costs far more
than computing them (the counting loop: 200,000 pushes, ~3.5 ms as ints). A region at an *open
position* of the top-level program (`open_positions`: no enclosing node reads the stack after
it) leaves all but its last push as one stack entry: a `_Replay` when it ran its *counting*
variant (pushes only counted; recomputed when needed by re-running the recording variant from
the same entry state), a `_Segment` (its unconverted scratch block) when it recorded more than
`LAZY_MIN_PUSHES`. `RunState.lazy` lists them; an entry standing for n values adds 8·(n − 1)
to `mem_extra`, so memory accounting is exact. While any exist, `next_check` is −1: every node
calls `slow_check(kind)` first, and anything but a pure push (Int, Float, Load) — or `charge`,
or a region at a closed position — materializes them all in place (`_Lazy.materialize`). Until
then the stack only grows and its top (the output) is a real value.

Native code is built by `native_codegen` (which imports llvmlite, so `import nda.tiers.native` does
not). One LLVM JIT engine for regions exists per process, created on first use (the Matrix GEMV
has its own, `nda.runtime.native_gemv`); together with its cache of compiled regions (keyed by region node, bounded LRU) it is a cache: it never changes a result.

Tiering policy (`opts["auto"]`, documented in docs/decisions.md):
- tier `native` compiles every region when its unit is compiled;
- tier `auto` runs a region in tier 1 until it is worth compiling, then natively for good:
  immediately when its statically known work per execution (constant Loop counts times body
  size, no While) is at least `IMMEDIATE_WORK` nodes; otherwise once its tier 1 executions
  have counted `HOT_NODES` nodes in total at an average of at least `MIN_AVG_NODES` nodes per
  execution (below that the fixed cost of entering native code exceeds its gain). The counters
  live in the compiled unit, so a program that was hot in one run starts native in the next;
- before any of this, the sandbox interprets (tier 0) a cold program under `auto` until its
  tier 0 runs have cost about what compiling it would (`runner.COLD_WORK_PER_NODE`);
- in both, machine code is LLVM O0 (cheap to compile) unless the static work per execution is
  at least `OPTIMIZE_WORK` nodes (then O2 at once); O0 code that has counted `OPTIMIZE_NODES`
  nodes is recompiled at O2.
"""

from __future__ import annotations

import importlib.util
import operator
import struct
import threading
import time
import weakref

from nda.tiers import closure
from nda.core import ir
from nda.tiers.native_analysis import (  # noqa: F401  (re-exported for tests)
    _ELIGIBLE, Info, RegionPlan, analyze, info, open_positions,
)
from nda.tiers.native_scratch import (  # noqa: F401  (re-exported for tests and diagnostics)
    POOL_BUDGET, POOL_MAX_BYTES, VARS_OFFSET, _Pool, _PoolBudget, _Scratch, _Segment, buffer_offset,
)
from nda.runtime.state import deadline_error

CONTINUE, BREAK, BAILOUT, CHECK, DEADLINE = 0, 1, 3, 4, 5  # = native_codegen's return codes
IMMEDIATE_WORK = 20_000
HOT_NODES = 20_000
MIN_AVG_NODES = 40
OPTIMIZE_WORK = 200_000    # static work per execution from which a region gets O2 code at once
OPTIMIZE_NODES = 2_000_000  # nodes run in O0 code after which a region is recompiled at O2
INITIAL_PUSHES = 4096      # push buffer entries when the count is not known statically
MAX_INITIAL_PUSHES = 1 << 20
LAZY_MIN_PUSHES = 256      # recording code pushing more values leaves them lazy (`_Segment`); ≥ 1
REPLAY_SWITCH = 4          # replays after which a mostly replayed region records instead
COUNTING = True            # open regions run their counting variant (tests turn it off)
_I64_MAX = (1 << 63) - 1
_AUTO_KEY = "2-auto"       # tier key of auto-policy units in the program/callee caches



# ---------------------------------------------------------------------------------------------
# The process's JIT (a cache: created on first use, never changes a result)

_JIT = None          # native_codegen.Jit, or False when llvmlite cannot be imported
_FOUND = None        # whether importlib finds llvmlite (memo of `llvmlite_installed`)
_JIT_LOCK = threading.Lock()


def get_jit():
    """The process's JIT engine, created on first use; None when llvmlite is unavailable."""
    global _JIT
    if _JIT is None:
        with _JIT_LOCK:
            if _JIT is None:
                try:
                    from nda.tiers import native_codegen
                except ImportError:
                    _JIT = False
                else:
                    _JIT = native_codegen.Jit()
    return _JIT or None


def llvmlite_installed() -> bool:
    """True when llvmlite can be found (without importing it; memoized)."""
    global _FOUND
    if _JIT is not None:
        return _JIT is not False
    if _FOUND is None:
        try:
            _FOUND = importlib.util.find_spec("llvmlite") is not None
        except (ImportError, ValueError):
            _FOUND = False
    return _FOUND


# ---------------------------------------------------------------------------------------------
# Regions at run time


class _Replay:
    """`n` Scalar(x, 0) values pushed by one execution of a region's counting code (which
    only counted them): recomputed on demand by re-running the region's recording code from
    the same entry state (`Region.replay`). One stack entry standing for n."""

    __slots__ = ("rg", "payload", "n")

    def __init__(self, rg, payload: tuple, n: int):
        self.rg, self.payload, self.n = rg, payload, n

    def values(self, st):
        return self.rg.replay(st, self.payload, self.n)


class _Lazy:
    """`RunState.lazy`: the run's segments, as (stack index, segment) in push order."""

    __slots__ = ("segs",)

    def __init__(self):
        self.segs: list = []

    def add(self, st, stk: list, seg: _Segment) -> None:
        self.segs.append((len(stk), seg))
        stk.append(seg)
        st.mem_extra += 8 * (seg.n - 1)
        st.recompute_max_entries()

    def materialize(self, st) -> None:
        """Replace every segment by its values as Python ints (the stack's real contents)."""
        st.lazy = None
        stk = st.stack
        extra = 0
        for i, seg in reversed(self.segs):  # topmost first: lower indices stay valid
            if i >= len(stk) or stk[i] is not seg:
                raise RuntimeError("tier 2 lazy stack segment was displaced")
            stk[i:i + 1] = seg.values(st)
            extra += seg.n - 1
        self.segs = []
        st.mem_extra -= 8 * extra
        st.recompute_max_entries()


class Region:
    """A region's native code (compiled now or when hot), its tier 1 fallback and its closure."""

    def __init__(self, node, plan: RegionPlan, slots: tuple, fallback, auto: bool, lazy: bool = False,
                 budget: _PoolBudget | None = None):
        self.node, self.plan, self.slots, self.fallback, self.auto = node, plan, slots, fallback, auto
        self.lazy = lazy           # at an open position: may leave its pushes lazy
        self.counting = lazy and COUNTING  # run the counting variant (when the region has one)
        self.code = None
        self.record_code = None    # recording code for replays (compiled on the first one)
        self.replays = 0
        self.disabled = False      # llvmlite turned out to be unusable: always tier 1
        self.t1_nodes = 0
        self.t1_runs = 0
        self.native_runs = 0
        self.native_nodes = 0      # nodes counted by committed native executions
        self.bailouts = 0
        self.pool = _Pool(budget if budget is not None else _PoolBudget())
        self.closure = _make_closure(self)

    def compile(self, optimize: bool | None = None) -> bool:
        """Compile (or recompile) the native code; O2 when `optimize`, by default when the
        region's static work per execution is at least `OPTIMIZE_WORK`."""
        jit = get_jit()
        if jit is None:
            self.disabled = True
            return False
        if optimize is None:
            optimize = self.plan.work is not None and self.plan.work >= OPTIMIZE_WORK
        code = jit.compile(self.node, self.plan, optimize, counting=True) if self.counting else None
        self.code = code or jit.compile(self.node, self.plan, optimize)
        return True

    def replay(self, st, payload: tuple, n: int):
        """The first `n` values a committed execution of the counting code pushed (from entry
        state `payload`): the recording code re-run from that state, under no fuel or While
        limit (the execution completed within both, so it takes the same path) but under the
        run's deadline. A region whose counted pushes are replayed for at least half of its
        executions (and 4 times) switches to recording for good."""
        code = self.record_code
        if code is None or code.optimized != self.code.optimized:
            code = self.record_code = get_jit().compile(self.node, self.plan, self.code.optimized)
        self.replays += 1
        if self.replays >= REPLAY_SWITCH and 2 * self.replays >= self.native_runs:
            self.counting = False
            self.code = code
        nn = self.plan.nodes
        sc = _Scratch(len(self.plan.names), n + 1 + nn, nn)
        self.closure.s_in.pack_into(sc.buf, 0, _I64_MAX, n + 1, _I64_MAX, st.deadline_ns, *payload)
        rc = code.call(sc.addr)
        if rc == DEADLINE:
            raise deadline_error(st.limits.deadline_ms)
        if rc > BREAK or struct.unpack_from("<q", sc.buf, 56)[0] != n + 1:
            raise RuntimeError("tier 2 replay diverged from the counted execution")
        return sc.pushes[:n]

    def initial_entries(self, cap: int) -> int:
        """Push buffer size for a first execution: the static bound if known, within limits."""
        p = self.plan.push
        want = INITIAL_PUSHES if p is None else min(p, MAX_INITIAL_PUSHES)
        return max(0, min(want, cap)) + self.plan.nodes

    def cold(self, st, fr, stk):
        """Execution while not compiled (auto policy): tier 1, measuring the work done."""
        if not self.disabled:
            w = self.plan.work
            if (w is not None and w >= IMMEDIATE_WORK) or (
                    self.t1_nodes >= HOT_NODES and self.t1_nodes >= MIN_AVG_NODES * self.t1_runs):
                if self.compile():
                    return self.closure(st, fr, stk)
        e0 = st.executed
        sig = self.fallback(st, fr, stk)
        self.t1_nodes += st.executed - e0
        self.t1_runs += 1
        return sig


def _make_closure(rg: Region):
    plan = rg.plan
    k = len(plan.names)
    slots = rg.slots
    if k == 0:
        def getter(fr):
            return ()
    elif k == 1:
        s0 = slots[0]

        def getter(fr):
            return (fr[s0],)
    else:
        getter = operator.itemgetter(*slots)
    must = tuple(x in plan.entry_read for x in plan.names)
    writes = tuple((i, slots[i]) for i, x in enumerate(plan.names) if x in plan.written)
    s_in = struct.Struct(f"<4q32x{k}i{k}b")   # ctl words 0-3, variables, bound flags
    s_out = struct.Struct(f"<i4x3q{k}i{k}b")  # ctl words 4 (last push, counting), 5-7, vars, flags
    ones = (1,) * k
    nn = plan.nodes
    pool = rg.pool
    fallback = rg.fallback
    lazy_ok = rg.lazy

    def entry_payload(vals):
        """Variables then bound flags when some variable is not a bound int; None → tier 1."""
        out, bnd = [], []
        for v, m in zip(vals, must):
            if v.__class__ is int:
                out.append(v)
                bnd.append(1)
            elif v is None and not m:
                out.append(0)
                bnd.append(0)
            else:
                return None
        return out + bnd

    def native_region(st, fr, stk):
        code = rg.code
        if code is None:
            return rg.cold(st, fr, stk)
        if st.kind_counts is not None:
            return fallback(st, fr, stk)
        if st.lazy is not None and not lazy_ok:
            st.lazy.materialize(st)  # what encloses this region may pop below its pushes
        counting = code.counting
        vals = getter(fr)
        lim = st.limits
        remaining = lim.fuel - st.executed
        wl = lim.max_while_iterations
        cap = st.max_entries - len(stk)
        sc = pool.take()
        if sc is None:
            sc = _Scratch(k, nn if counting else rg.initial_entries(cap), nn)
        blim = cap if counting or sc.room >= cap else sc.room
        try:
            s_in.pack_into(sc.buf, 0, remaining, blim, wl, st.deadline_ns, *vals, *ones)
            payload = None
        except struct.error:  # a variable is unbound or not an int (or a limit exceeds i64)
            payload = entry_payload(vals)
            if payload is None:
                pool.give(sc)
                return fallback(st, fr, stk)
            remaining, wl = min(remaining, _I64_MAX), min(wl, _I64_MAX)
            s_in.pack_into(sc.buf, 0, remaining, blim, wl, st.deadline_ns, *payload)
        st.native_ran = True
        while True:
            rc = code.call(sc.addr)
            out = s_out.unpack_from(sc.buf, 32)
            sp = out[3]
            if rc <= BREAK:
                for i, s in writes:
                    if out[4 + k + i]:
                        fr[s] = out[4 + i]
                st.executed += out[1]
                st.loop_iterations += out[2]
                if counting:
                    if sp > 1:
                        lz = st.lazy
                        if lz is None:
                            lz = st.lazy = _Lazy()
                        entry = vals + ones if payload is None else tuple(payload)
                        lz.add(st, stk, _Replay(rg, entry, sp - 1))
                        st.next_check = -1
                    if sp:
                        stk.append(out[0])
                    pool.give(sc)
                elif sp > LAZY_MIN_PUSHES and lazy_ok:
                    lz = st.lazy
                    if lz is None:
                        lz = st.lazy = _Lazy()
                    lz.add(st, stk, _Segment(sc, sp - 1, pool))  # owns sc until dropped
                    stk.append(sc.pushes[sp - 1])
                    st.next_check = -1
                else:
                    if sp:
                        stk += sc.pushes[:sp]  # Python ints (i32 memoryview items)
                    pool.give(sc)
                rg.native_runs += 1
                rg.native_nodes += out[1]
                if rg.native_nodes >= OPTIMIZE_NODES and not code.optimized:
                    rg.compile(True)  # hot: the next executions run O2 code
                if st.executed > st.next_check:
                    st.slow_check("native")  # deadline check at the region boundary
                return rc
            if rc == CHECK and sp <= cap:  # the push buffer is too small: grow it and re-run
                if time.monotonic_ns() > st.deadline_ns:
                    st.executed += out[1]
                    raise deadline_error(lim.deadline_ms)
                sc = _Scratch(k, min(4 * (sc.room + nn), cap + nn), nn)
                blim = sc.room if sc.room < cap else cap
                if payload is None:
                    payload = vals + ones
                s_in.pack_into(sc.buf, 0, remaining, blim, wl, st.deadline_ns, *payload)
                continue
            pool.give(sc)
            if rc == DEADLINE:
                st.executed += out[1]
                raise deadline_error(lim.deadline_ms)
            rg.bailouts += 1
            return fallback(st, fr, stk)

    native_region.region = rg  # for tests and diagnostics
    native_region.s_in = s_in
    return native_region


# ---------------------------------------------------------------------------------------------
# The hook and the entry point


def _strip_cached(n, memo: dict):
    """`opt_nodes.strip(n)` with a per-compilation memo (identity when `n` has no optimizer
    node), so asking for every statement of a nested tree stays linear."""
    hit = memo.get(id(n))
    if hit is not None and hit[0] is n:
        return hit[1]
    from nda.tiers import opt_nodes

    if isinstance(n, opt_nodes.OptNode):
        r = opt_nodes.strip(n)
    elif isinstance(n, ir.NOOP_KINDS) or not isinstance(n, ir.Node):
        r = n
    else:
        r = opt_nodes.rebuild(n, lambda c: _strip_cached(c, memo),
                              lambda cs: tuple(_strip_cached(c, memo) for c in cs))
    memo[id(n)] = (n, r)
    return r


def _same_inputs(plain, optimized) -> bool:
    """Whether native code for `plain` may stand in for the optimized `optimized`: it must read
    no variable the optimized code does not read. The optimizer removes a Let/Store whose value
    nothing reads any more (e.g. a Load folded to its known constant), so a variable that only
    the plain code reads may hold a stale value here."""
    from nda.tiers.opt_nodes import reads

    return reads(plain) <= reads(optimized)


class RegionCompiler:
    """The `native` hook of `closure.Compiler`: a native closure for each region, or None.

    `top`: the top-level sequence of the program whose unit this hook compiles (None: no lazy
    pushes). The first compiler the hook sees is the program's (callees are compiled once the
    program runs; a program compile that never reaches the hook has no Call). Its regions at
    open positions of `top` (by node identity: the optimizer keeps untouched subtrees, and the
    originals it falls back to, as the same objects in the same places) may push lazily."""

    def __init__(self, auto: bool = False, top=None, engine=None):
        self.auto = auto
        self._engine = engine     # whose `_PoolBudget` the regions' scratch pools share
        self._budget = None
        self._owner = None
        self._memo: dict = {}
        self._plain: dict = {}
        self._top = None if top is None else tuple(top)
        self._program = None      # weakref to the program's compiler (the first one seen)
        self._open: dict | None = None

    def _is_open(self, node, compiler) -> bool:
        if self._top is None or self._program is None or self._program() is not compiler:
            return False
        if self._open is None:
            self._open = open_positions(self._top)
        return id(node) in self._open

    def region(self, node, compiler):
        """A native closure for `node` (IR, or an optimizer node: native code is generated from
        the plain IR the optimizer started from, which it counts exactly, when that reads no
        variable the optimized code does not; the optimized tier 1 closure is the fallback),
        or None when `node` is not a pure scalar region."""
        if self._program is None and self._top is not None:
            self._program = weakref.ref(compiler)
        owner = self._owner() if self._owner is not None else None
        if owner is not compiler:  # a new compilation: forget the previous unit's analysis
            self._owner = weakref.ref(compiler)
            self._memo = {}
            self._plain = {}
        if type(node) not in _ELIGIBLE and type(node) in closure._IR_KINDS:
            return None  # plain IR of an ineligible kind (no optimizer node to look through)
        plain = _strip_cached(node, self._plain) if compiler.optimize else node
        if type(plain) not in _ELIGIBLE:
            return None
        if plain is not node and not _same_inputs(plain, node):
            return None
        plan = analyze(plain, self._memo)
        if plan is None:
            return None
        fallback = compiler.stmt_plain(node)
        slots = tuple(compiler.reg.slot(x) for x in plan.names)
        budget = self._budget
        if budget is None:
            budget = self._budget = pool_budget(self._engine)
        rg = Region(plain, plan, slots, fallback, self.auto, self._is_open(plain, compiler), budget)
        if not self.auto:
            rg.compile()
        return rg.closure


_BUDGETS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # engine → its _PoolBudget


def pool_budget(engine) -> _PoolBudget:
    """The scratch-pool budget shared by the regions of `engine`'s units (a fresh one when
    there is no engine)."""
    if engine is None:
        return _PoolBudget()
    budget = _BUDGETS.get(engine)
    if budget is None:
        budget = _BUDGETS.setdefault(engine, _PoolBudget())
    return budget
def run_tier2(sequence, state, opts: dict) -> int:
    """Tier 2 entry point for the sandbox. Returns the tier that ran: 2 when native code ran,
    else 1 (no region went native, or no llvmlite). (Whether `auto` interprets a cold program
    instead is the sandbox's decision.)"""
    auto = bool(opts.get("auto"))
    if not (llvmlite_installed() if auto else get_jit() is not None):
        return closure.run_tier1(sequence, state, opts)
    # A new hook per run; it is used only if the program unit is not cached yet (then it sees
    # the program's compiler first, and the callees of that unit later).
    engine = opts.get("engine") or closure.default_engine()
    tier = _AUTO_KEY if auto else 2
    cached = (opts["program_hash"], tier, bool(opts.get("optimize", True))) in engine.programs
    closure.run_compiled(sequence, state, opts, tier=tier,
                         native=None if cached else RegionCompiler(auto, sequence, engine))
    return 2 if state.native_ran else 1


# ---------------------------------------------------------------------------------------------
# Benchmark helpers


def compile_latency_ns(node, optimize: bool = False, counting: bool = False) -> int:
    """Wall time of compiling `node`'s region to native code (O2 if `optimize`, else O0; the
    counting variant if `counting`), bypassing the code cache."""
    plan = analyze(node)
    if plan is None:
        raise ValueError("not a pure scalar region with a loop")
    code = get_jit().compile(node, plan, optimize, use_cache=False, counting=counting)
    if code is None:
        raise ValueError("the region has no counting variant")
    return code.compile_ns


def kernel(node, values: dict | None = None, counting: bool = False):
    """A zero-argument callable that runs `node`'s O2 native code once (the counting variant if
    `counting`) with variables from `values` (name hash → int, default 0) under unbounded
    limits, without committing anything: the native part of a region execution alone.
    Returns the number of values pushed."""
    plan = analyze(node)
    if plan is None:
        raise ValueError("not a pure scalar region with a loop")
    code = get_jit().compile(node, plan, optimize=True, counting=counting)
    if code is None:
        raise ValueError("the region has no counting variant")
    k = len(plan.names)
    bound = 0 if counting else (plan.push if plan.push is not None else INITIAL_PUSHES)
    sc = _Scratch(k, bound + plan.nodes, plan.nodes)
    vals = [int((values or {}).get(x, 0)) for x in plan.names]
    s_in = struct.Struct(f"<4q32x{k}i{k}b")
    far = time.monotonic_ns() + 3600 * 10**9
    blim = _I64_MAX if counting else sc.room

    def call() -> int:
        s_in.pack_into(sc.buf, 0, _I64_MAX, blim, _I64_MAX, far, *vals, *((1,) * k))
        if code.call(sc.addr) > BREAK:
            raise RuntimeError("native kernel did not complete")
        return struct.unpack_from("<q", sc.buf, 56)[0]
    return call
