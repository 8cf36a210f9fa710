"""Tier 1 run-time helpers shared by the closure compiler's modules.

In: the run's `RunState` and its value stack (a list), JitVals.
Out: the statement signals (CONTINUE / BREAK / RETURN), exact stack memory accounting for
Vectors pushed and popped (`_vec_in` / `_vec_out` / `_pop` / `_push`; pushing a Vector of
≥ `HEAVY_WORK` elements checks the deadline, as tier 0 does: the kernel that made it ran),
`_heavy` (the same check after a kernel whose result is not pushed), i32 wrapping and the
underflow / type error messages per node kind and operand.
"""

from __future__ import annotations

from nda.core import ir
from nda.runtime import values as V
from nda.runtime.state import HEAVY_WORK, RunState, underflow

CONTINUE, BREAK, RETURN = 0, 1, 2
# Plain IR node kinds: none has the optimizer nodes' hooks (closure_pure, compile_stmt,
# compile_expr), so the compiler skips looking them up (a failed getattr is slow).
_IR_KINDS = frozenset(ir.NODE_CLASSES)
NdaVec = V.NdaVec
_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1


def _wrap(x: int) -> int:
    return ((x + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def _vec_in(st: RunState, v) -> None:
    """Account for a Vector pushed on the stack (a big one: check the deadline)."""
    st.mem_extra += V.value_size(v) - 8
    st.recompute_max_entries()
    if v.n >= HEAVY_WORK:
        st.check_deadline()


def _heavy(st: RunState, v) -> None:
    """After a kernel on (or making) value `v`: a Vector of ≥ HEAVY_WORK elements checks the
    deadline (docs/decisions.md #5)."""
    if v.__class__ is NdaVec and v.n >= HEAVY_WORK:
        st.check_deadline()


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


def push_value_stmt(e):
    """The statement closure that pushes the value of the value closure `e`."""
    def push_value(st, fr, stk):
        v = e(st, fr)
        stk.append(v)
        if v.__class__ is NdaVec:
            _vec_in(st, v)
        return CONTINUE
    return push_value


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
_GEMV_MSGS = (("Stack underflow in Gemv vector", "Gemv vector operand must be a Vector"),
              ("Stack underflow in Gemv matrix", "Gemv matrix operand must be a Vector"))
_DOT_MSGS = (("Stack underflow in Dot rhs", "Dot rhs operand must be a Vector"),
             ("Stack underflow in Dot lhs", "Dot lhs operand must be a Vector"))


# IR kinds that are never pure (statements, control flow, kernels that pop): no lookup needed
_NEVER_PURE = frozenset(_IR_KINDS - {ir.Int, ir.Float, ir.Load, ir.Add, ir.Compare, ir.Math,
                                     ir.Dot, ir.Gemv, ir.VecOp, ir.MathFunc, ir.Cast, ir.Peek,
                                     ir.Let, ir.Store, ir.Bitwise})


def _is_pure(node: ir.Node, memo: dict) -> bool:
    t = type(node)
    if t in _NEVER_PURE:
        return False
    k = id(node)
    r = memo.get(k)
    if r is not None:
        return r
    # optimizer nodes declare their purity
    ext = None if t in _IR_KINDS else getattr(node, "closure_pure", None)
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
