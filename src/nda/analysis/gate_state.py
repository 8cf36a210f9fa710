"""The gate's abstract states: values, persistent stacks and environments, joins.

In: abstract values pushed, popped and bound by `gate_absint.Frame`.
Out: `St(stack, env, clean)` states and their operations (`push`, `join`, `join_out`,
`merged`), and `Names` (the names bound earlier in evaluation order, with an undo log), built so that every operation on straight-line code is O(1) and a join
costs only what differs between its operands (the gate stays linear in the program size).

Abstract values (a plain `str` or `int`): `"i"` Int0 = `Scalar(_, 0)`, `"s"` any Scalar,
`"f"` Float, `n: int` Vec(n), `"v"` Vec(?), `"a"` Any.

- `Stk`: a persistent cons list (top, rest) with its depth and the running lower bound of the
  bytes its values need (runtime.md §5 accounting) and whether that bound is exact, so the
  memory check at a statement boundary is O(1). Every stack ends in the one `EMPTY` cell, so two
  stacks derived from a common one share their tail (`join` and `==` stop there).
- env: a persistent hash trie (a dict of ≤ 32 entries per level, keyed by 5 bits of the name
  hash; a slot holds a `(name, value)` leaf or a sub-trie of ≥ 2 names). Binding copies one
  small dict per level; a join or an equality test skips the sub-tries both sides share. The
  shape depends only on the set of names (a sub-trie left with one leaf is lifted), so `==` on
  tries is `==` on the maps they hold.
"""

from __future__ import annotations

from typing import NamedTuple

I0, SC, FL, VQ, AN = "i", "s", "f", "v", "a"
NONVEC = (I0, SC, FL)


def is_vec(x) -> bool:
    return type(x) is int or x == VQ


def vlen(x):
    return x if type(x) is int else None


def join_val(a, b):
    if a == b:
        return a
    if is_vec(a) and is_vec(b):
        return VQ
    if a in (I0, SC) and b in (I0, SC):
        return SC
    return AN


# ---------------------------------------------------------------------------------------------
# Stacks


class Stk:
    """One cell of a persistent stack; `EMPTY` is the bottom of every stack."""

    __slots__ = ("top", "rest", "depth", "used", "exact")

    def __init__(self, top, rest: "Stk"):
        self.top = top
        self.rest = rest
        self.depth = rest.depth + 1
        if type(top) is int:
            self.used = rest.used + 8 + 2 * ((top + 7) >> 3)
            self.exact = rest.exact
        else:
            self.used = rest.used + 8
            self.exact = rest.exact and top in NONVEC

    def __eq__(self, other) -> bool:
        if type(other) is not Stk:
            return NotImplemented
        a, b = self, other
        while a is not b:
            if a.depth != b.depth or a.top != b.top:
                return False
            a, b = a.rest, b.rest
        return True

    def __hash__(self) -> int:
        return hash((self.depth, self.used))

    def values(self) -> tuple:
        """Bottom first (for tests and debugging)."""
        out = []
        s = self
        while s.depth:
            out.append(s.top)
            s = s.rest
        return tuple(reversed(out))

    def __repr__(self) -> str:
        return f"Stk{self.values()!r}"


def _empty() -> Stk:
    e = Stk.__new__(Stk)
    e.top, e.rest, e.depth, e.used, e.exact = None, None, 0, 0, True
    return e


EMPTY = _empty()


def join_stack(a: Stk, b: Stk) -> Stk:
    """Element-wise join of two stacks of equal depth (walks only down to the shared tail)."""
    if a is b:
        return a
    tops = []
    same = True
    x, y = a, b
    while x is not y:
        v = join_val(x.top, y.top)
        if v != x.top:
            same = False
        tops.append(v)
        x, y = x.rest, y.rest
    if same:
        return a
    out = x
    for v in reversed(tops):
        out = Stk(v, out)
    return out


# ---------------------------------------------------------------------------------------------
# Environments (persistent hash trie; see the module docstring)


def env_get(node: dict, k, default):
    shift = 0
    while True:
        c = node.get((k >> shift) & 31)
        if c is None:
            return default
        if type(c) is tuple:
            return c[1] if c[0] == k else default
        node = c
        shift += 5


def env_set(node: dict, k, v, shift: int = 0) -> dict:
    i = (k >> shift) & 31
    c = node.get(i)
    if c is None:
        new = node.copy()
        new[i] = (k, v)
        return new
    if type(c) is tuple:
        if c[0] == k:
            if c[1] == v and type(c[1]) is type(v):
                return node
            new = node.copy()
            new[i] = (k, v)
            return new
        sub = env_set(env_set({}, c[0], c[1], shift + 5), k, v, shift + 5)
    else:
        sub = env_set(c, k, v, shift + 5)
        if sub is c:
            return node
    new = node.copy()
    new[i] = sub
    return new


def env_join(a: dict, b: dict, shift: int = 0) -> dict:
    """The names bound in both, each with the join of its two values."""
    if a is b:
        return a
    out = {}
    same = len(a) == len(b)
    for i, ca in a.items():
        cb = b.get(i)
        if cb is None:
            same = False
            continue
        if ca is cb:
            out[i] = ca
            continue
        if type(ca) is tuple:
            other = cb[1] if type(cb) is tuple and cb[0] == ca[0] else \
                env_get(cb, ca[0], _MISSING) if type(cb) is dict else _MISSING
            if other is _MISSING:
                same = False
                continue
            v = join_val(ca[1], other)
            if v == ca[1] and type(cb) is tuple:
                out[i] = ca
                if ca != cb:
                    same = False
            else:
                out[i] = (ca[0], v)
                same = False
            continue
        same = False
        if type(cb) is tuple:
            other = env_get(ca, cb[0], _MISSING)
            if other is not _MISSING:
                out[i] = (cb[0], join_val(other, cb[1]))
            continue
        sub = env_join(ca, cb, shift + 5)
        if len(sub) == 1:
            (only,) = sub.values()
            if type(only) is tuple:
                out[i] = only  # lift a lone leaf: the shape stays canonical
                continue
        if sub:
            out[i] = sub
    return a if same else out


_MISSING = object()


def env_items(node: dict):
    """Every (name, value) of a trie (for tests and debugging)."""
    for c in node.values():
        if type(c) is tuple:
            yield c
        else:
            yield from env_items(c)


# ---------------------------------------------------------------------------------------------
# Names bound earlier in evaluation order


class Names:
    """The names bound earlier in evaluation order: a set with an undo log.

    The frame's walk only ever adds names, except between the two branches of an If (the else
    branch must not see the then branch's Lets): `mark()` before, `undo(mark)` after. Each
    name is added at most once per visit of a binding node's enclosing sequence, so the check
    stays O(1) per Load (a frozenset rebuilt per new name was O(#names))."""

    __slots__ = ("set", "log")

    def __init__(self):
        self.set: set = set()
        self.log: list = []

    def add(self, names) -> None:
        have = self.set
        for nm in names:
            if nm not in have:
                have.add(nm)
                self.log.append(nm)

    def __contains__(self, nm) -> bool:
        return nm in self.set

    def mark(self) -> int:
        return len(self.log)

    def undo(self, mark: int) -> None:
        log, have = self.log, self.set
        while len(log) > mark:
            have.discard(log.pop())


# ---------------------------------------------------------------------------------------------
# States and outcomes


class St(NamedTuple):
    stack: Stk | None
    env: dict
    clean: bool


class Outcome(NamedTuple):
    cont: St | None
    brk: St | None
    ret: St | None


UNK = St(None, {}, False)
NONE_OUT = Outcome(None, None, None)
FAIL_OWN = Outcome(None, None, None)  # distinct object: the node itself reported a failure


def join(a: St | None, b: St | None) -> St | None:
    if a is None:
        return b
    if b is None or a is b:
        return a
    sa, sb = a.stack, b.stack
    if sa is None or sb is None or sa.depth != sb.depth:
        return UNK
    stack = join_stack(sa, sb)
    env = env_join(a.env, b.env)
    clean = a.clean and b.clean
    if stack is sa and env is a.env and clean == a.clean:
        return a
    return St(stack, env, clean)


def join_out(a: Outcome, b: Outcome) -> Outcome:
    return Outcome(join(a.cont, b.cont), join(a.brk, b.brk), join(a.ret, b.ret))


def merged(o: Outcome) -> St | None:
    """The state after an expression child (its Break/Return signal is ignored)."""
    if o.brk is None and o.ret is None:
        return o.cont
    return join(join(o.cont, o.brk), o.ret)


def push(s: St, v) -> St:
    return s if s.stack is None else St(Stk(v, s.stack), s.env, s.clean)


def program_start(input_len: int | None) -> St:
    """The program's initial abstract state: [Vec(len(input))] with nothing below."""
    return St(Stk(VQ if input_len is None else input_len, EMPTY), {}, True)
