"""Optimizer-only nodes: how an optimized subtree is represented, compiled by tier 1 and printed.

In: the rewrites chosen by `nda.tiers.optimize`. Each node keeps its ORIGINAL subtree (plain IR, for
`strip`, dumps and slot registration), the replacement, and the kinds of the evaluations the
replacement skips, in the order the original counts them.
Out: frozen dataclasses that the tier 1 compiler compiles through its extension hooks
(`compile_stmt(compiler)`, `compile_expr(compiler)`, `closure_pure(memo)`), structural helpers
(`strip`, `reads`, `rebuild`) and an S-expression printer for `--dump-after`.

These classes are NOT IR: they are not in `ir.NODE_CLASSES`, are never hashed, encoded or stored,
and exist only between `optimize_sequence` and the tier 1 compiler.

Exactness (runtime.md §3, §5). Every skipped evaluation is counted at the position where the
original counts it: a block of k skipped nodes is charged at once (`executed += k`) when that
stays at or below `st.next_check` (the next fuel/deadline checkpoint; −1 in kind-collection
mode), and otherwise counted one by one with the normal prologue and its kind — i.e. exactly as
the original would count them, including the fuel error and the kind counts. Nothing skipped can
raise or have an effect, so this slow path *is* the original; no second compilation is needed.
`Scev` is different: it runs only when no check can fail (fuel, memory) and then uses
`RunState.charge`, which also adds the kind counts; otherwise it runs the loop (compiled
alongside).

Variable slots: each node registers the names of its original, in the tier 1 compiler's order,
before compiling its replacement, so that slot numbers equal those of the unoptimized program.

Dump syntax (`format_sequence`): an optimizer node prints as
`(opt RULE +N [:loops L] [:removed R] FORM…)` — FORM runs in place of the original and N extra
node evaluations (L extra loop entries) are charged. RULE is `fold` (constant; FORM is
`(int V)`), `negneg` / `add0` (an operator pair or `+ 0` elided), `dead` (a dead Let/Store
replaced by its value), `if` (If with a constant condition → the taken branch as a Scope),
`unroll` (Loop → Scope of the copies; the Loop's own count is the Scope's), `dead-tail` (R nodes
after a Return/Break removed) and `scev` (FORM is the loop evaluated in closed form; N = nodes
charged besides the Loop itself).
"""

from __future__ import annotations

from dataclasses import dataclass, replace as dc_replace
from typing import Callable

import numpy as np

from nda.core import ir
from nda.tiers.closure_rt import CONTINUE, _is_pure, push_value_stmt

_U64 = (1 << 64) - 1


class OptNode:
    """Base class of the optimizer's node kinds (not an `ir.Node`)."""

    __slots__ = ()

    def sub_nodes(self) -> tuple:
        """The nodes that run when this node runs."""
        return ()

    def map(self, fn: Callable) -> "OptNode":
        """A copy with `fn` applied to the nodes that run (used by later passes)."""
        return self


# ---------------------------------------------------------------------------------------------
# Counting and registration helpers


def _counter(kinds: tuple):
    """`count(st)`: count the evaluations `kinds` as the original would, at once when possible."""
    k = len(kinds)
    if k == 0:
        return None
    if k == 1:
        kind = kinds[0]

        def count1(st):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check(kind)
        return count1

    def count(st):
        c = st.executed + k
        if c > st.next_check:
            for kd in kinds:
                c = st.executed + 1
                st.executed = c
                if c > st.next_check:
                    st.slow_check(kd)
        else:
            st.executed = c
    return count


def register(comp, node) -> None:
    """Register the variable slots of the plain-IR `node` in the order the tier 1 compiler does
    (pre-order, except If: branches before the condition; While: body before the condition;
    no-op nodes: nothing). Subtrees registered before by this compiler are skipped."""
    seen = getattr(comp, "_opt_registered", None)
    if seen is None:
        seen = comp._opt_registered = {}
    slot = comp.reg.slot
    stack = [node]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen[id(n)] = n
        t = type(n)
        if t is ir.Load:
            slot(n.name)
        elif t is ir.Let or t is ir.Store:
            slot(n.name)
            stack.append(n.init if t is ir.Let else n.value)
        elif t is ir.If:
            parts = list(n.then_body) + list(n.else_body or ()) + [n.cond]
            stack.extend(reversed(parts))
        elif t is ir.While:
            stack.extend(reversed(list(n.body) + [n.cond]))
        elif t is ir.Bitwise:
            if n.op != ir.BitwiseOp.Not and n.rhs is not None:
                stack.append(n.rhs)
            stack.append(n.lhs)
        elif isinstance(n, ir.NOOP_KINDS) or isinstance(n, OptNode):
            continue
        else:
            stack.extend(reversed(list(ir.children(n))))


# ---------------------------------------------------------------------------------------------
# Folded constant


@dataclass(frozen=True, slots=True)
class Folded(OptNode):
    """A side-effect-free subtree that cannot raise, folded to the i32 `value` (Scalar(_, 0)).

    `kinds` lists the original's evaluations in counting (pre-)order. The frame is never read,
    which is why a folded Load does not keep its variable alive.
    """

    value: int
    original: ir.Node
    kinds: tuple

    @property
    def extra_nodes(self) -> int:
        return len(self.kinds) - 1

    @property
    def kind_counts(self) -> dict:
        d: dict = {}
        for k in self.kinds:
            d[k] = d.get(k, 0) + 1
        return d

    def closure_pure(self, memo) -> bool:
        return True

    def compile_expr(self, comp):
        register(comp, self.original)
        v, kinds, k = self.value, self.kinds, len(self.kinds)
        if k == 1:
            kind = kinds[0]

            def folded1(st, fr):
                c = st.executed + 1
                st.executed = c
                if c > st.next_check:
                    st.slow_check(kind)
                return v
            return folded1

        def folded(st, fr):
            c = st.executed + k
            if c > st.next_check:
                for kd in kinds:
                    c = st.executed + 1
                    st.executed = c
                    if c > st.next_check:
                        st.slow_check(kd)
                return v
            st.executed = c
            return v
        return folded

    def compile_stmt(self, comp):
        e = self.compile_expr(comp)

        def push_const(st, fr, stk):
            stk.append(e(st, fr))
            return CONTINUE
        return push_const

    def sexpr(self, p) -> str:
        return f"(opt fold +{self.extra_nodes} (int {self.value}))"


# ---------------------------------------------------------------------------------------------
# Elided operators: Negate(Negate(e)) → e, 0 + e → e, e + 0 → e, dead Let/Store x e → e


@dataclass(frozen=True, slots=True)
class Elide(OptNode):
    """`original` counts the `prefix` evaluations, runs `replacement` (whose value it leaves
    unchanged on the stack), then counts the `suffix` evaluations (the `Int 0` of `e + 0`).
    A dead Let/Store skips its write too: the variable is never read on any path."""

    original: ir.Node
    replacement: object
    prefix: tuple
    suffix: tuple = ()
    rule: str = "elide"

    @property
    def extra_nodes(self) -> int:
        return len(self.prefix) + len(self.suffix)

    def sub_nodes(self) -> tuple:
        return (self.replacement,)

    def map(self, fn):
        return dc_replace(self, replacement=fn(self.replacement))

    def closure_pure(self, memo) -> bool:
        return _is_pure(self.replacement, memo)

    def compile_expr(self, comp):
        register(comp, self.original)
        fn = comp.expr(self.replacement)
        pre, post = _counter(self.prefix), _counter(self.suffix)
        if post is None:
            def elide(st, fr):
                pre(st)
                return fn(st, fr)
            return elide

        def elide_suffix(st, fr):
            pre(st)
            v = fn(st, fr)
            post(st)
            return v
        return elide_suffix

    def compile_stmt(self, comp):
        if comp.pure(self):
            return push_value_stmt(self.compile_expr(comp))
        register(comp, self.original)
        fn = comp.stmt(self.replacement)
        pre, post = _counter(self.prefix), _counter(self.suffix)

        def elide_stmt(st, fr, stk):
            pre(st)
            sig = fn(st, fr, stk)
            if post is not None:
                post(st)
            return sig
        return elide_stmt

    def sexpr(self, p) -> str:
        return f"(opt {self.rule} +{self.extra_nodes} {p.node(self.replacement)})"


# ---------------------------------------------------------------------------------------------
# Statement-level rewrites


@dataclass(frozen=True, slots=True)
class IfFolded(OptNode):
    """`If` whose condition is a constant: the If and its condition's `cond_kinds` are counted,
    then the taken `branch` runs as a sequence (`None`: no else branch, nothing runs)."""

    original: ir.If
    branch: tuple | None
    cond_kinds: tuple

    @property
    def extra_nodes(self) -> int:
        return len(self.cond_kinds)

    def sub_nodes(self) -> tuple:
        return tuple(self.branch or ())

    def map(self, fn):
        if self.branch is None:
            return self
        return dc_replace(self, branch=tuple(fn(n) for n in self.branch))

    def closure_pure(self, memo) -> bool:
        return False

    def compile_stmt(self, comp):
        register(comp, self.original)
        count = _counter(("If",) + self.cond_kinds)
        if self.branch is None:
            def if_none(st, fr, stk):
                count(st)
                return CONTINUE
            return if_none
        body = comp.seq(self.branch)

        def if_folded(st, fr, stk):
            count(st)
            return body(st, fr, stk)
        return if_folded

    def sexpr(self, p) -> str:
        return f"(opt if +{self.extra_nodes} (scope{p.seq(self.branch or ())}))"


@dataclass(frozen=True, slots=True)
class Unrolled(OptNode):
    """`Loop{n ≤ 4}` without a Break that targets it, as the straight-line `body` (n copies,
    folded in sequence). Counts 1 node ("Loop") and 1 loop entry, exactly like the Loop."""

    original: ir.Loop
    body: tuple

    extra_nodes = 0
    extra_loops = 1

    def sub_nodes(self) -> tuple:
        return self.body

    def map(self, fn):
        return dc_replace(self, body=tuple(fn(n) for n in self.body))

    def closure_pure(self, memo) -> bool:
        return False

    def compile_stmt(self, comp):
        register(comp, self.original)
        body = comp.seq(self.body)

        def unrolled(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Loop")
            st.loop_iterations += 1
            return body(st, fr, stk)
        return unrolled

    def sexpr(self, p) -> str:
        return f"(opt unroll +0 :loops 1 (scope{p.seq(self.body)}))"


@dataclass(frozen=True, slots=True)
class DeadTail(OptNode):
    """A sequence element `node` (a Return or Break) followed by `dead` elements that can never
    run; their slots are registered (in order) but nothing is compiled for them."""

    node: object
    dead: tuple

    def sub_nodes(self) -> tuple:
        return (self.node,)

    def map(self, fn):
        return dc_replace(self, node=fn(self.node))

    def closure_pure(self, memo) -> bool:
        return False

    def compile_stmt(self, comp):
        f = comp.stmt(self.node)
        for d in strip_seq(self.dead):
            register(comp, d)
        return f

    def sexpr(self, p) -> str:
        removed = sum(1 for d in strip_seq(self.dead) for _ in ir.walk(d))
        return f"(opt dead-tail +0 :removed {removed} {p.node(self.node)})"


# ---------------------------------------------------------------------------------------------
# SCEV-lite


@dataclass(frozen=True, slots=True)
class Scev(OptNode):
    """A `Loop{n}` whose body is m assignments `v = v + X` evaluated in closed form.

    `updates[t] = (v, mode, arg)` for body statement t (in order): mode "const" (X folds to the
    i32 `arg`), "inv" (X = Load arg, a variable the loop never writes) or "lin" (X = Load arg,
    where arg is itself updated by a "const"/"inv" statement of the body). Per iteration the
    body counts `per_iter` nodes and pushes m values; `kinds` are the whole loop's kind counts.
    At run time the closed form is used only when every variable involved holds Scalar(_, 0),
    `executed + 1 + per_iter·n ≤ fuel` and the m·n pushed values fit the memory limit;
    otherwise `original` (the loop) runs.
    """

    original: ir.Loop
    count: int
    updates: tuple
    per_iter: int
    kinds: tuple

    extra_loops = 0

    @property
    def extra_nodes(self) -> int:
        return self.per_iter * self.count

    def sub_nodes(self) -> tuple:
        return (self.original,)

    def closure_pure(self, memo) -> bool:
        return False

    def compile_stmt(self, comp):
        fo = comp.stmt(self.original)
        slot = comp.reg.slot
        n, m = self.count, len(self.updates)
        cost = 1 + self.per_iter * n
        kinds = dict(self.kinds)
        pos = {v: t for t, (v, _, _) in enumerate(self.updates)}
        need = []
        for v, mode, arg in self.updates:
            need.append(slot(v))
            if mode != "const":
                need.append(slot(arg))
        need = tuple(dict.fromkeys(need))
        inc_of = {}
        for v, mode, arg in self.updates:
            if mode == "const":
                inc_of[v] = ("c", arg)
            elif mode == "inv":
                inc_of[v] = ("s", slot(arg))
        plan = []  # (var slot, linear?, increment source, read slot, read var updated before?)
        for t, (v, mode, arg) in enumerate(self.updates):
            if mode != "lin":
                plan.append((slot(v), True, inc_of[v], None, None))
            else:
                plan.append((slot(v), False, inc_of[arg], slot(arg), pos[arg] < t))
        plan = tuple(plan)
        total = m * n

        def scev(st, fr, stk):
            for s in need:
                if fr[s].__class__ is not int:
                    return fo(st, fr, stk)
            if st.executed + cost > st.limits.fuel or len(stk) + total > st.max_entries:
                return fo(st, fr, stk)
            st.charge(cost, kinds)
            st.loop_iterations += 1
            for s, v in closed_form(n, plan, fr, stk):
                fr[s] = v
            return CONTINUE
        return scev

    def sexpr(self, p) -> str:
        return f"(opt scev +{self.extra_nodes} :loops 1 {p.node(self.original)})"


_CHUNK = 1 << 20


def closed_form(n: int, plan, fr, stk) -> list:
    """Push the m·n values of the loop (statement order within each iteration) and return the
    final (slot, value) pairs. All arithmetic is modulo 2^64 on uint64, then wrapped to i32
    (exact, since only + and · are involved and 2^32 divides 2^64)."""
    m = len(plan)
    entry = []
    for vs, linear, inc, us, before in plan:
        v0 = np.uint64(fr[vs] & _U64)
        c = np.uint64((inc[1] if inc[0] == "c" else fr[inc[1]]) & _U64)
        u0 = None if linear else np.uint64(fr[us] & _U64)
        entry.append((v0, c, u0, before))
    finals: list = []
    one, mask = np.uint64(1), np.uint64(0xFFFFFFFF)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        k = np.arange(start + 1, stop + 1, dtype=np.uint64)
        tri_after = tri_before = None
        cols = []
        for v0, c, u0, before in entry:
            if u0 is None:
                col = v0 + k * c
            else:
                if before:  # the read variable was already updated this iteration: Σ_{j≤k} u0 + j·c
                    if tri_after is None:
                        tri_after = (k * (k + one)) >> one
                    tri = tri_after
                else:       # updated later in the iteration: Σ_{j≤k} u0 + (j−1)·c
                    if tri_before is None:
                        tri_before = (k * (k - one)) >> one
                    tri = tri_before
                col = v0 + k * u0 + c * tri
            cols.append((col & mask).astype(np.uint32).view(np.int32))
        if m == 1:
            stk.extend(cols[0].tolist())
        else:
            out = np.empty((stop - start, m), dtype=np.int32)
            for t, col in enumerate(cols):
                out[:, t] = col
            stk.extend(out.ravel().tolist())
        if stop == n:
            finals = [(plan[t][0], int(cols[t][-1])) for t in range(m)]
    return finals


# ---------------------------------------------------------------------------------------------
# Structural helpers shared with the passes

OPT_CLASSES = (Folded, Elide, IfFolded, Unrolled, DeadTail, Scev)


def rebuild(n: ir.Node, f_node: Callable, f_seq: Callable) -> ir.Node:
    """A copy of the IR node `n` with `f_node` applied to single children and `f_seq` to child
    tuples (identity when nothing changes)."""
    changes = {}
    for name, kind in n.FIELDS:
        v = getattr(n, name)
        if v is None:
            continue
        if kind in ("node", "optnode"):
            nv = f_node(v)
            if nv is not v:
                changes[name] = nv
        elif kind in ("nodes", "optnodes"):
            nv = f_seq(v)
            if len(nv) != len(v) or any(a is not b for a, b in zip(nv, v)):
                changes[name] = tuple(nv)
    return dc_replace(n, **changes) if changes else n


def strip(n):
    """The plain IR a (possibly optimized) node came from."""
    if isinstance(n, OptNode):
        if isinstance(n, DeadTail):
            return strip(n.node)
        if isinstance(n, Scev):
            return strip(n.original)
        return n.original
    if isinstance(n, ir.NOOP_KINDS):
        return n
    return rebuild(n, strip, strip_seq)


def strip_seq(nodes) -> tuple:
    out = []
    for n in nodes:
        if isinstance(n, DeadTail):
            out.append(strip(n.node))
            out.extend(strip_seq(n.dead))
        else:
            out.append(strip(n))
    return tuple(out)


def reads(n) -> frozenset:
    """Variables that evaluating `n` may read (a Folded node reads none)."""
    out = set()
    stack = [n]
    while stack:
        m = stack.pop()
        if isinstance(m, OptNode):
            stack.extend(m.sub_nodes())
        elif type(m) is ir.Load:
            out.add(m.name)
        elif not isinstance(m, ir.NOOP_KINDS):
            stack.extend(ir.children(m))
    return frozenset(out)


def format_sequence(seq, names=None) -> str:
    """The S-expression of an optimized top-level sequence, one form per line (module doc)."""
    p = _printer(names)
    return "\n".join(p.node(n) for n in seq)


def format_node(node, names=None) -> str:
    return _printer(names).node(node)


def _printer(names):
    from nda.syntax.sexpr import _Printer

    class _OptPrinter(_Printer):
        def node(self, n):
            if isinstance(n, OptNode):
                return n.sexpr(self)
            return _Printer.node(self, n)

    return _OptPrinter(names)


__all__ = ["OptNode", "Folded", "Elide", "IfFolded", "Unrolled", "DeadTail", "Scev",
           "OPT_CLASSES", "strip", "strip_seq", "reads", "rebuild", "register", "closed_form",
           "format_sequence", "format_node"]
