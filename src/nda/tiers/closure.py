"""Tier 1: the closure compiler.

In: a top-level sequence (or a callee node) and the run's `RunState`.
Out: one Python closure per node, built once per compiled unit and cached by H2; running the
unit mutates the state exactly as tier 0 would (same stack, log, counters, errors, order).

How it works (runtime.md §2.2):
- Names are resolved to dense slot indices at compile time (`SlotRegistry`, first-seen
  pre-order, a Let/Store's slot before its child); a frame is a list, `None` = unbound.
- Every node becomes a closure. *Pure* nodes — those that push exactly one value and never touch
  the stack below it (Int, Float, Load, and operators whose operands are all pure, Let/Store of
  a pure value) — compile to value closures `e(st, fr) -> value` that never touch the stack;
  everything else compiles to statement closures `s(st, fr, stk) -> signal`. Both observe the
  exact counting, error order and statement-boundary memory checks of tier 0: pure subtrees have
  no statement boundaries and cannot underflow, so keeping their intermediates off the stack is
  unobservable.
- Leaf operands (Int, Float, Load) of hot operators are inlined into the parent's closure,
  counting included, so `s = s + i` is one closure call, not four.
- Matrix/Norm planes are decoded once per content (`Engine.matrix_weights` / `norm_gain`, a
  bounded cache next to the program and callee caches); Calls compile each callee once per
  address (`Engine.callees`) and resolve targets once per run (existence is checked
  against the run's own resolver, so a cached callee never hides a missing target). A
  callee's node depth and expanded node count are compared with the *current* run's
  `max_node_depth` and `max_nodes` at every Call (`dag.measure`, linear even for a DAG).
- Every cache is bounded in entries and in host bytes: a unit's `nbytes` counts 256 B per
  compiled node plus the planes and decoded weights its closures pin (docs/decisions.md #13).
- A Loop with an empty body counts itself and skips its iterations (nothing observable
  happens in them), as tiers 0 and 2 do.
- A sequence of Matrix/Norm nodes only skips the optimizer (no pass rewrites such leaves).

Modules: this one holds the caches (`Engine`), purity, the compiler's control flow, variables
and calls, and the unit entry points; `closure_ops` the operator and kernel closures (a mixin
of `Compiler`); `closure_rt` the signals and stack helpers both use.

The counting prologue used everywhere (and in tier 0):
    n = st.executed + 1; st.executed = n
    if n > st.next_check: st.slow_check(KIND)
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from time import perf_counter_ns

import numpy as np

from nda.core import ir
from nda.core.dag import measure
from nda.core.deepstack import call_nested
from nda.runtime import kernels as K
from nda.runtime import values as V
from nda.tiers.closure_ops import OperatorClosures
from nda.tiers.closure_rt import (  # noqa: F401  (re-exported: opt_nodes and the tier 2 hooks use them)
    _IR_KINDS, BREAK, CONTINUE, RETURN, NdaVec, _is_pure, _pop, _push, _vec_in, _vec_out, _wrap, push_value_stmt,
)
from nda.runtime.state import (
    RunState, call_depth_error, nesting_error, node_count_error, target_not_found, undefined_variable,
    underflow, while_limit_error,
)


class SlotRegistry:
    """name_hash → dense slot index, in first-seen order (one per compiled unit)."""

    __slots__ = ("slots",)

    def __init__(self):
        self.slots: dict[int, int] = {}

    def slot(self, name: int) -> int:
        s = self.slots.get(name)
        if s is None:
            s = self.slots[name] = len(self.slots)
        return s

    def __len__(self) -> int:
        return len(self.slots)


NODE_BYTES = 256  # host bytes charged per compiled node (runtime.md §4's estimate)


class Unit:
    """A compiled unit: its body closure (None: not compiled, too deep or too big for the run
    that asked), slot count, statistics, node depth, `nbytes` (host bytes it holds or pins)
    and `size` (a callee's expanded node count, checked against each run's `max_nodes`)."""

    __slots__ = ("run", "nslots", "nodes", "group", "depth", "address", "nbytes", "size")

    def __init__(self, run, nslots, nodes, group, depth, address, nbytes=0, size=0):
        self.run, self.nslots, self.nodes = run, nslots, nodes
        self.group, self.depth, self.address = group, depth, address
        self.nbytes, self.size = nbytes, size


_ENGINE_SERIALS = itertools.count(1)


class Engine:
    """Compilation caches (runtime.md §4): programs by (H2, optimize), callees by address.

    `serial` names the engine for as long as the process lives (never reused, unlike `id()`):
    the sandbox's cold-program accounting is per engine.

    Both are bounded LRUs keyed by H2 content addresses, in entries and in bytes (`Unit.nbytes`:
    an entry over the whole budget is not kept); stored nodes are immutable, so entries never
    go stale. Caching has no observable effect on results.
    """

    def __init__(self, program_capacity: int = 256, callee_capacity: int = 1024,
                 kernel_capacity: int = 256, kernel_byte_budget: int = 64 << 20,
                 program_byte_budget: int = 64 << 20, callee_byte_budget: int = 64 << 20):
        self.program_capacity = program_capacity
        self.callee_capacity = callee_capacity
        self.kernel_capacity = kernel_capacity
        self.kernel_byte_budget = kernel_byte_budget
        self.program_byte_budget = program_byte_budget
        self.callee_byte_budget = callee_byte_budget
        self.programs: OrderedDict = OrderedDict()
        self.callees: OrderedDict = OrderedDict()
        self.kernels: OrderedDict = OrderedDict()  # decoded Matrix/Norm planes, by content
        self.kernel_bytes = 0
        self.program_bytes = 0
        self.callee_bytes = 0
        self.serial = next(_ENGINE_SERIALS)

    def _lru_get(self, cache: OrderedDict, key):
        u = cache.get(key)
        if u is not None:
            cache.move_to_end(key)
        return u

    @staticmethod
    def _lru_put(cache: OrderedDict, key, unit: Unit, cap: int, budget: int, total: int) -> int:
        """Insert `unit`; evict the oldest entries (the new one too if it alone is over the
        budget) until both bounds hold. Returns the new byte total."""
        cache[key] = unit
        cache.move_to_end(key)
        total += unit.nbytes
        while cache and (len(cache) > cap or total > budget):
            total -= cache.popitem(last=False)[1].nbytes
        return total

    def program(self, key, build):
        u = self._lru_get(self.programs, key)
        if u is None:
            u = build()
            self.program_bytes = self._lru_put(self.programs, key, u, self.program_capacity,
                                               self.program_byte_budget, self.program_bytes)
        return u

    def callee(self, key, build):
        """The cached callee unit, or `build()`; a unit that was not compiled is not kept."""
        u = self._lru_get(self.callees, key)
        if u is None:
            u = build()
            if u.run is not None:
                self.callee_bytes = self._lru_put(self.callees, key, u, self.callee_capacity,
                                                  self.callee_byte_budget, self.callee_bytes)
        return u

    def _kernel(self, key, build):
        """Decoded planes by content: a bounded LRU (entries and bytes held)."""
        cache = self.kernels
        k = cache.get(key)
        if k is not None:
            cache.move_to_end(key)
            return k
        k = build()
        if k.__class__ is K.MatrixWeights and not k.keeps:
            return k
        cache[key] = k
        self.kernel_bytes += k.nbytes
        while len(cache) > 1 and (len(cache) > self.kernel_capacity
                                  or self.kernel_bytes > self.kernel_byte_budget):
            self.kernel_bytes -= cache.popitem(last=False)[1].nbytes
        return k

    def matrix_weights(self, n: ir.Matrix) -> K.MatrixWeights:
        """The decoded planes of a Matrix node, shared by every node with the same content
        (a blocked matrix too large to keep a decode is O(1) to prepare: not cached)."""
        return self._kernel(("matrix", n.rows, n.cols, n.sign, n.extra),
                            lambda: K.MatrixWeights(n.rows, n.cols, n.sign, n.extra))

    def norm_gain(self, n: ir.Norm) -> K.NormGain:
        """The decoded planes of a Norm node, shared by every node with the same content."""
        return self._kernel(("norm", n.size, n.weight, n.bias), lambda: K.NormGain(n.size, n.weight, n.bias))

    def cache_info(self) -> dict:
        return {
            "cached_programs": len(self.programs),
            "cached_callees": len(self.callees),
            "total_compiled_nodes": sum(u.nodes for u in self.programs.values()),
            "unique_hashes": [k[0].hex() for k in self.programs],
            "cached_kernels": len(self.kernels),
            "kernel_bytes": self.kernel_bytes,
            "program_bytes": self.program_bytes,
            "callee_bytes": self.callee_bytes,
        }

    def cache_clear(self) -> None:
        self.programs.clear()
        self.callees.clear()
        self.kernels.clear()
        self.kernel_bytes = self.program_bytes = self.callee_bytes = 0

    def cache_memory_estimate(self) -> dict:
        b = 256 * sum(u.nodes for u in self.programs.values()) + 24 * len(self.programs)
        return {"bytes": b, "kb": b / 1024}


_DEFAULT_ENGINE: Engine | None = None


def default_engine() -> Engine:
    """The process-wide compilation cache (a cache only: it never changes a result)."""
    global _DEFAULT_ENGINE
    if _DEFAULT_ENGINE is None:
        _DEFAULT_ENGINE = Engine()
    return _DEFAULT_ENGINE


# ---------------------------------------------------------------------------------------------
# Purity


# ---------------------------------------------------------------------------------------------
# The compiler


class Compiler(OperatorClosures):
    """Compiles one unit (program or callee). `group` is the unit's recursive group, if any."""

    def __init__(self, engine: Engine, group=None, native=None, tier: int = 1, optimize: bool = False):
        self.engine = engine
        self.group = group
        self.native = native      # tier 2 region compiler (nda.tiers.native), or None
        self.tier = tier
        self.optimize = optimize  # callees are optimized like the program
        self.reg = SlotRegistry()
        self.pure_memo: dict = {}
        self.count = 0
        self.kernel_bytes = 0  # nbytes of the decoded kernels this unit's closures hold

    def pure(self, n) -> bool:
        return _is_pure(n, self.pure_memo)

    def unit_bytes(self) -> int:
        """Host bytes the unit being compiled holds or pins (`Unit.nbytes`)."""
        return NODE_BYTES * self.count + self.kernel_bytes

    # -- sequences ----------------------------------------------------------------------------
    def seq(self, nodes) -> object:
        """A statement closure running `nodes` with a memory check after each element."""
        stmts = tuple(self.stmt(n) for n in nodes)
        if not stmts:
            def run_empty(st, fr, stk):
                return CONTINUE
            return run_empty
        if len(stmts) == 1:
            s0, = stmts

            def run1(st, fr, stk):
                sig = s0(st, fr, stk)
                if len(stk) > st.max_entries:
                    st.check_memory()
                return sig
            return run1
        if len(stmts) == 2:
            s0, s1 = stmts

            def run2(st, fr, stk):
                sig = s0(st, fr, stk)
                if len(stk) > st.max_entries:
                    st.check_memory()
                if sig:
                    return sig
                sig = s1(st, fr, stk)
                if len(stk) > st.max_entries:
                    st.check_memory()
                return sig
            return run2

        def run_n(st, fr, stk):
            for s in stmts:
                sig = s(st, fr, stk)
                if len(stk) > st.max_entries:
                    st.check_memory()
                if sig:
                    return sig
            return CONTINUE
        return run_n

    # -- statements ---------------------------------------------------------------------------
    def stmt(self, n: ir.Node):
        self.count += 1
        t = type(n)
        if self.native is not None:
            # a native closure for an eligible region (also an optimized one), or None
            f = self.native.region(n, self)
            if f is not None:
                return f
        if t not in _IR_KINDS:
            ext = getattr(n, "compile_stmt", None)  # optimizer nodes compile themselves
            if ext is not None:
                return ext(self)
        if t is ir.Let or t is ir.Store:
            return self.stmt_assign(n)
        if self.pure(n):
            return push_value_stmt(self.expr(n, counted=True))
        return getattr(self, "s_" + t.__name__)(n)

    def stmt_assign(self, n):
        kind = type(n).__name__
        slot = self.reg.slot(n.name)
        child = n.init if type(n) is ir.Let else n.value
        if self.pure(child):
            e = self.expr_child(child)

            def assign_pure(st, fr, stk):
                c = st.executed + 1
                st.executed = c
                if c > st.next_check:
                    st.slow_check(kind)
                v = e(st, fr)
                fr[slot] = v
                stk.append(v)
                if v.__class__ is NdaVec:
                    _vec_in(st, v)
                return CONTINUE
            return assign_pure
        s = self.stmt(child)
        msg = "Stack underflow in Let init" if type(n) is ir.Let else "Stack underflow in Store value"

        def assign(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check(kind)
            s(st, fr, stk)
            if not stk:
                raise underflow(msg)
            fr[slot] = stk[-1]
            return CONTINUE
        return assign

    def s_Scope(self, n):
        body = self.seq(n.children)

        def scope(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Scope")
            return body(st, fr, stk)
        return scope

    def s_Call(self, n):
        target = n.target
        group = self.group
        engine = self.engine
        native, tier, optimize = self.native, self.tier, self.optimize
        key = (target, group.hash if group is not None else None)

        def call(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Call")
            if st.call_depth == st.limits.max_call_depth:
                raise call_depth_error(st.limits.max_call_depth)
            memo = st.group  # tier 1 keeps its per-run resolution memo here (dict)
            unit = memo.get(key)
            if unit is None:
                callee = st.resolver.resolve_call(target, group) if st.resolver is not None else None
                if callee is None:
                    raise target_not_found(target)
                # cached, or compiled now (not kept when too deep for this run's limit); the
                # compiler recurses (≤ 8 frames per level): on a big-stack worker if needed
                ckey = (callee.address, tier, optimize)
                unit = engine._lru_get(engine.callees, ckey)
                if unit is None:
                    unit = call_nested(
                        lambda: engine.callee(ckey, lambda: compile_callee(callee, engine, st.limits, native,
                                                                           tier, optimize)),
                        st, 2 * measure((callee.node,)).depth)
                memo[key] = unit
            if unit.depth > st.limits.max_node_depth:  # this run's limit, whoever compiled it
                raise nesting_error(st.limits.max_node_depth)
            if unit.size > st.limits.max_nodes:
                raise node_count_error(st.limits.max_nodes, unit.size)
            st.call_depth += 1
            try:
                room = st.stack_room
                need = 4 * unit.depth + 64
                if 0 <= need <= room:  # the common case, inline: the stack has room
                    st.stack_room = room - need
                    try:
                        unit.run(st, [None] * unit.nslots, stk)
                    finally:
                        st.stack_room = room
                else:
                    call_nested(lambda: unit.run(st, [None] * unit.nslots, stk), st, unit.depth)
            finally:
                st.call_depth -= 1
            return CONTINUE
        return call

    def s_Loop(self, n):
        if not n.body:
            def loop_empty(st, fr, stk):  # no node, no check point, no signal: skip iterations
                c = st.executed + 1
                st.executed = c
                if c > st.next_check:
                    st.slow_check("Loop")
                st.loop_iterations += 1
                return CONTINUE
            return loop_empty
        body = self.seq(n.body)
        count = n.count

        def loop(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Loop")
            st.loop_iterations += 1
            for _ in range(count):
                sig = body(st, fr, stk)
                if sig:
                    if sig == BREAK:
                        break
                    return RETURN
            return CONTINUE
        return loop

    def cond(self, node, msg):
        """A closure returning the popped condition value."""
        if self.pure(node):
            return self.expr(node, counted=True)
        s = self.stmt(node)

        def cond_from_stack(st, fr, stk):
            s(st, fr, stk)
            return _pop(st, stk, msg)
        return cond_from_stack

    def s_While(self, n):
        body = self.seq(n.body)
        pure = self.pure(n.cond)
        cnd = self.cond(n.cond, "Stack underflow in While condition")
        truthy = V.truthy

        def while_(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("While")
            st.loop_iterations += 1
            limit = st.limits.max_while_iterations
            iters = 0
            while True:
                v = cnd(st, fr) if pure else cnd(st, fr, stk)
                if v.__class__ is int:
                    if v <= 0:
                        break
                elif not truthy(v):
                    break
                sig = body(st, fr, stk)
                if sig:
                    if sig == BREAK:
                        break
                    return RETURN
                iters += 1
                if iters >= limit:
                    raise while_limit_error(limit)
            return CONTINUE
        return while_

    def s_If(self, n):
        then = self.seq(n.then_body)
        other = self.seq(n.else_body) if n.else_body is not None else None
        pure = self.pure(n.cond)
        cnd = self.cond(n.cond, "Stack underflow in If condition")
        truthy = V.truthy

        def if_(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("If")
            v = cnd(st, fr) if pure else cnd(st, fr, stk)
            if (v > 0) if v.__class__ is int else truthy(v):
                return then(st, fr, stk)
            if other is not None:
                return other(st, fr, stk)
            return CONTINUE
        return if_

    def s_Return(self, n):
        s = self.stmt(n.value)

        def return_(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Return")
            s(st, fr, stk)
            return RETURN
        return return_

    def s_Break(self, n):
        def break_(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Break")
            return BREAK
        return break_

    # Pure kinds reach stmt() through the pure path; these make the visitor total.
    def s_Int(self, n):
        return self.stmt(n)

    s_Float = s_Load = s_Let = s_Store = s_Int

    # -- value closures (pure nodes) ----------------------------------------------------------
    def expr_child(self, n):
        self.count += 1
        return self.expr(n, counted=True)

    def expr(self, n, counted=False):
        if not counted:
            self.count += 1
        t = type(n)
        if t not in _IR_KINDS:
            ext = getattr(n, "compile_expr", None)  # optimizer nodes compile themselves
            if ext is not None:
                return ext(self)
        return getattr(self, "e_" + t.__name__)(n)

    def stmt_plain(self, n: ir.Node):
        """Compile `n` as tier 1 would, without asking the native region compiler (fallbacks)."""
        native, self.native = self.native, None
        try:
            return self.stmt(n)
        finally:
            self.native = native

    def e_Int(self, n):
        v = n.value

        def int_(st, fr):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Int")
            return v
        return int_

    def e_Float(self, n):
        v = np.array(n.bits, dtype=np.uint32).view(np.float32)[()]

        def float_(st, fr):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Float")
            return v
        return float_

    def e_Load(self, n):
        slot = self.reg.slot(n.name)
        name = n.name

        def load(st, fr):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Load")
            v = fr[slot]
            if v is None:
                raise undefined_variable(name)
            return v
        return load

    def e_Let(self, n):
        slot = self.reg.slot(n.name)
        e = self.expr_child(n.init if type(n) is ir.Let else n.value)
        kind = type(n).__name__

        def assign(st, fr):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check(kind)
            v = e(st, fr)
            fr[slot] = v
            return v
        return assign

    e_Store = e_Let


# ---------------------------------------------------------------------------------------------
# Units


def _optimizer():
    """The optimizer module, if present (nda.tiers.optimize.optimize_sequence / optimize_node)."""
    try:
        from nda.tiers import optimize
    except ImportError:
        return None
    return optimize


_OPT_INERT = (ir.Matrix, ir.Norm)


def _opt_inert(sequence) -> bool:
    """True for a sequence of Matrix/Norm nodes only: leaves that no optimizer pass rewrites
    (no constants, loops, assignments or Return/Break), so optimizing it returns it unchanged
    and the passes' cost (tens of µs) is skipped."""
    return all(type(n) in _OPT_INERT for n in sequence)


def compile_program(sequence, engine: Engine, native=None, tier: int = 1, optimize: bool = False,
                    timings: dict | None = None) -> Unit:
    opt = _optimizer() if optimize and not _opt_inert(sequence) else None
    if opt is not None:
        sequence = opt.optimize_sequence(tuple(sequence), timings=timings)
    comp = Compiler(engine, None, native, tier, optimize)
    body = comp.seq(sequence)
    return Unit(body, len(comp.reg), comp.count, None, 0, None, NODE_BYTES * comp.count + comp.kernel_bytes)


def compile_callee(callee, engine: Engine, limits, native=None, tier: int = 1, optimize: bool = False) -> Unit:
    """The callee's unit. Its `depth` is checked against each run's `max_node_depth` at the
    Call; a callee deeper than `limits` allows is not compiled (`run` None, never cached)."""
    comp = Compiler(engine, callee.group, native, tier, optimize)
    size, depth = measure((callee.node,))[:2]  # linear even for a DAG built through the API
    if depth > limits.max_node_depth or size > limits.max_nodes:
        return Unit(None, 0, 0, callee.group, depth, callee.address, size=size)
    node = callee.node
    opt = _optimizer() if optimize else None
    if opt is not None:
        node = opt.optimize_node(node)
    body = comp.stmt(node)
    return Unit(body, len(comp.reg), comp.count, callee.group, depth, callee.address, comp.unit_bytes(),
                size)


def run_compiled(sequence, state: RunState, opts: dict, tier: int = 1, native=None) -> int:
    """Compile (or fetch) the program for `tier` and run it on `state`."""
    engine = opts.get("engine") or default_engine()
    optimize = bool(opts.get("optimize", True))
    timing = opts["timing"]
    t0 = perf_counter_ns()
    key = (opts["program_hash"], tier, optimize)
    unit = engine.programs.get(key)
    if unit is None:
        timings = timing.setdefault("passes", {})
        unit = engine.program(key, lambda: compile_program(sequence, engine, native, tier, optimize, timings))
    else:
        engine.programs.move_to_end(key)
    timing["compile_us"] = (perf_counter_ns() - t0) // 1000
    opts["unit"] = (unit, key, engine.programs)  # for the sandbox's fast path of a rerun
    state.group = {}  # per-run call resolution memo
    unit.run(state, [None] * unit.nslots, state.stack)
    return tier


def run_tier1(sequence, state: RunState, opts: dict) -> int:
    """Tier 1 entry point for the sandbox. Returns the tier that ran (1)."""
    return run_compiled(sequence, state, opts, tier=1)
