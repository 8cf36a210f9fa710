"""Tier 1 closures of the operator and kernel nodes (a mixin of `closure.Compiler`).

In: IR nodes of the operator kinds (Add, Compare, Math, VecOp, MathFunc, Cast, Bitwise, Peek,
Poke, Print, Syscall, Gemv, Dot, Matrix, Norm and the no-op kinds), through the compiler's
`stmt` / `expr_child` / `pure` / `reg` / `engine`.
Out: statement closures `s(st, fr, stk) -> signal` and value closures `e(st, fr) -> value` with
the exact counting, pop order, messages and memory accounting of tier 0.

- Matrix / Norm planes are decoded once per content (`Engine.matrix_weights` / `norm_gain`,
  `kernels.MatrixWeights` / `NormGain`); their closures pop, run the kernel and push with one
  net memory update (both shapes are static). A Matrix of ≥ `HEAVY_WORK` plane bytes checks
  the deadline after its GEMV (a blocked one also between row blocks), decided at compile time.
- Every other kernel on a Vector of ≥ `HEAVY_WORK` elements checks the deadline after it
  (`_heavy`, or `_vec_in` when the result is pushed), off the scalar fast paths.
- Each Syscall argument is a memory check point (docs/decisions.md #15).
- Binary operators with leaf operands (Int, Float, Load) are generated from a source template
  per operand shape (`_make_binary`), the leaves' counting inlined, so `s + i` is one call.
"""

from __future__ import annotations

from time import monotonic_ns

import numpy as np

from nda.core import ir
from nda.runtime import kernels as K
from nda.tiers.closure_rt import (
    _DOT_MSGS, _GEMV_MSGS, _IR_KINDS, _UF1, _UF2, CONTINUE, NdaVec, _heavy, _pop, _push, _wrap,
)
from nda.runtime.state import HEAVY_WORK, type_error, undefined_variable, underflow


class OperatorClosures:
    """`s_*` / `e_*` builders of the operator and kernel kinds (see the module doc)."""

    def s_Matrix(self, n):
        w = self.engine.matrix_weights(n)  # decoded once, cached by content
        self.kernel_bytes += w.nbytes  # (a shared one counts per node: an upper bound)
        apply = w.apply
        scale = n.scale
        out_extra = 2 * ((n.rows + 7) >> 3)  # value_size(out) − 8
        d_vec = out_extra - 2 * ((n.cols + 7) >> 3)  # net when a Vector of len cols is popped
        if 2 * n.rows * ((n.cols + 7) >> 3) >= HEAVY_WORK:  # its plane bytes: ≈ weights / 4
            return self._heavy_matrix(apply, not w.keeps_whole, scale, out_extra, d_vec)

        def matrix(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Matrix")
            if not stk:
                raise underflow("Stack underflow in Matrix GEMV")
            x = stk.pop()
            out = apply(x, scale)  # an error ends the run: the pop's accounting is never seen
            st.matrix_count += 1
            stk.append(out)
            d = d_vec if x.__class__ is NdaVec else out_extra
            if d:
                st.mem_extra += d
                st.recompute_max_entries()
            return CONTINUE
        return matrix

    def _heavy_matrix(self, apply, blocked, scale, out_extra, d_vec):
        """`s_Matrix` for ≥ HEAVY_WORK plane bytes: the deadline is checked after the GEMV (and
        between the row blocks of a blocked matrix)."""
        def matrix_heavy(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Matrix")
            if not stk:
                raise underflow("Stack underflow in Matrix GEMV")
            x = stk.pop()
            out = apply(x, scale, st.check_deadline) if blocked else apply(x, scale)
            if monotonic_ns() > st.deadline_ns:
                st.check_deadline()  # raises
            st.matrix_count += 1
            stk.append(out)
            d = d_vec if x.__class__ is NdaVec else out_extra
            if d:
                st.mem_extra += d
                st.recompute_max_entries()
            return CONTINUE
        return matrix_heavy

    def s_Norm(self, n):
        g = self.engine.norm_gain(n)  # size ≤ 65,535 < HEAVY_WORK: no deadline check
        self.kernel_bytes += g.nbytes
        apply = g.apply
        out_extra = 2 * ((n.size + 7) >> 3)  # a Vector in and out of the same length: net 0

        def norm(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Norm")
            if not stk:
                raise underflow("Stack underflow in Norm")
            x = stk.pop()
            out = apply(x)
            st.norm_count += 1
            stk.append(out)
            if x.__class__ is not NdaVec and out_extra:
                st.mem_extra += out_extra
                st.recompute_max_entries()
            return CONTINUE
        return norm

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
            v = _pop(st, stk, msg)
            _push(st, stk, compute(v))
            if v.__class__ is NdaVec and v.n >= HEAVY_WORK:
                st.check_deadline()  # ReduceSum pushes a Scalar
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
                v = e(st, fr)
                st.emit(line(v))
                if v.__class__ is NdaVec:
                    _heavy(st, v)
                return CONTINUE
            return print_pure
        s = self.stmt(n.source)

        def print_(st, fr, stk):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Print")
            s(st, fr, stk)
            v = _pop(st, stk, "Stack underflow in Print source")
            st.emit(line(v))
            if v.__class__ is NdaVec:
                _heavy(st, v)
            return CONTINUE
        return print_

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
            if l.n >= HEAVY_WORK:
                st.check_deadline()
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
                if len(stk) > st.max_entries:  # each argument is a memory check point
                    st.check_memory()
            if len(stk) < k:
                raise underflow("Stack underflow in Syscall args")
            vals = [_pop(st, stk, "") for _ in range(k)][::-1]
            if num == 1:
                if vals:
                    st.emit(line(vals[0]))
                    _heavy(st, vals[0])
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

    # -- value closures of operators --------------------------------------------------------
    def _operand(self, n):
        """('c', value, kind) for Int/Float leaves, ('l', slot, name) for Load, ('e', closure)."""
        if type(n) not in _IR_KINDS and getattr(n, "compile_expr", None) is not None:
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
            r = slow(op, v)
            if v.__class__ is NdaVec:
                _heavy(st, v)
            return r
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
            r = K.cast(to, e(st, fr), st.input_len)
            if r.__class__ is NdaVec:
                _heavy(st, r)
            return r
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
                r = K.bitwise_not(el(st, fr))
                if r.__class__ is NdaVec:
                    _heavy(st, r)
                return r
            return bit_not
        er = self.expr_child(n.rhs)

        def bitwise(st, fr):
            c = st.executed + 1
            st.executed = c
            if c > st.next_check:
                st.slow_check("Bitwise")
            l = el(st, fr)
            r = K.bitwise(op, l, er(st, fr))
            if r.__class__ is NdaVec:
                _heavy(st, r)
            return r
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
            out = compute(l, r)
            if l.n >= HEAVY_WORK:
                st.check_deadline()
            return out
        return pair

    def e_Gemv(self, n):
        return self._vec_pair_expr(n.matrix, n.vector, "Gemv", _GEMV_MSGS, K.gemv)

    def e_Dot(self, n):
        return self._vec_pair_expr(n.lhs, n.rhs, "Dot", _DOT_MSGS, K.dot)


# ---------------------------------------------------------------------------------------------
# Specialised binary closures (operands inlined: constant, slot load, or closure)


_ADD_FAST = "add"
_CMP_FAST = {0: "==", 1: "!=", 2: "<", 3: ">", 4: "<=", 5: ">="}

_TEMPLATE = '''
def make(kind, A, B, slow, undefined_variable, wrap, heavy, vec):
    def binary(st, fr):
        c = st.executed + 1
        st.executed = c
        if c > st.next_check:
            st.slow_check(kind)
{get_a}
{get_b}
        if a.__class__ is int and b.__class__ is int:
{fast}
        r = slow(a, b)
        if r.__class__ is vec:
            heavy(st, r)
        return r
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
        src = src.replace("def make(kind, A, B, slow, undefined_variable, wrap, heavy, vec):",
                          "def make(kind, A, A_kind, A_name, B, B_kind, B_name, slow, undefined_variable, wrap, heavy, vec):")
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
    return fac(kind, pa[0], pa[1], pa[2], pb[0], pb[1], pb[2], slow, undefined_variable, _wrap, _heavy, NdaVec)
