"""The gate's syntactic facts about subtrees, memoized per node object (`gate_absint.Syntax`).

In: nodes of a unit the gate analyses (all alive while the `Syntax` lives), `Limits` (for the
While iteration cap).
Out: `bound(n)` — the names Let/Store write anywhere in `n`; `plus(names, n)` — `Names` with
them added; `signals(n)` — the signals ('B', 'R') `n` may produce as a sequence element;
`min_cost(n)` / `seq_min_cost(nodes)` — lower bounds of executed nodes (the fuel check's
`gate.fuel_check`); `while_cap_cost(n)`.

Each result depends only on the subtree, so a node with a non-leaf child is memoized by id
(shared subtrees cost linear time). Leaves, binary operators over two leaves, and Let/Store/
Print over one of those are met inline without a memo entry: their cost is O(1) per parent.
"""

from __future__ import annotations

from typing import Any

from nda.analysis.gate_expr import const_truth
from nda.analysis.gate_state import Names
from nda.core import ir
from nda.core.binary_v2 import CHILDREN
from nda.runtime.state import Limits



class Syntax:
    """The memo tables of one gate run (one per `gate.analyze` call: every memoized node is
    kept alive with it, so ids stay unique)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._bound: dict[int, frozenset] = {}
        self._sig: dict[int, frozenset] = {}
        self._cost: dict[int, int] = {}
        self._keep: list = []  # keep memoized nodes alive so ids stay unique

    def bound(self, n: Any) -> frozenset:
        """Names written by Let/Store anywhere in `n` (no-op children excluded: they never run)."""
        t = type(n)
        if t in _NO_BIND:
            return _EMPTY
        k = id(n)
        r = self._bound.get(k)
        if r is None:
            acc = {n.name} if t is ir.Let or t is ir.Store else None
            get = _KIDS.get(t)
            for c in get(n) if get is not None else ():
                tc = type(c)
                if tc in _NO_BIND or tc in _LEAFY2 and type(c.lhs) in _NO_BIND and type(c.rhs) in _NO_BIND:
                    continue
                if tc is ir.Let or tc is ir.Store:  # over a leaf or a leafy operator: inline
                    v = c.init if tc is ir.Let else c.value
                    tv = type(v)
                    if tv in _NO_BIND or tv in _LEAFY2 and type(v.lhs) in _NO_BIND and type(v.rhs) in _NO_BIND:
                        if acc is None:
                            acc = {c.name}
                        else:
                            acc.add(c.name)
                        continue
                b = self.bound(c)
                if b:
                    if acc is None:
                        acc = set(b)
                    else:
                        acc |= b
            r = frozenset(acc) if acc else _EMPTY
            self._bound[k] = r
            self._keep.append(n)
        return r

    def plus(self, names: "Names", n: Any) -> "Names":
        """`names` (updated in place) with the names `n` writes."""
        t = type(n)
        if t is ir.Let or t is ir.Store:  # the common statement: no memo of its own
            if n.name not in names.set:
                names.add((n.name,))
            n = n.init if t is ir.Let else n.value
            t = type(n)
        if t in _NO_BIND or t in _LEAFY2 and type(n.lhs) in _NO_BIND and type(n.rhs) in _NO_BIND:
            return names
        b = self.bound(n)
        if b:
            names.add(b)
        return names

    def signals(self, n: Any) -> frozenset:
        """Signals ('B', 'R') that `n` may produce as a sequence element."""
        t = type(n)
        if t not in _SIG_KINDS:
            return _EMPTY
        k = id(n)
        r = self._sig.get(k)
        if r is None:
            if t is ir.Break:
                r = frozenset("B")
            elif t is ir.Return:
                r = frozenset("R")
            elif t is ir.Scope:
                r = self.seq_signals(n.children)
            elif t is ir.If:
                r = self.seq_signals(n.then_body) | self.seq_signals(n.else_body or ())
            elif t in (ir.Loop, ir.While):
                r = self.seq_signals(n.body) - {"B"}
            else:
                r = frozenset()
            self._sig[k] = r
            self._keep.append(n)
        return r

    def seq_signals(self, nodes) -> frozenset:
        out: frozenset = frozenset()
        for c in nodes:
            out |= self.signals(c)
        return out

    def seq_min_cost(self, nodes) -> int:
        """Fewest nodes a run of this sequence evaluates without failing (it may stop at a signal)."""
        total = 0
        for c in nodes:
            f = _flat_cost(c)
            if f:  # no memo entry; of these kinds only Break signals
                total += f
                if type(c) is ir.Break:
                    break
                continue
            total += self.min_cost(c)
            if self.signals(c):
                break
        return total

    def while_cap_cost(self, n: Any) -> int:
        """Cheapest run of a never-ending While up to its WHILE_LIMIT failure."""
        iters = max(self.limits.max_while_iterations, 1)
        return 1 + iters * (self.min_cost(n.cond) + self.seq_min_cost(n.body))

    def min_cost(self, n: Any) -> int:
        """Lower bound of executed nodes for any evaluation of `n` that does not fail earlier."""
        t = type(n)
        if t in _COST1:
            return 1
        k = id(n)
        r = self._cost.get(k)
        if r is not None:
            return r
        if t is ir.Call:
            r = 2  # the Call and at least the callee's root
        elif t is ir.Scope:
            r = 1 + self.seq_min_cost(n.children)
        elif t is ir.Loop:
            body = self.seq_min_cost(n.body)
            if n.count <= 0:
                r = 1
            elif self.seq_signals(n.body):
                r = 1 + body  # may leave during the first iteration
            else:
                r = 1 + n.count * body
        elif t is ir.While:
            truth = const_truth(n.cond)
            if truth and not self.seq_signals(n.body):
                r = self.while_cap_cost(n)
            else:
                r = 1 + self.min_cost(n.cond)
        elif t is ir.If:
            truth = const_truth(n.cond)
            then = self.seq_min_cost(n.then_body)
            other = self.seq_min_cost(n.else_body) if n.else_body is not None else 0
            pick = then if truth is True else other if truth is False else min(then, other)
            r = 1 + self.min_cost(n.cond) + pick
        elif t is ir.Bitwise:
            r = 1 + self.min_cost(n.lhs)
            if n.op != ir.BitwiseOp.Not and n.rhs is not None:
                r += self.min_cost(n.rhs)
        else:
            r = 1
            for c in kids(n):
                r += _flat_cost(c) or self.min_cost(c)
        self._cost[k] = r
        self._keep.append(n)
        return r


_EMPTY: frozenset = frozenset()
# node kinds that write no name (leaves, and no-op nodes whose children never run)
_NO_BIND = frozenset((ir.Int, ir.Float, ir.Load, ir.Break, ir.Call, ir.Matrix, ir.Norm) + ir.NOOP_KINDS)
_SIG_KINDS = frozenset((ir.Break, ir.Return, ir.Scope, ir.If, ir.Loop, ir.While))
_COST1 = frozenset((ir.Int, ir.Float, ir.Load, ir.Break) + ir.NOOP_KINDS)
# binary operators evaluating both children (`lhs`, `rhs`) whose leaf operands are met inline,
# not memoized (a node with a non-leaf child is memoized, so shared subtrees stay linear)
_LEAFY2 = frozenset((ir.Add, ir.Compare, ir.Math))
_KIDS = CHILDREN


def _flat_cost(n) -> int:
    """`Syntax.min_cost` of a leaf, a binary operator over two leaves, or a Let/Store/Print of
    one of those, computed without a memo entry (its parent has one, so shared subtrees stay
    linear); 0 for any other node."""
    t = type(n)
    if t in _COST1:
        return 1
    extra = 0
    if t is ir.Let or t is ir.Store or t is ir.Print:
        n = n.init if t is ir.Let else n.value if t is ir.Store else n.source
        t = type(n)
        if t in _COST1:
            return 2
        extra = 1
    if t in _LEAFY2 and type(n.lhs) in _COST1 and type(n.rhs) in _COST1:
        return 3 + extra
    return 0


def kids(n):
    """`ir.children(n)` (a tuple or list), from `binary_v2`'s per-class getters."""
    f = _KIDS.get(type(n))
    return () if f is None else f(n)


__all__ = ["Syntax", "kids"]
