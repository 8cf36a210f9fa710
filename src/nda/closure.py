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
- Matrix/Norm planes are decoded once at compile time; Calls compile each callee once per
  address (`Engine.callee_cache`) and resolve targets once per run (existence is checked
  against the run's own resolver, so a cached callee never hides a missing target).

The counting prologue used everywhere (and in tier 0):
    n = st.executed + 1; st.executed = n
    if n > st.next_check: st.slow_check(KIND)
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from . import ir
from . import kernels as K
from . import values as V
from .state import (
    RunState, call_depth_error, nesting_error, target_not_found, type_error, undefined_variable,
    underflow, while_limit_error,
)

CONTINUE, BREAK, RETURN = 0, 1, 2
NdaVec = V.NdaVec
_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1


def _wrap(x: int) -> int:
    return ((x + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def _vec_in(st: RunState, v) -> None:
    """Account for a Vector pushed on the stack."""
    st.mem_extra += V.value_size(v) - 8
    st.recompute_max_entries()


def _vec_out(st: RunState, v) -> None:
    st.mem_extra -= V.value_size(v) - 8
    st.recompute_max_entries()


def _pop(st: RunState, stk: list, msg: str):
    if not stk:
        raise underflow(msg)
    v = stk.pop()
    if v.__class__ is NdaVec:
        _vec_out(st, v)
    return v


def _push(st: RunState, stk: list, v) -> None:
    stk.append(v)
    if v.__class__ is NdaVec:
        _vec_in(st, v)


# Underflow messages, per node kind and operand position
_UF1 = {
    ir.VecOp: "Stack underflow in VecOp operand", ir.Print: "Stack underflow in Print source",
    ir.MathFunc: "Stack underflow in MathFunc", ir.Peek: "Stack underflow in Peek",
    ir.Cast: "Stack underflow in Cast operand",
}
_UF2 = {  # (rhs message, lhs message) — popped rhs first
    ir.Add: ("Stack underflow in Add rhs", "Stack underflow in Add lhs"),
    ir.Compare: ("Stack underflow in Compare rhs", "Stack underflow in Compare lhs"),
    ir.Math: ("Stack underflow in Math rhs", "Stack underflow in Math lhs"),
}


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


class Unit:
    """A compiled unit: its body closure, slot count and statistics."""

    __slots__ = ("run", "nslots", "nodes", "group", "too_deep", "address")

    def __init__(self, run, nslots, nodes, group, too_deep, address):
        self.run, self.nslots, self.nodes = run, nslots, nodes
        self.group, self.too_deep, self.address = group, too_deep, address


class Engine:
    """Compilation caches (runtime.md §4): programs by (H2, optimize), callees by address.

    Both are bounded LRUs keyed by H2 content addresses; stored nodes are immutable, so
    entries never go stale. Caching has no observable effect on results.
    """

    def __init__(self, program_capacity: int = 256, callee_capacity: int = 1024):
        self.program_capacity = program_capacity
        self.callee_capacity = callee_capacity
        self.programs: OrderedDict = OrderedDict()
        self.callees: OrderedDict = OrderedDict()

    def _lru_get(self, cache: OrderedDict, key):
        u = cache.get(key)
        if u is not None:
            cache.move_to_end(key)
        return u

    def _lru_put(self, cache: OrderedDict, key, value, cap: int) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > cap:
            cache.popitem(last=False)

    def program(self, key, build):
        u = self._lru_get(self.programs, key)
        if u is None:
            u = build()
            self._lru_put(self.programs, key, u, self.program_capacity)
        return u

    def callee(self, key, build):
        u = self._lru_get(self.callees, key)
        if u is None:
            u = build()
            self._lru_put(self.callees, key, u, self.callee_capacity)
        return u

    def cache_info(self) -> dict:
        return {
            "cached_programs": len(self.programs),
            "cached_callees": len(self.callees),
            "total_compiled_nodes": sum(u.nodes for u in self.programs.values()),
            "unique_hashes": [k[0].hex() for k in self.programs],
        }

    def cache_clear(self) -> None:
        self.programs.clear()
        self.callees.clear()

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


def _is_pure(node: ir.Node, memo: dict) -> bool:
    k = id(node)
    r = memo.get(k)
    if r is not None:
        return r
    t = type(node)
    ext = getattr(node, "closure_pure", None)  # optimizer nodes declare their purity
    if ext is not None:
        r = ext(memo)
    elif t in (ir.Int, ir.Float, ir.Load):
        r = True
    elif t in (ir.Add, ir.Compare, ir.Math, ir.Dot, ir.Gemv):
        r = _is_pure(node.lhs if t not in (ir.Gemv,) else node.matrix, memo) and \
            _is_pure(node.rhs if t is not ir.Gemv else node.vector, memo)
    elif t in (ir.VecOp, ir.MathFunc, ir.Cast):
        r = _is_pure(node.operand, memo)
    elif t is ir.Peek:
        r = _is_pure(node.addr, memo)
    elif t is ir.Let:
        r = _is_pure(node.init, memo)
    elif t is ir.Store:
        r = _is_pure(node.value, memo)
    elif t is ir.Bitwise:
        r = _is_pure(node.lhs, memo) and (
            node.op == ir.BitwiseOp.Not or (node.rhs is not None and _is_pure(node.rhs, memo)))
    else:
        r = False
    memo[k] = r
    return r


# ---------------------------------------------------------------------------------------------
# The compiler


class Compiler:
    """Compiles one unit (program or callee). `group` is the unit's recursive group, if any."""

    def __init__(self, engine: Engine, group=None, native=None, tier: int = 1, optimize: bool = False):
        self.engine = engine
        self.group = group
        self.native = native      # tier 2 region compiler (nda.native), or None
        self.tier = tier
        self.optimize = optimize  # callees are optimized like the program
        self.reg = SlotRegistry()
        self.pure_memo: dict = {}
        self.count = 0

    def pure(self, n) -> bool:
        return _is_pure(n, self.pure_memo)

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
        ext = getattr(n, "compile_stmt", None)  # optimizer nodes compile themselves
        if ext is not None:
            return ext(self)
        if self.native is not None:
            f = self.native.region(n, self)  # a native closure for an eligible region, or None
            if f is not None:
                return f
        t = type(n)
        if t is ir.Let or t is ir.Store:
            return self.stmt_assign(n)
        if self.pure(n):
            e = self.expr(n, counted=True)

            def push_value(st, fr, stk):
                v = e(st, fr)
                stk.append(v)
                if v.__class__ is NdaVec:
                    _vec_in(st, v)
                return CONTINUE
            return push_value
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

    def s_Matrix(self, n):
        w = K.matrix_weights(n.rows, n.cols, n.sign, n.extra)
        cols, scale = n.cols, n.scale

        def matrix(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Matrix")
            x = _pop(st, stk, "Stack underflow in Matrix GEMV")
            out = K.matrix_apply(w, cols, scale, x)
            st.matrix_count += 1
            stk.append(out)
            _vec_in(st, out)
            return CONTINUE
        return matrix

    def s_Norm(self, n):
        g = K.norm_gain(n.size, n.weight, n.bias)
        size = n.size

        def norm(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Norm")
            x = _pop(st, stk, "Stack underflow in Norm")
            out = K.norm_apply(g, size, x)
            st.norm_count += 1
            stk.append(out)
            _vec_in(st, out)
            return CONTINUE
        return norm

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
                unit = engine.callee((callee.address, tier, optimize),
                                     lambda: compile_callee(callee, engine, st.limits, native, tier, optimize))
                memo[key] = unit
            if unit.too_deep:
                raise nesting_error(st.limits.max_node_depth)
            st.call_depth += 1
            try:
                unit.run(st, [None] * unit.nslots, stk)
            finally:
                st.call_depth -= 1
            return CONTINUE
        return call

    def s_Loop(self, n):
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

    def _binary_stack(self, n, lhs, rhs, msgs, compute):
        """Operands run as statements, popped rhs then lhs (used when one is impure)."""
        kind = type(n).__name__
        sl, sr = self.stmt(lhs), self.stmt(rhs)
        mr, ml = msgs

        def binary(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check(kind)
            sl(st, fr, stk)
            sr(st, fr, stk)
            r = _pop(st, stk, mr)
            l = _pop(st, stk, ml)
            _push(st, stk, compute(l, r))
            return CONTINUE
        return binary

    def s_Add(self, n):
        return self._binary_stack(n, n.lhs, n.rhs, _UF2[ir.Add], K.add_vals)

    def s_Compare(self, n):
        op = n.op
        return self._binary_stack(n, n.lhs, n.rhs, _UF2[ir.Compare], lambda l, r: K.compare(op, l, r))

    def s_Math(self, n):
        op = n.op
        return self._binary_stack(n, n.lhs, n.rhs, _UF2[ir.Math], lambda l, r: K.math(op, l, r))

    def _unary_stack(self, n, operand, msg, compute):
        kind = type(n).__name__
        s = self.stmt(operand)

        def unary(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check(kind)
            s(st, fr, stk)
            _push(st, stk, compute(_pop(st, stk, msg)))
            return CONTINUE
        return unary

    def s_VecOp(self, n):
        op = n.op
        return self._unary_stack(n, n.operand, _UF1[ir.VecOp], lambda v: K.vecop(op, v))

    def s_MathFunc(self, n):
        f = n.func
        return self._unary_stack(n, n.operand, _UF1[ir.MathFunc], lambda v: K.mathfunc(f, v))

    def s_Cast(self, n):
        to = n.to_type
        kind = "Cast"
        s = self.stmt(n.operand)

        def cast(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check(kind)
            s(st, fr, stk)
            _push(st, stk, K.cast(to, _pop(st, stk, "Stack underflow in Cast operand"), st.input_len))
            return CONTINUE
        return cast

    def s_Peek(self, n):
        s = self.stmt(n.addr)

        def peek(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Peek")
            s(st, fr, stk)
            _push(st, stk, K.peek(st.machine, _pop(st, stk, "Stack underflow in Peek")))
            return CONTINUE
        return peek

    def s_Print(self, n):
        line = K.print_line
        if self.pure(n.source):
            e = self.expr_child(n.source)

            def print_pure(st, fr, stk):
                c = st.executed + 1
                st.executed = c
                if c > st.next_check:
                    st.slow_check("Print")
                st.emit(line(e(st, fr)))
                return CONTINUE
            return print_pure
        s = self.stmt(n.source)

        def print_(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Print")
            s(st, fr, stk)
            st.emit(line(_pop(st, stk, "Stack underflow in Print source")))
            return CONTINUE
        return print_

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

    def s_Bitwise(self, n):
        op = n.op
        lp = self.pure(n.lhs)
        lhs = self.expr_child(n.lhs) if lp else self.stmt(n.lhs)
        if op == ir.BitwiseOp.Not:
            rp, rhs = True, None
        elif n.rhs is None:
            rp, rhs = True, None
        else:
            rp = self.pure(n.rhs)
            rhs = self.expr_child(n.rhs) if rp else self.stmt(n.rhs)
        is_not = op == ir.BitwiseOp.Not

        def bitwise(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Bitwise")
            if lp:
                l = lhs(st, fr)
            else:
                lhs(st, fr, stk)
                l = _pop(st, stk, "Stack underflow in Bitwise lhs")
            if is_not:
                _push(st, stk, K.bitwise_not(l))
                return CONTINUE
            if rhs is None:
                raise type_error("Missing rhs for binary Bitwise op")
            if rp:
                r = rhs(st, fr)
            else:
                rhs(st, fr, stk)
                r = _pop(st, stk, "Stack underflow in Bitwise rhs")
            _push(st, stk, K.bitwise(op, l, r))
            return CONTINUE
        return bitwise

    def s_Poke(self, n):
        if self.pure(n.addr) and self.pure(n.value):
            ea, ev = self.expr_child(n.addr), self.expr_child(n.value)

            def poke_pure(st, fr, stk):
                c = st.executed + 1
                st.executed = c
                if c > st.next_check:
                    st.slow_check("Poke")
                a = ea(st, fr)
                v = ev(st, fr)
                if K.poke(st.machine, a, v):
                    st.recompute_max_entries()
                    st.check_memory()
                return CONTINUE
            return poke_pure
        sa, sv = self.stmt(n.addr), self.stmt(n.value)

        def poke(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Poke")
            sa(st, fr, stk)
            sv(st, fr, stk)
            v = _pop(st, stk, "Stack underflow in Poke value")
            a = _pop(st, stk, "Stack underflow in Poke address")
            if K.poke(st.machine, a, v):
                st.recompute_max_entries()
                st.check_memory()
            return CONTINUE
        return poke

    def _vec_pair_stack(self, n, lhs, rhs, names, compute):
        kind = type(n).__name__
        sl, sr = self.stmt(lhs), self.stmt(rhs)
        (uf_r, ty_r), (uf_l, ty_l) = names

        def pair(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check(kind)
            sl(st, fr, stk)
            sr(st, fr, stk)
            r = _pop(st, stk, uf_r)
            if r.__class__ is not NdaVec:
                raise type_error(ty_r)
            l = _pop(st, stk, uf_l)
            if l.__class__ is not NdaVec:
                raise type_error(ty_l)
            _push(st, stk, compute(l, r))
            return CONTINUE
        return pair

    def s_Gemv(self, n):
        return self._vec_pair_stack(n, n.matrix, n.vector, _GEMV_MSGS, K.gemv)

    def s_Dot(self, n):
        return self._vec_pair_stack(n, n.lhs, n.rhs, _DOT_MSGS, K.dot)

    def s_Syscall(self, n):
        args = tuple(self.stmt(a) for a in n.args)
        k = len(args)
        num = n.num
        line = K.syscall_print_line

        def syscall(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Syscall")
            for a in args:
                a(st, fr, stk)
            if len(stk) < k:
                raise underflow("Stack underflow in Syscall args")
            vals = [_pop(st, stk, "") for _ in range(k)][::-1]
            if num == 1:
                if vals:
                    st.emit(line(vals[0]))
            else:
                stk.append(0)
            return CONTINUE
        return syscall

    def _noop(self, n):
        kind = type(n).__name__

        def noop(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check(kind)
            return CONTINUE
        return noop

    s_Spawn = s_Atomic = s_Alloc = s_Free = s_RegInt = s_GpuDispatch = s_Triple = _noop

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
        ext = getattr(n, "compile_expr", None)  # optimizer nodes compile themselves
        if ext is not None:
            return ext(self)
        return getattr(self, "e_" + type(n).__name__)(n)

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

    def _operand(self, n):
        """('c', value, kind) for Int/Float leaves, ('l', slot, name) for Load, ('e', closure)."""
        if getattr(n, "compile_expr", None) is not None:
            return ("e", self.expr_child(n))
        if type(n) is ir.Int:
            self.count += 1
            return ("c", n.value, "Int")
        if type(n) is ir.Float:
            self.count += 1
            return ("c", np.array(n.bits, dtype=np.uint32).view(np.float32)[()], "Float")
        if type(n) is ir.Load:
            self.count += 1
            return ("l", self.reg.slot(n.name), n.name)
        return ("e", self.expr_child(n))

    def e_Add(self, n):
        a = self._operand(n.lhs)
        b = self._operand(n.rhs)
        return _make_binary("Add", a, b, _ADD_FAST, K.add_vals)

    def e_Compare(self, n):
        a = self._operand(n.lhs)
        b = self._operand(n.rhs)
        op = int(n.op)
        return _make_binary("Compare", a, b, _CMP_FAST[op], lambda l, r: K.compare(op, l, r))

    def e_Math(self, n):
        op = int(n.op)
        a = self._operand(n.lhs)
        b = self._operand(n.rhs)
        return _make_binary("Math", a, b, None, lambda l, r: K.math(op, l, r))

    def e_VecOp(self, n):
        op = int(n.op)
        e = self.expr_child(n.operand)
        fast = {1: lambda x: _wrap(-x), 2: lambda x: _wrap(abs(x)), 3: lambda x: x}.get(op)
        slow = K.vecop

        def vecop(st, fr):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("VecOp")
            v = e(st, fr)
            if fast is not None and v.__class__ is int:
                return fast(v)
            return slow(op, v)
        return vecop

    def e_MathFunc(self, n):
        f = int(n.func)
        e = self.expr_child(n.operand)

        def mathfunc(st, fr):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("MathFunc")
            return K.mathfunc(f, e(st, fr))
        return mathfunc

    def e_Cast(self, n):
        to = int(n.to_type)
        e = self.expr_child(n.operand)

        def cast(st, fr):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Cast")
            return K.cast(to, e(st, fr), st.input_len)
        return cast

    def e_Peek(self, n):
        e = self.expr_child(n.addr)

        def peek(st, fr):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Peek")
            return K.peek(st.machine, e(st, fr))
        return peek

    def e_Bitwise(self, n):
        op = int(n.op)
        el = self.expr_child(n.lhs)
        if op == ir.BitwiseOp.Not:
            def bit_not(st, fr):
                c = st.executed + 1
                st.executed = c
                if c > st.next_check:
                    st.slow_check("Bitwise")
                return K.bitwise_not(el(st, fr))
            return bit_not
        er = self.expr_child(n.rhs)

        def bitwise(st, fr):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Bitwise")
            l = el(st, fr)
            return K.bitwise(op, l, er(st, fr))
        return bitwise

    def _vec_pair_expr(self, lhs, rhs, kind, msgs, compute):
        el, er = self.expr_child(lhs), self.expr_child(rhs)
        ty_r, ty_l = msgs[0][1], msgs[1][1]

        def pair(st, fr):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check(kind)
            l = el(st, fr)
            r = er(st, fr)
            if r.__class__ is not NdaVec:
                raise type_error(ty_r)
            if l.__class__ is not NdaVec:
                raise type_error(ty_l)
            return compute(l, r)
        return pair

    def e_Gemv(self, n):
        return self._vec_pair_expr(n.matrix, n.vector, "Gemv", _GEMV_MSGS, K.gemv)

    def e_Dot(self, n):
        return self._vec_pair_expr(n.lhs, n.rhs, "Dot", _DOT_MSGS, K.dot)


_GEMV_MSGS = (("Stack underflow in Gemv vector", "Gemv vector operand must be a Vector"),
              ("Stack underflow in Gemv matrix", "Gemv matrix operand must be a Vector"))
_DOT_MSGS = (("Stack underflow in Dot rhs", "Dot rhs operand must be a Vector"),
             ("Stack underflow in Dot lhs", "Dot lhs operand must be a Vector"))


# ---------------------------------------------------------------------------------------------
# Specialised binary closures (operands inlined: constant, slot load, or closure)


def _add_fast(a, b):
    s = a + b
    if _I32_MIN <= s <= _I32_MAX:
        return s
    return _wrap(s)


_ADD_FAST = "add"
_CMP_FAST = {0: "==", 1: "!=", 2: "<", 3: ">", 4: "<=", 5: ">="}

_TEMPLATE = '''
def make(kind, A, B, slow, undefined_variable, wrap):
    def binary(st, fr):
        c = st.executed + 1
        st.executed = c
        if c > st.next_check:
            st.slow_check(kind)
{get_a}
{get_b}
        if a.__class__ is int and b.__class__ is int:
{fast}
        return slow(a, b)
    return binary
'''

_GET = {
    "c": ("        c = st.executed + 1\n        st.executed = c\n        if c > st.next_check:\n"
          "            st.slow_check({K})\n        {v} = {X}"),
    "l": ("        c = st.executed + 1\n        st.executed = c\n        if c > st.next_check:\n"
          "            st.slow_check('Load')\n        {v} = fr[{X}]\n        if {v} is None:\n"
          "            raise undefined_variable({N})"),
    "e": "        {v} = {X}(st, fr)",
}

_FACTORIES: dict = {}


def _make_binary(kind, a, b, fast, slow):
    key = (kind, a[0], b[0], fast)
    fac = _FACTORIES.get(key)
    if fac is None:
        def get(spec, v, name):
            t = spec[0]
            if t == "c":
                return _GET["c"].format(K=f"{name}_kind", v=v, X=name)
            if t == "l":
                return _GET["l"].format(v=v, X=name, N=f"{name}_name")
            return _GET["e"].format(v=v, X=name)
        if fast is None:
            body = "            pass"
        elif fast == "add":
            body = ("            s = a + b\n            if -2147483648 <= s <= 2147483647:\n"
                    "                return s\n            return wrap(s)")
        else:
            body = f"            return 1 if a {fast} b else -1"
        src = _TEMPLATE.format(get_a=get(a, "a", "A"), get_b=get(b, "b", "B"), fast=body)
        # Leaf payloads are passed as closure variables named A/B (+ A_kind/A_name …)
        src = src.replace("def make(kind, A, B, slow, undefined_variable, wrap):",
                          "def make(kind, A, A_kind, A_name, B, B_kind, B_name, slow, undefined_variable, wrap):")
        ns: dict = {}
        exec(compile(src, f"<nda-closure {kind}/{a[0]}{b[0]}>", "exec"), ns)
        fac = _FACTORIES[key] = ns["make"]

    def payload(spec):
        if spec[0] == "c":
            return spec[1], spec[2], None
        if spec[0] == "l":
            return spec[1], None, spec[2]
        return spec[1], None, None
    pa, pb = payload(a), payload(b)
    return fac(kind, pa[0], pa[1], pa[2], pb[0], pb[1], pb[2], slow, undefined_variable, _wrap)


# ---------------------------------------------------------------------------------------------
# Units


def _optimizer():
    """The optimizer module, if present (nda.optimize.optimize_sequence / optimize_node)."""
    try:
        from . import optimize
    except ImportError:
        return None
    return optimize


def compile_program(sequence, engine: Engine, native=None, tier: int = 1, optimize: bool = False,
                    timings: dict | None = None) -> Unit:
    opt = _optimizer() if optimize else None
    if opt is not None:
        sequence = opt.optimize_sequence(tuple(sequence), timings=timings)
    comp = Compiler(engine, None, native, tier, optimize)
    body = comp.seq(sequence)
    return Unit(body, len(comp.reg), comp.count, None, False, None)


def compile_callee(callee, engine: Engine, limits, native=None, tier: int = 1, optimize: bool = False) -> Unit:
    comp = Compiler(engine, callee.group, native, tier, optimize)
    too_deep = ir.node_depth(callee.node) > limits.max_node_depth
    node = callee.node
    opt = _optimizer() if optimize and not too_deep else None
    if opt is not None:
        node = opt.optimize_node(node)
    body = None if too_deep else comp.stmt(node)
    return Unit(body, len(comp.reg), comp.count, callee.group, too_deep, callee.address)


def run_compiled(sequence, state: RunState, opts: dict, tier: int = 1, native=None) -> int:
    """Compile (or fetch) the program for `tier` and run it on `state`."""
    import time

    engine = opts.get("engine") or default_engine()
    optimize = bool(opts.get("optimize", True))
    t0 = time.perf_counter_ns()
    key = (opts["program_hash"], tier, optimize)
    timings = opts["timing"].setdefault("passes", {})
    unit = engine.program(key, lambda: compile_program(sequence, engine, native, tier, optimize, timings))
    opts["timing"]["compile_us"] = (time.perf_counter_ns() - t0) // 1000
    state.group = {}  # per-run call resolution memo
    unit.run(state, [None] * unit.nslots, state.stack)
    return tier


def run_tier1(sequence, state: RunState, opts: dict) -> int:
    """Tier 1 entry point for the sandbox. Returns the tier that ran (1)."""
    return run_compiled(sequence, state, opts, tier=1)
