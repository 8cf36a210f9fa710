"""The size of IR that may share subtrees, in time linear in its distinct objects.

In: root nodes (any iterable; a child that is not a node counts as a leaf, so ill-formed trees
are measured too), a node limit.
Out: `measure(roots)` → `Measure(nodes, depth, distinct, found)`: the node count and nesting
depth of the *expanded* tree — what the gate, the tiers, the encodings and every per-occurrence
walk see, a shared subtree once per occurrence — computed in one pass over the distinct node
objects (memo by identity, as `hashing.Hasher.h2`), so it answers at once even when the
expanded tree is exponential. IR built through the Python API can be such a DAG
(`x = Add(x, x)` forty times is 41 objects and 2^41 - 1 nodes); no front end produces one.
`distinct` is the number of distinct objects (leaves shared by a tree count per occurrence),
`found` the nodes whose class is in `kinds` (each distinct one at least once). Counts saturate at `SATURATED` (a cycle, which frozen nodes cannot form but
`object.__setattr__` can, expands forever and measures `SATURATED`).
`check_nodes(roots, limit)` → the measure, or `TooManyNodes` (VALIDATION_ERROR,
`node count exceeds {limit}`) when the expanded count passes `limit`; `MAX_NODES` is its
default, the default of `Limits.max_nodes` (docs/decisions.md #34). The sandbox, the gate,
the commit and the encoders check it once, before any per-occurrence walk.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

from nda.core import ir
from nda.core.errors import VALIDATION_ERROR, Diagnostic, ValidationError

MAX_NODES = 10_000_000
SATURATED = 1 << 62
_OPEN = (-1, -1)  # memo value of a node whose children are still being measured
_LEAF = (1, 1)
_NO_KINDS: frozenset = frozenset()
# A per-occurrence walk that has visited this many occurrences measures its roots (once, with
# `check_nodes`) before going on: a tree pays one comparison per node, a DAG too big to walk
# is refused after this many steps. `measure`'s plain walk stops at as many non-leaves.
WALK_CHECK = 1 << 17


class TooManyNodes(ValidationError):
    """The expanded tree of a program has more nodes than `limit` allows (`nodes`, saturated)."""

    def __init__(self, limit: int, nodes: int):
        msg = f"node count exceeds {limit}"
        super().__init__(msg, (Diagnostic(VALIDATION_ERROR, msg),))
        self.limit, self.nodes = limit, nodes


class Measure(NamedTuple):
    nodes: int      # expanded node count (each occurrence of a shared subtree counts)
    depth: int      # expanded nesting depth (a leaf is 1; 0 for no roots)
    distinct: int   # objects met (nodes, and non-nodes where a node should be; see above)
    found: list     # nodes whose class is in `kinds` (each distinct one at least once)


def measure(roots: Iterable, kinds: frozenset = _NO_KINDS) -> Measure:
    """Expanded count and depth of `roots` (see the module docstring), at the cost of one
    pre-order walk for a tree: a plain walk while the count stays within `WALK_CHECK`
    occurrences (most programs; a DAG wastes at most that many steps), else a walk that stops
    at the first non-leaf object met twice, and only then `_measure_shared`, per distinct
    object. All three give the same answer for a tree (tests/test_dag_ir.py)."""
    roots = tuple(roots)
    return (_walk(roots, kinds, WALK_CHECK, None) or _walk(roots, kinds, SATURATED, set())
            or _measure_shared(roots, kinds))


def _walk(roots: tuple, kinds: frozenset, budget: int, seen: set | None) -> Measure | None:
    """A per-occurrence pre-order walk; None when it passes `budget` non-leaf occurrences, or
    (with `seen`) meets a non-leaf object twice, or meets an ill-formed child field."""
    getters = ir.CHILD_GETTERS
    found: list = []
    note = found.append
    inner = depth = leaves = 0
    stack = [(n, 1) for n in reversed(roots)]
    pop, push = stack.pop, stack.append
    mark = None if seen is None else seen.add
    while stack:
        n, d = pop()
        if d > depth:
            depth = d
        t = type(n)
        if t in kinds:
            note(n)
        get = getters.get(t)
        if get is None:
            leaves += 1
            continue
        inner += 1
        if mark is not None:
            mark(id(n))
            if len(seen) != inner:
                return None
        elif inner > budget:
            return None
        d += 1
        try:
            for c in reversed(get(n)):
                push((c, d))
        except TypeError:  # an ill-formed child field: `_measure_shared` counts it a leaf
            return None
    nodes = leaves + inner
    return Measure(nodes, depth, nodes, found)


def _measure_shared(roots: tuple, kinds: frozenset) -> Measure:
    """`measure` in one iterative post-order pass over the distinct objects (memo by id)."""
    getters = ir.CHILD_GETTERS
    memo: dict = {}
    found: list = []
    nodes = depth = 0
    cap = SATURATED
    for root in roots:
        stack = [root]
        pop, push = stack.pop, stack.append
        while stack:
            n = stack[-1]
            k = id(n)
            m = memo.get(k)
            if m is not None and m is not _OPEN:
                pop()
                continue
            t = type(n)
            get = getters.get(t)
            cs = ()
            if get is not None:
                try:
                    cs = tuple(get(n))
                except TypeError:  # an ill-formed child field: the gate says what
                    cs = ()
            if m is None:  # first visit
                if t in kinds:
                    found.append(n)
                if cs:
                    memo[k] = _OPEN
                    cyclic = False
                    for c in cs:
                        mc = memo.get(id(c))
                        if mc is None:
                            push(c)
                        elif mc is _OPEN:  # an ancestor: the tree is infinite
                            cyclic = True
                    if not cyclic:
                        continue
                    memo[k] = (cap, cap)
                else:
                    memo[k] = _LEAF
                pop()
                continue
            # second visit: every child is measured
            size = 1
            high = 0
            for c in cs:
                cn, cd = memo[id(c)]
                size += cn
                if cd > high:
                    high = cd
            memo[k] = (size if size < cap else cap, high + 1 if high < cap else cap)
            pop()
        rn, rd = memo[id(root)]
        nodes += rn
        if nodes > cap:
            nodes = cap
        if rd > depth:
            depth = rd
    return Measure(nodes, depth, len(memo), found)


def collect(roots, kinds, limit: int = MAX_NODES) -> list:
    """Every node of `roots` (an iterable of nodes) whose class is in `kinds`, in pre-order
    (a shared subtree once per occurrence). Iterative, one pass, no generator: the cheap scan
    for Calls and Triples of the write path; `walk_check`ed against `limit`."""
    out: list = []
    kids = ir.CHILD_GETTERS
    roots = tuple(roots)
    stack = list(roots)[::-1]
    pop, extend, append = stack.pop, stack.extend, out.append
    count, at = 0, check_point(limit)
    while stack:
        n = pop()
        count += 1
        if count == at:
            walk_check(roots, limit, count)
        t = type(n)
        if t in kinds:
            append(n)
        try:
            get = kids[t]
        except KeyError:
            get = kids[t] = ir.child_getter(t)
        if get is not None:
            extend(get(n)[::-1])
    return out


def check_point(limit: int) -> int:
    """The count at which a per-occurrence walk under `limit` calls `walk_check`."""
    return min(WALK_CHECK, limit + 1)


def walk_check(roots: Iterable, limit: int, count: int) -> None:
    """For a walk that has met `count` = `check_point(limit)` occurrences of `roots`: past
    `limit` already, or (a large tree, or a DAG) over it once measured → `TooManyNodes`."""
    if count > limit:
        raise TooManyNodes(limit, count)
    check_nodes(roots, limit)


def check_nodes(roots: Iterable, limit: int = MAX_NODES, kinds: frozenset = _NO_KINDS) -> Measure:
    """`measure(roots, kinds)`, or `TooManyNodes` if its expanded count passes `limit`."""
    m = measure(roots, kinds)
    if m.nodes > limit:
        raise TooManyNodes(limit, m.nodes)
    return m


__all__ = ["MAX_NODES", "SATURATED", "WALK_CHECK", "TooManyNodes", "Measure", "measure", "check_nodes", "collect",
           "check_point", "walk_check"]
