"""The gate's expression fast path: the abstract value of a pure expression tree in one recursion.

In: an expression node, the abstract environment and bound names at it, whether the stack is
known, and the analysing `gate_absint.Frame` (for its budget and its findings collector).
Out: `ev(...)` — the abstract value the tree pushes, or `FAILED` when it cannot complete (a
finding was recorded, or a child failed); it raises `Impure` at the first node that is not a
pure expression (then the caller runs the general path on the whole tree: every side effect of
the fast path — ids marked ok, findings, budget once restored — is one the general path repeats
identically). Every node the `Impure` passes through is noted in `fr.impure`, so the general
path never tries `ev` on it again (a pure chain over an impure leaf costs linear time, not
quadratic). Also the value rules that both paths share (`add_value`, `compare_value`, …), so
a rule and its message are written once.

A *pure* expression (Int, Float, Load, Add, Compare, Math, MathFunc, VecOp, Cast, Peek,
Bitwise, whose children are pure too) binds no name, never signals, leaves env and memory
alone and pushes exactly one value, popping only what its own children pushed — so on a known
stack no pop can underflow and the general path's per-node states (`St`, `Stk`, `Outcome`) are
not needed: the value alone is threaded. On an unknown stack every pop yields Any, as there.
"""

from __future__ import annotations

from typing import Any

from nda.analysis.gate_state import AN, FL, I0, NONVEC, SC, VQ, env_get, is_vec, vlen
from nda.core import ir
from nda.runtime.state import HEAP_BYTES

MMIO_BASE = 0xF0000000  # MMIO keys are only ever created at or above this address


class _Failed:
    """The sentinel type of `FAILED`."""

    __slots__ = ()


FAILED = _Failed()  # the expression cannot complete (its value is never pushed)


class Impure(Exception):
    """`ev` met a node that is not a pure expression."""


def const_truth(n: Any):
    """True/False for a well-formed Int or Float literal condition (truthy = value > 0), else
    None (unknown: an ill-formed literal has its STRUCTURE finding already)."""
    t = type(n)
    if t is ir.Int:
        v = n.value
        return v > 0 if type(v) is int else None
    if t is ir.Float:
        b = n.bits
        if type(b) is not int or not 0 <= b < 1 << 32:
            return None
        v = n.value
        return v > 0 if v == v else False
    return None


def const_addr(n: Any):
    """The u32 address an Int literal address operand converts to, else None."""
    return n.value & 0xFFFFFFFF if type(n) is ir.Int else None


# ---------------------------------------------------------------------------------------------
# Value rules (tier 0's messages); `fr.fail` records a finding on the frame's current collector


def add_value(fr, n, l, r):
    if l == I0 and r == I0:
        return I0
    if is_vec(l) or is_vec(r):
        if is_vec(l) and is_vec(r):
            a, b = vlen(l), vlen(r)
            if a is not None and b is not None and a != b:
                fr.fail(n, f"Add dimension mismatch: lhs len {a} \u2260 rhs len {b}",
                        "both operands are vectors of these lengths on every path")
                return FAILED
            return a if a is not None else (b if b is not None else VQ)
        return l if is_vec(l) else r  # the other one is broadcast (or equal on success)
    if AN in (l, r):
        return AN
    return FL if FL in (l, r) else SC


def compare_value(l, r):
    if is_vec(l) or is_vec(r):
        nl = vlen(l) if is_vec(l) else (1 if l in NONVEC else None)
        nr = vlen(r) if is_vec(r) else (1 if r in NONVEC else None)
        return max(nl, nr) if nl is not None and nr is not None else VQ
    return AN if AN in (l, r) else I0


def math_value(fr, n, l, r):
    if is_vec(l) or is_vec(r):
        fr.fail(n, "Unsupported type mismatch in Math", "an operand is a Vector on every path")
        return FAILED
    return FL


def vecop_value(n, x):
    op = n.op
    if op in (1, 2):
        return x
    if op == 3:
        return SC if is_vec(x) else x
    if op == 0:
        return SC if x in (I0, SC) else x
    return AN


def mathfunc_value(fr, n, x):
    if is_vec(x):
        fr.fail(n, "MathFunc operand must be scalar", "the operand is a Vector on every path")
        return FAILED
    return FL


def cast_value(fr, n, x):
    to = n.to_type
    if to in (0, 1):
        if is_vec(x):
            word = "Int" if to == 0 else "Float"
            fr.fail(n, f"Cannot cast Vector to {word}", "the operand is a Vector on every path")
            return FAILED
        return I0 if to == 0 else FL
    if to == 2:
        if is_vec(x):
            return x
        if x in NONVEC and fr.input_len is not None:
            return fr.input_len
        return VQ
    return AN


def peek_value(fr, n, a):
    if is_vec(a):
        fr.fail(n, "Peek address must be scalar", "the address is a Vector on every path")
        return FAILED
    addr = const_addr(n.addr)
    if addr is not None and HEAP_BYTES < addr + 4 and addr < MMIO_BASE:
        fr.fail(n, f"Out of bounds MMIO/heap read at address {addr}",
                "a constant address outside the heap that can never be an MMIO key")
        return FAILED
    return AN


def bitwise_value(l, r):
    if is_vec(l) or is_vec(r):
        if is_vec(l) and is_vec(r):
            a, b = vlen(l), vlen(r)
            return min(a, b) if a is not None and b is not None else VQ
        v, other = (l, r) if is_vec(l) else (r, l)
        return v if other in NONVEC else VQ
    if AN in (l, r):
        return AN
    if FL in (l, r):
        return FL
    return l


# ---------------------------------------------------------------------------------------------
# The fast path

_Int, _Float, _Load, _Add, _Compare, _Math = ir.Int, ir.Float, ir.Load, ir.Add, ir.Compare, ir.Math
_MathFunc, _VecOp, _Cast, _Peek, _Bitwise = ir.MathFunc, ir.VecOp, ir.Cast, ir.Peek, ir.Bitwise
_NOT = ir.BitwiseOp.Not
PURE = frozenset((_Int, _Float, _Load, _Add, _Compare, _Math, _MathFunc, _VecOp, _Cast, _Peek, _Bitwise))


def ev(fr, n, env: dict, names: set, known: bool, ok: set):
    """The value pure expression `n` pushes (`names`: the set of names bound before it) (Any for every pop when `known` is False), or
    FAILED; `ok` gets the id of every node that did not fail on its own and can fail on its
    own somewhere (Load, Add, Math, MathFunc, Cast, Peek: findings are keyed by node, and a
    node reported in one pass but not in another is dropped; a pure node's own pops never
    underflow, so Int, Float, Compare, VecOp and Bitwise never fail on their own).
    The operands of Add/Compare/Math that are Int literals or bound Loads are met inline (no
    call of their own); everything else recurses."""
    try:
        t = type(n)
        if t is _Int:
            fr.budget -= 1
            return I0
        if t is _Load:
            fr.budget -= 1
            if n.name not in names:
                fr.fail(n, f"undefined variable (hash {n.name:016x})",
                        "no Let/Store of this variable runs earlier in this frame")
                return FAILED
            ok.add(id(n))
            return env_get(env, n.name, AN) if known else AN
        if t is _Add or t is _Compare or t is _Math:
            fr.budget -= 1
            a = n.lhs
            ta = type(a)
            if ta is _Int:
                fr.budget -= 1
                l = I0
            elif ta is _Load and a.name in names:
                fr.budget -= 1
                ok.add(id(a))
                l = env_get(env, a.name, AN) if known else AN
            else:
                l = ev(fr, a, env, names, known, ok)
                if l is FAILED:
                    ok.add(id(n))
                    return FAILED
            a = n.rhs
            ta = type(a)
            if ta is _Int:
                fr.budget -= 1
                r = I0
            elif ta is _Load and a.name in names:
                fr.budget -= 1
                ok.add(id(a))
                r = env_get(env, a.name, AN) if known else AN
            else:
                r = ev(fr, a, env, names, known, ok)
                if r is FAILED:
                    ok.add(id(n))
                    return FAILED
            if not known:  # every pop is Any: no rule can fail
                if t is _Compare:
                    return AN
                ok.add(id(n))
                return AN if t is _Add else FL
            if t is _Compare:
                return compare_value(l, r)
            if t is _Add:
                if l == I0 and r == I0:
                    ok.add(id(n))
                    return I0
                v = add_value(fr, n, l, r)
            else:
                v = math_value(fr, n, l, r)
            if v is not FAILED:
                ok.add(id(n))
            return v
        fr.budget -= 1
        if t is _Float:
            return FL
        if t is _MathFunc or t is _VecOp or t is _Cast or t is _Peek:
            x = ev(fr, n.addr if t is _Peek else n.operand, env, names, known, ok)
            if x is FAILED:
                ok.add(id(n))
                return FAILED
            if not known:
                x = AN
            if t is _VecOp:
                return vecop_value(n, x)
            if t is _MathFunc:
                v = mathfunc_value(fr, n, x)
            elif t is _Cast:
                v = cast_value(fr, n, x)
            else:
                v = peek_value(fr, n, x)
            if v is not FAILED:
                ok.add(id(n))
            return v
        if t is _Bitwise:
            l = ev(fr, n.lhs, env, names, known, ok)
            if not known and l is not FAILED:
                l = AN
            if l is FAILED or n.op == _NOT or n.rhs is None:  # a missing rhs: the structure check's
                return FAILED if l is FAILED or n.rhs is None and n.op != _NOT else l
            r = ev(fr, n.rhs, env, names, known, ok)
            if r is FAILED:
                return FAILED
            return bitwise_value(l, AN if not known else r)
        raise Impure
    except Impure:
        fr.impure.add(id(n))  # this tree is not pure: the general path takes it from now on
        raise
