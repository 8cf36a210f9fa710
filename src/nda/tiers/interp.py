"""Tier 0: the tree-walking reference interpreter — the oracle every other tier must match.

In: a top-level sequence of nodes and a prepared `RunState` (stack seeded with the quantized
conditioning vector, limits, resolver for Calls).
Out: the state after the run (stack, log, counters); failures raise `NdaRuntimeError`.

It follows language.md §1–§3 literally: variables live in a dict keyed by name hash, every node
evaluation is counted before anything else happens, kernels come from `kernels`/`values`, and
nothing is cached or optimized. When tiers disagree, this file is right (or the spec is wrong).

Host-safety rules beyond the spec (docs/decisions.md #5, #14, #15; the same in every tier):
a Loop with an empty body skips its iterations (nothing observable happens in them); each
Syscall argument is a memory check point; a kernel that processes ≥ `HEAVY_WORK` elements
checks the clock right after it (pushing such a Vector counts).

A failure records its innermost node on the exception (`e.node`): the sandbox keeps it so that
surfaces can show the span of the statement that failed.

Signals: CONTINUE, BREAK, RETURN. Only sequences (Scope children, loop bodies, If branches,
the top level) look at the signal of their elements; the signal of an expression child
(an operand, a condition, a Return value) is ignored, as in the original closure JIT.
"""

from __future__ import annotations

import numpy as np

from nda.core import ir
from nda.core.dag import measure
from nda.core.deepstack import call_nested
from nda.core.errors import NdaError
from nda.runtime import kernels as K
from nda.runtime import values as V
from nda.runtime.state import (
    HEAVY_WORK, RunState, call_depth_error, nesting_error, node_count_error, target_not_found, type_error,
    undefined_variable, underflow, while_limit_error,
)

CONTINUE, BREAK, RETURN = 0, 1, 2


class Interpreter:
    """Evaluates nodes against one RunState; `frame` is the current variable dict."""

    def __init__(self, state: RunState):
        self.st = state
        self.frame: dict[int, object] = {}
        self.sizes: dict[int, tuple] = {}  # id(callee node) → (node, its dag.measure): one per run

    # -- stack with exact memory accounting -------------------------------------------------
    def push(self, v) -> None:
        if type(v) is V.NdaVec:
            self.st.mem_extra += V.value_size(v) - 8
            if v.n >= HEAVY_WORK:  # the kernel that made v ran: a big one checks the clock
                self.st.check_deadline()
        self.st.stack.append(v)

    def heavy(self, work: int) -> None:
        """After a kernel that processed `work` elements: a costly one checks the deadline."""
        if work >= HEAVY_WORK:
            self.st.check_deadline()

    def pop(self, message: str):
        st = self.st
        if not st.stack:
            raise underflow(message)
        v = st.stack.pop()
        if type(v) is V.NdaVec:
            st.mem_extra -= V.value_size(v) - 8
        return v

    def peek(self, message: str):
        if not self.st.stack:
            raise underflow(message)
        return self.st.stack[-1]

    # -- sequences ----------------------------------------------------------------------------
    def run_seq(self, nodes) -> int:
        for n in nodes:
            sig = self.eval(n)
            self.st.check_memory()  # statement boundary
            if sig != CONTINUE:
                return sig
        return CONTINUE

    # -- one node -----------------------------------------------------------------------------
    def eval(self, node: ir.Node) -> int:
        st = self.st
        try:
            st.executed += 1
            if st.executed > st.next_check:
                st.slow_check(type(node).__name__)
            return getattr(self, "eval_" + type(node).__name__)(node)
        except NdaError as e:  # the innermost failing node, for the error's span
            if getattr(e, "node", None) is None:
                e.node = node
            raise

    def eval_Scope(self, n: ir.Scope) -> int:
        return self.run_seq(n.children)

    def eval_Matrix(self, n: ir.Matrix) -> int:
        x = self.pop("Stack underflow in Matrix GEMV")
        w = K.matrix_weights(n.rows, n.cols, n.sign, n.extra)
        out = K.matrix_apply(w, n.cols, n.scale, x, self.st.check_deadline)
        self.heavy(2 * n.rows * ((n.cols + 7) >> 3))  # plane bytes: a weight is cheap
        self.st.matrix_count += 1
        self.push(out)
        return CONTINUE

    def eval_Norm(self, n: ir.Norm) -> int:
        x = self.pop("Stack underflow in Norm")
        out = K.NormGain(n.size, n.weight, n.bias).apply(x)
        self.st.norm_count += 1
        self.push(out)
        return CONTINUE

    def eval_Call(self, n: ir.Call) -> int:
        st = self.st
        if st.call_depth == st.limits.max_call_depth:
            raise call_depth_error(st.limits.max_call_depth)
        callee = st.resolver.resolve_call(n.target, st.group) if st.resolver is not None else None
        if callee is None:
            raise target_not_found(n.target)
        hit = self.sizes.get(id(callee.node))
        if hit is None or hit[0] is not callee.node:  # measured once per callee and run
            hit = self.sizes[id(callee.node)] = (callee.node, measure((callee.node,)))  # linear even for a DAG
        size = hit[1]
        depth = size.depth
        if depth > st.limits.max_node_depth:
            raise nesting_error(st.limits.max_node_depth)
        if size.nodes > st.limits.max_nodes:
            raise node_count_error(st.limits.max_nodes, size.nodes)
        saved = (self.frame, st.group)
        self.frame, st.group = {}, callee.group
        st.call_depth += 1
        try:
            # Break/Return of the callee are discarded; a big-stack worker if the stack is short
            call_nested(lambda: self.eval(callee.node), st, depth)
        finally:
            st.call_depth -= 1
            self.frame, st.group = saved
        return CONTINUE

    def eval_Int(self, n: ir.Int) -> int:
        self.push(n.value)
        return CONTINUE

    def eval_Loop(self, n: ir.Loop) -> int:
        self.st.loop_iterations += 1
        if not n.body:
            return CONTINUE  # no node, no check point, no signal in any iteration: skip them
        for _ in range(n.count):
            sig = self.run_seq(n.body)
            if sig == BREAK:
                break
            if sig == RETURN:
                return RETURN
        return CONTINUE

    def eval_While(self, n: ir.While) -> int:
        st = self.st
        st.loop_iterations += 1
        iters = 0
        while True:
            self.eval(n.cond)
            c = self.pop("Stack underflow in While condition")
            if not V.truthy(c):
                break
            sig = self.run_seq(n.body)
            if sig == BREAK:
                break
            if sig == RETURN:
                return RETURN
            iters += 1
            if iters >= st.limits.max_while_iterations:
                raise while_limit_error(st.limits.max_while_iterations)
        return CONTINUE

    def eval_If(self, n: ir.If) -> int:
        self.eval(n.cond)
        c = self.pop("Stack underflow in If condition")
        if V.truthy(c):
            return self.run_seq(n.then_body)
        if n.else_body is not None:
            return self.run_seq(n.else_body)
        return CONTINUE

    def eval_Compare(self, n: ir.Compare) -> int:
        self.eval(n.lhs)
        self.eval(n.rhs)
        r = self.pop("Stack underflow in Compare rhs")
        l = self.pop("Stack underflow in Compare lhs")
        self.push(K.compare(n.op, l, r))
        return CONTINUE

    def eval_Let(self, n: ir.Let) -> int:
        self.eval(n.init)
        self.frame[n.name] = self.peek("Stack underflow in Let init")
        return CONTINUE

    def eval_Load(self, n: ir.Load) -> int:
        if n.name not in self.frame:
            raise undefined_variable(n.name)
        self.push(self.frame[n.name])
        return CONTINUE

    def eval_Store(self, n: ir.Store) -> int:
        self.eval(n.value)
        self.frame[n.name] = self.peek("Stack underflow in Store value")
        return CONTINUE

    def eval_Add(self, n: ir.Add) -> int:
        self.eval(n.lhs)
        self.eval(n.rhs)
        r = self.pop("Stack underflow in Add rhs")
        l = self.pop("Stack underflow in Add lhs")
        self.push(K.add_vals(l, r))
        return CONTINUE

    def eval_VecOp(self, n: ir.VecOp) -> int:
        self.eval(n.operand)
        v = self.pop("Stack underflow in VecOp operand")
        self.push(K.vecop(n.op, v))
        if type(v) is V.NdaVec:
            self.heavy(v.n)  # ReduceSum pushes a Scalar
        return CONTINUE

    def eval_Print(self, n: ir.Print) -> int:
        self.eval(n.source)
        v = self.pop("Stack underflow in Print source")
        self.st.emit(K.print_line(v))
        if type(v) is V.NdaVec:
            self.heavy(v.n)
        return CONTINUE

    def eval_Return(self, n: ir.Return) -> int:
        self.eval(n.value)
        return RETURN

    def eval_Break(self, n: ir.Break) -> int:
        return BREAK

    def eval_Bitwise(self, n: ir.Bitwise) -> int:
        self.eval(n.lhs)
        l = self.pop("Stack underflow in Bitwise lhs")
        if n.op == ir.BitwiseOp.Not:
            self.push(K.bitwise_not(l))
            return CONTINUE
        if n.rhs is None:
            raise type_error("Missing rhs for binary Bitwise op")
        self.eval(n.rhs)
        r = self.pop("Stack underflow in Bitwise rhs")
        self.push(K.bitwise(n.op, l, r))
        return CONTINUE

    def eval_Float(self, n: ir.Float) -> int:
        self.push(np.array(n.bits, dtype=np.uint32).view(np.float32)[()])
        return CONTINUE

    def eval_Math(self, n: ir.Math) -> int:
        self.eval(n.lhs)
        self.eval(n.rhs)
        r = self.pop("Stack underflow in Math rhs")
        l = self.pop("Stack underflow in Math lhs")
        self.push(K.math(n.op, l, r))
        return CONTINUE

    def eval_MathFunc(self, n: ir.MathFunc) -> int:
        self.eval(n.operand)
        v = self.pop("Stack underflow in MathFunc")
        self.push(K.mathfunc(n.func, v))
        return CONTINUE

    def eval_Peek(self, n: ir.Peek) -> int:
        self.eval(n.addr)
        a = self.pop("Stack underflow in Peek")
        self.push(K.peek(self.st.machine, a))
        return CONTINUE

    def eval_Poke(self, n: ir.Poke) -> int:
        self.eval(n.addr)
        self.eval(n.value)
        v = self.pop("Stack underflow in Poke value")
        a = self.pop("Stack underflow in Poke address")
        if K.poke(self.st.machine, a, v):  # True: the write went to the MMIO map
            self.st.check_memory()
        return CONTINUE

    def eval_Gemv(self, n: ir.Gemv) -> int:
        self.eval(n.matrix)
        self.eval(n.vector)
        v = self.pop("Stack underflow in Gemv vector")
        if type(v) is not V.NdaVec:
            raise type_error("Gemv vector operand must be a Vector")
        m = self.pop("Stack underflow in Gemv matrix")
        if type(m) is not V.NdaVec:
            raise type_error("Gemv matrix operand must be a Vector")
        self.push(K.gemv(m, v))
        self.heavy(m.n)
        return CONTINUE

    def eval_Dot(self, n: ir.Dot) -> int:
        self.eval(n.lhs)
        self.eval(n.rhs)
        r = self.pop("Stack underflow in Dot rhs")
        if type(r) is not V.NdaVec:
            raise type_error("Dot rhs operand must be a Vector")
        l = self.pop("Stack underflow in Dot lhs")
        if type(l) is not V.NdaVec:
            raise type_error("Dot lhs operand must be a Vector")
        self.push(K.dot(l, r))
        self.heavy(l.n)
        return CONTINUE

    def eval_Syscall(self, n: ir.Syscall) -> int:
        for a in n.args:
            self.eval(a)
            self.st.check_memory()  # each argument is a memory check point (decisions #2)
        k = len(n.args)
        if len(self.st.stack) < k:
            raise underflow("Stack underflow in Syscall args")
        args = [self.pop("Stack underflow in Syscall args") for _ in range(k)][::-1]
        if n.num == 1:
            if args:
                self.st.emit(K.syscall_print_line(args[0]))
                if type(args[0]) is V.NdaVec:
                    self.heavy(args[0].n)
        else:
            self.push(0)
        return CONTINUE

    def eval_Cast(self, n: ir.Cast) -> int:
        self.eval(n.operand)
        v = self.pop("Stack underflow in Cast operand")
        self.push(K.cast(n.to_type, v, self.st.input_len))
        return CONTINUE

    # No-op nodes: counted, children not evaluated, stack untouched.
    def _noop(self, n) -> int:
        return CONTINUE

    eval_Spawn = eval_Atomic = eval_Alloc = eval_Free = _noop
    eval_RegInt = eval_GpuDispatch = eval_Triple = _noop


def run_tier0(sequence, state: RunState) -> None:
    """Run a top-level sequence; the final signal is ignored (language.md §1)."""
    Interpreter(state).run_seq(sequence)
