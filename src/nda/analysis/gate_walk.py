"""The gate's structure walk, with one recursive function per node kind.

In: the gate's field plans (`gate._PLANS`: per class, (field, kind, category, a, b)), built once
into walkers by `make_walkers`; then per unit `walk_roots(walkers, unit, roots, limit)` with the
unit whose `check(n)` is the full check of one node (it reports findings and returns the
well-typed children).
Out: (per root: (its node count, whether a Loop or While occurs in it), the deepest node's
depth), with `unit.check` called, in pre-order, on exactly the nodes whose fields are not all
well formed (those and the kinds that always need it: plane kinds, Calls, Bitwise, Triple).
Raises `Bail` when a node lies deeper than `limit` and `RecursionError` when the tree is deeper
than Python's stack (and lets `unit.size_check`'s `dag.TooManyNodes` through: a DAG built
through the API is measured once `check_at` leaves are met; a tree has at least one leaf per
`limit` nodes, so this bounds the walk): the caller then undoes what `check` recorded and runs its general walk,
which reports the depth finding.

Why: the general walk pushes a (node, depth) pair per node and dispatches through a table;
here each kind's fields are read and checked by straight-line code generated from its plan,
and the depth is only compared at nodes without children (the deepest node is one of them).
"""

from __future__ import annotations

from typing import Any, Callable


class Bail(Exception):
    """A node lies deeper than the limit: the general walk must report it."""


def walk_roots(walkers: dict, unit: Any, roots, limit: int, check_at: int = -1) -> tuple[list, int]:
    """See the module docstring; `roots` must all be nodes (of exact node classes). When
    `check_at` leaves have been met, `unit.size_check(check_at)` is called once (it measures
    the roots, which may share subtrees, and raises if the expanded tree is too big)."""
    # deepest depth seen, loop seen, limit, unit, leaves met, when to call size_check
    ctx = [0, False, limit, unit, 0, check_at]
    sizes = []
    for root in roots:
        ctx[1] = False
        sizes.append((walkers[type(root)](root, 1, ctx), ctx[1]))
    return sizes, ctx[0]


def _leaf(c: list, d: int) -> None:
    """A node without children at depth `d`: count the leaf (the node budget's check point),
    record the depth, `Bail` past the limit. The generated walkers inline `_LEAF`."""
    c[4] += 1
    if c[4] == c[5]:
        c[3].size_check(c[4])
    if d > c[0]:
        if d > c[2]:
            raise Bail
        c[0] = d


# `_leaf` as straight-line code for the generated walkers ({d}: the depth variable)
_LEAF = """\
c[4] += 1
if c[4] == c[5]:
    c[3].size_check(c[4])
if {d} > c[0]:
    if {d} > c[2]:
        raise Bail
    c[0] = {d}"""


def _indented(text: str, by: str) -> str:
    return "\n".join(by + line for line in text.split("\n"))


_LEAF_END = _indented(_LEAF.format(d="d"), "    ") + "\n    return 1"
_LIST_LEAF_END = "    if s == 1:\n" + _indented(_LEAF.format(d="e"), "        ") + "\n    return s"


def make_walkers(plans: dict, slow_kinds: frozenset, loop_kinds: frozenset,
                 node_types: frozenset) -> dict:
    """class → walker for every class of `plans` (see the module docstring). `slow_kinds`:
    classes always checked by `unit.check`; a plan field of category 0 other than an
    optional child makes its class slow too."""
    walkers: dict[type, Callable] = {}

    def slow(n, d, c):
        kids = c[3].check(n)
        if type(n) in loop_kinds:
            c[1] = True
        if not kids:
            _leaf(c, d)
            return 1
        s = 1
        d += 1
        for x in kids:
            s += walkers[type(x)](x, d, c)
        return s

    for cls, plan in plans.items():
        fn = None if cls in slow_kinds else _generate(cls, plan, loop_kinds, node_types, walkers, slow)
        walkers[cls] = fn if fn is not None else slow
    return walkers


def _generate(cls, plan, loop_kinds, node_types, walkers, slow) -> Callable | None:
    checks: list[str] = []
    visits: list[str] = []  # statements that walk the children, in field order
    consts: dict[str, Any] = {"NT": node_types, "W": walkers, "slow": slow, "Bail": Bail,
                              "ALL": node_types.issuperset}
    for i, (f, fk, cat, a, b) in enumerate(plan):
        v = f"v{i}"
        checks.append(f"    {v} = n.{f}")
        if cat == 1:
            checks.append(f"    if type({v}) not in NT:\n        return slow(n, d, c)")
            visits.append(f"    s += W[type({v})]({v}, d, c)")
        elif cat == 2:
            checks.append(f"    if type({v}) is not tuple or not ALL(map(type, {v})):\n        return slow(n, d, c)")
            visits.append(f"    for x in {v}:\n        s += W[type(x)](x, d, c)")
        elif cat == 3:
            consts[f"LO{i}"], consts[f"HI{i}"] = a, b
            checks.append(f"    if type({v}) is not int or not LO{i} <= {v} <= HI{i}:\n        return slow(n, d, c)")
        elif cat == 4:
            consts[f"EN{i}"], consts[f"VA{i}"] = a, b
            checks.append(f"    if not (type({v}) is EN{i} or type({v}) is int and {v} in VA{i}):\n"
                          f"        return slow(n, d, c)")
        elif fk == "optnode":  # None, or a node
            checks.append(f"    if {v} is not None and type({v}) not in NT:\n        return slow(n, d, c)")
            visits.append(f"    if {v} is not None:\n        s += W[type({v})]({v}, d, c)")
        elif fk == "optnodes":  # None, or a tuple of nodes
            checks.append(f"    if {v} is not None and (type({v}) is not tuple or not ALL(map(type, {v}))):\n"
                          f"        return slow(n, d, c)")
            visits.append(f"    if {v} is not None:\n        for x in {v}:\n            s += W[type(x)](x, d, c)")
        else:  # planes, call targets: the full check
            return None
    body = list(checks)
    if cls in loop_kinds:
        body.append("    c[1] = True")
    if not visits:
        body.append(_LEAF_END)
    else:
        # a node whose child lists are all empty is a leaf for the depth
        body += ["    e = d", "    d += 1", "    s = 1", *visits, _LIST_LEAF_END]
    names = ", ".join(consts)
    src = (f"def make({names}):\n    def walk_{cls.__name__}(n, d, c):\n"
           + "\n".join("    " + line for line in "\n".join(body).split("\n"))
           + f"\n    return walk_{cls.__name__}\n")
    ns: dict = {}
    exec(compile(src, f"<gate_walk {cls.__name__}>", "exec"), {}, ns)  # noqa: S102 — generated from the plan
    fn = ns["make"](*consts.values())
    fn.source = src
    return fn
