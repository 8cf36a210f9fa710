"""Tier 2 region analysis: which subtrees are pure scalar regions worth native code.

In: IR nodes (plain, or optimizer nodes that keep their original). Out: `info(node)` — a
per-node summary (eligible, static work, pushes, whether it stops) — and `analyze(node)` →
`RegionPlan` for a loop-containing scalar region, or None; `open_positions(sequence)` finds
the top-level regions of a sequence. No llvmlite here: `native` compiles what this finds.
"""

from __future__ import annotations

from nda.core import ir

_ELIGIBLE = frozenset((ir.Int, ir.Break, ir.Load, ir.Let, ir.Store, ir.Add, ir.Compare, ir.VecOp,
                       ir.Loop, ir.While, ir.If, ir.Scope))
_VECOPS = frozenset((ir.VecOpKind.Negate, ir.VecOpKind.Abs, ir.VecOpKind.ReduceSum))
class Info:
    """Static facts about one subtree (context-free, memoized by node identity).

    valid: every node eligible and the stack discipline holds; static: exact number of values
    left on the stack, or None; lo: a lower bound of it; brk: may signal Break to its sequence;
    stop: always signals Break (what follows it in a sequence never runs); loop: contains a
    Loop/While; nodes: node count; work: nodes evaluated by one execution when statically
    bounded (no While), else None; push: upper bound of values left, or None.
    """

    __slots__ = ("valid", "static", "lo", "brk", "stop", "loop", "nodes", "work", "push")

    def __init__(self, valid, static, lo, brk, loop, nodes, work, push, stop=False):
        self.valid, self.static, self.lo, self.brk, self.stop = valid, static, lo, brk, stop
        self.loop, self.nodes, self.work, self.push = loop, nodes, work, push


_INVALID = Info(False, None, 0, False, False, 1, None, None)
_LEAF = Info(True, 1, 1, False, False, 1, 1, 1)
_BREAK = Info(True, 0, 0, True, False, 1, 1, 0, stop=True)


def _add(a, b):
    return None if a is None or b is None else a + b


def _seq(nodes, memo) -> Info:
    """Facts about a sequence (the node itself not counted)."""
    valid, static, lo, brk, stop, loop, n, work, push = True, 0, 0, False, False, False, 0, 0, 0
    lo_open = True
    for c in nodes:
        i = info(c, memo)
        valid = valid and i.valid
        loop = loop or i.loop
        n += i.nodes
        if stop:
            continue  # dead code after an unconditional Break
        if static is not None:
            if i.static is None or (brk and i.static != 0):
                static = None
            else:
                static += i.static
        if lo_open:
            lo += i.lo
            lo_open = not i.brk
        brk = brk or i.brk
        stop = i.stop
        work = _add(work, i.work)
        push = _add(push, i.push)
    return Info(valid, static, lo, brk, loop, n, work, push, stop)


def info(n, memo: dict) -> Info:
    """`Info` of `n`; `memo` maps id(node) → (node, Info) (holding the node keeps ids unique)."""
    hit = memo.get(id(n))
    if hit is not None:
        return hit[1]
    t = type(n)
    if t is ir.Int or t is ir.Load:
        r = _LEAF
    elif t is ir.Break:
        r = _BREAK
    elif t is ir.Add or t is ir.Compare:
        a, b = info(n.lhs, memo), info(n.rhs, memo)
        ok = a.valid and b.valid and a.static == 1 and b.static == 1
        r = Info(ok, 1, 1, False, a.loop or b.loop, 1 + a.nodes + b.nodes,
                 _add(1, _add(a.work, b.work)), 1) if ok else _INVALID
    elif t is ir.VecOp:
        a = info(n.operand, memo)
        ok = n.op in _VECOPS and a.valid and a.static == 1
        r = Info(True, 1, 1, False, a.loop, 1 + a.nodes, _add(1, a.work), 1) if ok else _INVALID
    elif t is ir.Let or t is ir.Store:
        a = info(n.init if t is ir.Let else n.value, memo)
        ok = a.valid and a.lo >= 1
        r = Info(True, a.static, a.lo, False, a.loop, 1 + a.nodes, _add(1, a.work), a.push) if ok else _INVALID
    elif t is ir.Scope:
        s = _seq(n.children, memo)
        r = Info(s.valid, s.static, s.lo, s.brk, s.loop, 1 + s.nodes, _add(1, s.work), s.push, s.stop)
    elif t is ir.Loop:
        s = _seq(n.body, memo)
        c = n.count
        if c == 0 or s.static == 0:
            static = 0
        elif s.static is None or s.brk:
            static = None
        else:
            static = c * s.static
        r = Info(s.valid, static, 0, False, True, 1 + s.nodes,
                 None if s.work is None else 1 + c * s.work, None if s.push is None else c * s.push)
    elif t is ir.While:
        a = info(n.cond, memo)
        s = _seq(n.body, memo)
        ok = a.valid and a.static == 1 and s.valid
        r = Info(True, 0 if s.static == 0 else None, 0, False, True, 1 + a.nodes + s.nodes, None,
                 0 if s.push == 0 else None) if ok else _INVALID
    elif t is ir.If:
        a = info(n.cond, memo)
        s1 = _seq(n.then_body, memo)
        s2 = _seq(n.else_body or (), memo)
        ok = a.valid and a.static == 1 and s1.valid and s2.valid
        static = s1.static if s1.static is not None and s1.static == s2.static else None
        w = None if s1.work is None or s2.work is None else 1 + max(s1.work, s2.work)
        p = None if s1.push is None or s2.push is None else max(s1.push, s2.push)
        r = Info(True, static, min(s1.lo, s2.lo), s1.brk or s2.brk, a.loop or s1.loop or s2.loop,
                 1 + a.nodes + s1.nodes + s2.nodes, _add(w, a.work), p,
                 s1.stop and n.else_body is not None and s2.stop) if ok else _INVALID
    else:
        r = _INVALID
    memo[id(n)] = (n, r)
    return r


class RegionPlan:
    """What the native code and the entry guard need to know about a region.

    names: every variable the region names (first-seen pre-order), `index` their positions;
    entry_read: names that may be read before the region writes them (must be bound at entry);
    written: names the region may write; nodes/work/push: from `Info`.
    """

    __slots__ = ("names", "index", "entry_read", "written", "nodes", "work", "push", "_memo")

    def __init__(self, node, inf: Info, memo: dict):
        names: list = []
        seen: set = set()
        entry: set = set()
        written: set = set()

        def name(x):
            if x not in seen:
                seen.add(x)
                names.append(x)

        def child(c, assigned):
            """Visit an expression child; if it may break, its later writes are not definite."""
            if info(c, memo).brk:
                da(c, assigned)
                return assigned
            return da(c, assigned)

        def seq(nodes, assigned):
            for c in nodes:
                assigned = da(c, assigned)
            return assigned

        def da(n, assigned: set) -> set:
            """Definite assignment in evaluation order; returns the set after `n`."""
            t = type(n)
            if t is ir.Load:
                name(n.name)
                if n.name not in assigned:
                    entry.add(n.name)
            elif t is ir.Let or t is ir.Store:
                name(n.name)
                written.add(n.name)
                assigned = child(n.init if t is ir.Let else n.value, assigned)
                assigned = assigned | {n.name}
            elif t is ir.Add or t is ir.Compare:
                assigned = child(n.rhs, child(n.lhs, assigned))
            elif t is ir.VecOp:
                assigned = child(n.operand, assigned)
            elif t is ir.Scope:
                assigned = seq(n.children, assigned)
            elif t is ir.Loop:
                seq(n.body, assigned)  # the body may run zero times or break anywhere
            elif t is ir.While:
                assigned = child(n.cond, assigned)
                seq(n.body, assigned)
            elif t is ir.If:
                assigned = child(n.cond, assigned)
                a1 = seq(n.then_body, assigned)
                a2 = seq(n.else_body or (), assigned)
                assigned = a1 & a2
            return assigned

        da(node, frozenset())
        self.names = tuple(names)
        self.index = {x: i for i, x in enumerate(names)}
        self.entry_read = frozenset(entry)
        self.written = frozenset(written)
        self.nodes = inf.nodes
        self.work = inf.work
        self.push = inf.push
        self._memo = memo

    def has_loop(self, n) -> bool:
        """Whether descendant `n` of the region contains a Loop or While."""
        return info(n, self._memo).loop

    def iteration(self, body) -> tuple:
        """(work, push) upper bounds of one run of the sequence `body` (None: unbounded)."""
        s = _seq(body, self._memo)
        return s.work, s.push


def analyze(node, memo: dict | None = None) -> RegionPlan | None:
    """The plan of `node` if it is a pure scalar region worth native code (it has a loop)."""
    if type(node) not in _ELIGIBLE:
        return None
    memo = {} if memo is None else memo
    inf = info(node, memo)
    if not (inf.valid and inf.loop):
        return None
    return RegionPlan(node, inf, memo)


def open_positions(sequence) -> dict:
    """id → node of every node at an *open position* of the top-level `sequence`: an element
    of it, or an element of the children of a Scope, the body of a Loop or While, or a branch
    of an If that is at an open position. No enclosing node reads the stack after an open node
    completes (a While pops its condition, which counts a node or runs a non-open region
    first). A node object that also occurs elsewhere (shared subtrees) is left out."""
    found: dict = {}
    closed: set = set()
    seen: set = set()
    todo = [(n, True) for n in sequence]
    while todo:
        n, ok = todo.pop()
        key = (id(n), ok)
        if key in seen:
            continue
        seen.add(key)
        if ok:
            found[id(n)] = n
        else:
            closed.add(id(n))
        t = type(n) if ok else None
        if t is ir.Scope or t is ir.Loop:
            todo.extend((c, True) for c in (n.children if t is ir.Scope else n.body))
        elif t is ir.While or t is ir.If:
            todo.append((n.cond, False))
            todo.extend((c, True) for c in (n.body if t is ir.While else n.then_body + (n.else_body or ())))
        elif isinstance(n, ir.Node):
            todo.extend((c, False) for c in ir.children(n))
    return {k: v for k, v in found.items() if k not in closed}


