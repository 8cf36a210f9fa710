"""The gate's abstract interpreter: stack, shape, unbound-Load and limit findings (runtime.md §7).

In: one frame's top-level sequence (the program, or a linked function's node as a one-element
sequence), the starting abstract stack (`[Vec(len(input))]` for the program, unknown for other
functions), `Limits`.
Out: `Frame.findings()` — `(node, message, hint, kind)` for every node that fails **every time it
is reached**, with tier 0's own message (`interp.py` is the definition mirrored here), and
`Syntax.min_cost` (`gate_syntax`) — lower bounds on executed nodes for the fuel check (`gate.fuel_check`).

Abstract values (a plain `str` or `int`):
`"i"` Int0 = `Scalar(_, 0)`, `"s"` any Scalar, `"f"` Float, `n: int` Vec(n), `"v"` Vec(?),
`"a"` Any. A state is `St(stack, env, clean)` (`gate_state`): `stack` a persistent `Stk`
(nothing below its bottom) or `None` = unknown; `env` maps a name hash to the abstract value last written; `clean` says no
Poke or Call can have filled the MMIO map (memory messages are then exact). `None` instead of
a state means unreachable. Each node yields an `Outcome(cont, brk, ret)`: the state when it
signals Continue, Break or Return. Expression children (operands, conditions, Let inits, Return
values) ignore signals, so their three states are joined; sequences stop at Break/Return and
do not check code after an unconditional one.

Soundness rules (never report a node that could succeed when reached):
- joins: equal depth → element-wise (different kinds → Any, Vec(n)⊔Vec(m) → Vec(?),
  Int0⊔Scalar → Scalar); different depth → unknown stack; a Call → unknown stack. With an
  unknown stack only unbound-Load findings remain.
- Loop with count ≤ UNROLL is unrolled (a finding survives only if the node fails in every
  copy where it is reached); other loops and While run to a fixpoint from `entry ⊔ body-out`,
  and only the stable pass reports. Findings are keyed by node identity: a node (object) is
  reported only if no analysed occurrence of it could succeed.
- If/While conditions that are Int/Float literals select their branch (the other is
  unreachable). Children of no-op nodes are never evaluated, so never checked.
- Unbound Load (our reading of §7, chosen conservatively): a Load is reported only when no
  Let/Store of that name occurs earlier in evaluation order in the frame (a Let binds after its
  init, in any branch or nested scope, even one that returns) nor anywhere in an enclosing
  Loop/While; Lets inside no-op children do not count (they never run).
- A check that follows another that might fail is reported only when the earlier ones surely
  pass, so the message is exact; a failure that is certain but whose message is not only makes
  the code after it unreachable. Beyond §7's list, other certain failures are reported too:
  Cast of a Vector to Int/Float, a Vector address in Peek/Poke, constant (Int literal)
  addresses outside the heap and below the MMIO range, a Vector poked to a constant heap
  address, Gemv with an empty vector operand.
- Limits (program frame only): memory at a statement boundary whose known stack alone exceeds
  `max_memory_bytes`; a While with a constant true literal condition whose body can complete
  but never breaks or returns (WHILE_LIMIT, or fuel when even the loop's cheapest run to the
  cap exceeds it); fuel for the whole program is checked by `gate.fuel_check` with `min_cost`.
"""

from __future__ import annotations

from typing import Callable

from nda.analysis.gate_state import (
    AN, FAIL_OWN, FL, I0, NONE_OUT, NONVEC, UNK, VQ, Outcome, St, Stk, env_get, env_set,
    Names, is_vec, join, join_out, merged, program_start, push, vlen,
)
from nda.analysis.gate_expr import (  # noqa: F401  (const_truth, const_addr, MMIO_BASE re-exported)
    FAILED, MMIO_BASE, PURE, Impure, add_value, bitwise_value, cast_value, compare_value, const_addr,
    const_truth, ev, math_value, mathfunc_value, peek_value, vecop_value,
)
from nda.analysis.gate_syntax import Syntax
from nda.core import ir
from nda.runtime.state import HEAP_BYTES, Limits

UNROLL = 8  # Loop counts up to this are unrolled exactly
MAX_ROUNDS = 6  # fixpoint rounds before giving up (the lattice is short)


# ---------------------------------------------------------------------------------------------
# Findings collection


class Collector:
    """Findings of one analysis pass: key → (node, message, hint, kind); `ok` = keys that passed."""

    __slots__ = ("found", "ok")

    def __init__(self):
        self.found: dict = {}
        self.ok: set = set()

    def absorb(self, other: "Collector") -> None:
        for k, v in other.found.items():
            self.found.setdefault(k, v)
        self.ok |= other.ok


# ---------------------------------------------------------------------------------------------
# The abstract interpreter


class Frame:
    """Analyse one frame. `run(sequence, start)`; then `findings()`.

    `is_program`: limit findings (memory, WHILE_LIMIT) apply only to the program frame.
    `budget`: node visits before the analysis degrades to unknown stacks (still sound).
    """

    def __init__(self, syntax: Syntax, limits: Limits, input_len: int | None, is_program: bool,
                 budget: int, fast: bool = True):
        self.sx = syntax
        self.fast = fast  # False: every node by the general path, every loop by `_fixpoint` (the oracle)
        self.impure: set = set()  # ids of trees `ev` gave up on (see gate_expr)
        self.limits = limits
        self.input_len = input_len
        self.is_program = is_program
        self.budget = budget
        self.cols = [Collector()]
        self.stop_index: int | None = None  # top-level element after which nothing runs

    def run(self, sequence, start: St) -> None:
        self.seq(sequence, start, Names(), top=True)

    def findings(self) -> list:
        col = self.cols[0]
        return [v for k, v in col.found.items() if k not in col.ok]

    # -- reporting
    def fail(self, n, message: str, hint: str, kind: str = "runtime") -> Outcome:
        self.cols[-1].found.setdefault(id(n), (n, message, hint, kind))
        return FAIL_OWN

    def pop(self, s: St, n, message: str):
        """→ (value, state) or (None, None) after reporting a definite underflow."""
        if s.stack is None:
            return AN, s
        st = s.stack
        if not st.depth:
            self.fail(n, message, "the stack is empty here on every path")
            return None, None
        return st.top, St(st.rest, s.env, s.clean)

    # -- sequences and statement boundaries
    def seq(self, nodes, s: St | None, names: Names, top: bool = False) -> Outcome:
        """Run a sequence from `s`: → its Outcome. Each element is a statement (followed by
        its memory boundary). A Let, Store, Print or expression statement whose expression is
        pure takes the fast path: `ev` gives the value, and the state after it is built
        directly, exactly as `node` + `plus` + `boundary` would; anything else (or an
        expression `ev` gives up on) goes through `node`."""
        brk = ret = None
        fast = self.fast
        impure = self.impure
        have = names.set
        program = self.is_program
        room = self.limits.max_memory_bytes - HEAP_BYTES
        for i, e in enumerate(nodes):
            t = type(e)
            if fast and s is not None and t in _FAST_STMT:
                child = e.init if t is _Let else e.value if t is _Store else e.source if t is _Print else e
                if type(child) in PURE and id(child) not in impure:
                    stack = s.stack
                    ok = self.cols[-1].ok
                    budget = self.budget
                    try:
                        v = ev(self, child, s.env, have, stack is not None, ok)
                    except Impure:
                        self.budget = budget
                    else:
                        if child is not e:
                            self.budget -= 1  # e is not marked ok: its pure child pushed a value
                            if t is not _Print:
                                name = e.name
                                if name not in have:
                                    names.add((name,))
                                if v is not FAILED and stack is not None:
                                    s = _tnew(St, (Stk(v, stack), env_set(s.env, name, v), s.clean))
                        elif v is not FAILED and stack is not None:
                            s = _tnew(St, (Stk(v, stack), s.env, s.clean))
                        if v is not FAILED and program:
                            st = s.stack
                            if st is not None and st.used > room:
                                s = self.boundary(e, Outcome(s, None, None)).cont
                            else:
                                ok.add(("mem", id(e)))
                        if v is FAILED or s is None:
                            if top:
                                self.stop_index = i
                            s = None
                            break
                        continue
            o = self.node(e, s, names)
            names = self.sx.plus(names, e)
            o = self.boundary(e, o)
            brk, ret = join(brk, o.brk), join(ret, o.ret)
            s = o.cont
            if s is None:
                if top:
                    self.stop_index = i
                break
        return Outcome(s, brk, ret)

    def boundary(self, e, o: Outcome) -> Outcome:
        """The memory check after a statement: drop outcomes whose known stack is over the limit."""
        if not self.is_program or o is FAIL_OWN or o == NONE_OUT:
            return o
        limit = self.limits.max_memory_bytes
        room = limit - HEAP_BYTES
        for st in o:  # the common case: no known stack over the limit, nothing dropped
            if st is not None and st.stack is not None and st.stack.used > room:
                break
        else:
            self.cols[-1].ok.add(("mem", id(e)))
            return o
        parts, over = [], []
        for st in o:
            if st is None or st.stack is None:
                parts.append(st)
                continue
            used = HEAP_BYTES + st.stack.used  # kept up to date by every push (gate_state.Stk)
            exact = st.clean and st.stack.exact
            if used > limit:
                over.append((used, exact))
                parts.append(None)
            else:
                parts.append(st)
        key = ("mem", id(e))
        col = self.cols[-1]
        if over and all(p is None for p in parts):
            used, exact = over[0]
            hint = "the stack here needs these bytes on every path" if exact else \
                f"lower bound: the stack alone needs at least {used} bytes here"
            col.found.setdefault(key, (e, f"memory limit exceeded: {used} > {limit} bytes", hint, "limit"))
        else:
            col.ok.add(key)
        return Outcome(*parts)

    # -- one node
    def node(self, n, s: St | None, names: Names) -> Outcome:
        self.budget -= 1
        t = type(n)
        o = _DISPATCH[t](self, n, s, names)
        if o is FAIL_OWN:
            return NONE_OUT
        self.cols[-1].ok.add(id(n))
        return o

    def expr(self, n, s: St | None, names: Names) -> St | None:
        if self.fast and s is not None and type(n) in PURE and id(n) not in self.impure:
            budget = self.budget
            try:
                v = ev(self, n, s.env, names.set, s.stack is not None, self.cols[-1].ok)
            except Impure:
                self.budget = budget
            else:
                return None if v is FAILED else push(s, v)
        return merged(self.node(n, s, names))

    def exprs(self, nodes, s: St | None, names: Names) -> St | None:
        for c in nodes:
            s = self.expr(c, s, names)
            if s is None:
                return None
            names = self.sx.plus(names, c)
        return s

    # -- passes with their own collector
    def _pass(self, fn: Callable[[], object]):
        self.cols.append(Collector())
        try:
            r = fn()
        finally:
            col = self.cols.pop()
        return r, col

    def _degraded(self, s: St | None) -> St | None:
        return UNK if self.budget <= 0 and s is not None else s

    # -- control flow
    def n_Scope(self, n, s, names):
        return self.seq(n.children, s, names)

    def n_Loop(self, n, s, names):
        if n.count <= 0:
            return Outcome(s, None, None)
        inner = self.sx.plus(names, n)
        s = self._degraded(s)
        if s.stack is not None and n.count <= UNROLL:
            cur, brk, ret, cols = s, None, None, []
            for _ in range(n.count):
                o, col = self._pass(lambda cur=cur: self.seq(n.body, cur, inner))
                cols.append(col)
                brk, ret, cur = join(brk, o.brk), join(ret, o.ret), o.cont
                if cur is None:
                    break
            for col in cols:
                self.cols[-1].absorb(col)
            return Outcome(join(cur, brk), None, ret)
        if s.stack is None and self.fast:  # the fixpoint's first pass is stable: run it in place
            o = self.seq(n.body, s, inner)
        else:
            o, col = self._fixpoint(s, lambda x: self.seq(n.body, x, inner), lambda o: o.cont)
            self.cols[-1].absorb(col)
        return Outcome(join(o.cont, o.brk), None, o.ret)

    def _fixpoint(self, s: St | None, body: Callable, back: Callable):
        """Run `body` from `s`, then from `s ⊔ back(outcome)`, until the entry is stable: → the
        stable pass's (outcome, collector). An entry with an unknown stack is stable after the
        first pass: a state whose stack is unknown is always `UNK` (env {}, not clean) and it
        absorbs every join, so the callers run that pass in place, in the current collector."""
        x: St | None = s
        for _ in range(MAX_ROUNDS):
            o, col = self._pass(lambda: body(x))
            x2 = join(s, back(o))
            if x2 == x:
                return o, col
            x = self._degraded(x2)
        x = UNK
        return self._pass(lambda: body(x))

    def n_While(self, n, s, names):
        inner = self.sx.plus(names, n)
        truth = const_truth(n.cond)
        s = self._degraded(s)
        entry: dict = {}

        def body(x):
            cs = self.expr(n.cond, x, inner)
            b = None
            if cs is not None:
                _, b = self.pop(cs, n, "Stack underflow in While condition")
            entry["after_cond"] = b
            if b is None or truth is False:
                return NONE_OUT
            return self.seq(n.body, b, inner)

        if s.stack is None and self.fast:  # stable after one pass (`_fixpoint`); the pop cannot fail
            o = body(s)
            if entry["after_cond"] is None:  # an operand of the condition fails
                return NONE_OUT
        else:
            o, col = self._fixpoint(s, body, lambda o: o.cont)
            self.cols[-1].absorb(col)
        after = entry.get("after_cond")
        if after is None:  # the condition never yields a value (its own pop or an operand fails)
            return FAIL_OWN if id(n) in col.found else NONE_OUT
        if truth is True and o.brk is None and o.ret is None and o.cont is not None \
                and self.is_program:
            cap = self.sx.while_cap_cost(n)
            fuel = self.limits.fuel
            if cap > fuel:
                msg = f"fuel exhausted after {fuel} nodes"
                hint = f"this loop never ends: reaching its iteration cap takes at least {cap} nodes"
            else:
                msg = f"while loop exceeded MAX_WHILE_ITERATIONS ({self.limits.max_while_iterations})"
                hint = "the condition is a constant true literal and the body never breaks or returns"
            return self.fail(n, msg, hint, "limit")
        exit_ = o.brk if truth is True else join(after, o.brk)
        return Outcome(exit_, None, o.ret)

    def n_If(self, n, s, names):
        cs = self.expr(n.cond, s, names)
        if cs is None:
            return NONE_OUT
        _, b = self.pop(cs, n, "Stack underflow in If condition")
        if b is None:
            return FAIL_OWN
        names = self.sx.plus(names, n.cond)
        truth = const_truth(n.cond)
        mark = names.mark()
        then = self.seq(n.then_body, b, names) if truth is not False else NONE_OUT
        names.undo(mark)  # the else branch does not see the then branch's names
        if truth is True:
            other = NONE_OUT
        elif n.else_body is None:
            other = Outcome(b, None, None)
        else:
            other = self.seq(n.else_body, b, names)
        return join_out(then, other)

    def n_Return(self, n, s, names):
        v = self.expr(n.value, s, names)
        return Outcome(None, None, v)

    def n_Break(self, n, s, names):
        return Outcome(None, s, None)

    def n_Call(self, n, s, names):
        return Outcome(UNK, None, None)  # fresh callee frame; signals are swallowed

    # -- leaves and variables
    def n_Int(self, n, s, names):
        return Outcome(push(s, I0), None, None)

    def n_Float(self, n, s, names):
        return Outcome(push(s, FL), None, None)

    def n_Load(self, n, s, names):
        if n.name not in names:
            return self.fail(n, f"undefined variable (hash {n.name:016x})",
                             "no Let/Store of this variable runs earlier in this frame")
        return Outcome(push(s, env_get(s.env, n.name, AN)), None, None)

    def _bind(self, n, child, s, names, message):
        s = self.expr(child, s, names)
        if s is None:
            return NONE_OUT
        if s.stack is None:
            return Outcome(s, None, None)
        st = s.stack
        if not st.depth:
            return self.fail(n, message, "the stack is empty here on every path")
        return Outcome(St(st, env_set(s.env, n.name, st.top), s.clean), None, None)

    def n_Let(self, n, s, names):
        return self._bind(n, n.init, s, names, "Stack underflow in Let init")

    def n_Store(self, n, s, names):
        return self._bind(n, n.value, s, names, "Stack underflow in Store value")

    # -- operators (pop order and messages exactly as interp.py)
    # `_unary` / `_binary` return the popped values and either the new state or, when the node
    # cannot get past its operands, the Outcome to return (FAIL_OWN if its own pop failed).
    def _unary(self, n, child, s, names, message):
        s = self.expr(child, s, names)
        if s is None:
            return None, NONE_OUT
        v, s = self.pop(s, n, message)
        return (None, FAIL_OWN) if s is None else (v, s)

    def _binary(self, n, a, b, s, names, m_rhs, m_lhs):
        s = self.exprs((a, b), s, names)
        if s is None:
            return None, None, NONE_OUT
        r, s = self.pop(s, n, m_rhs)
        if s is None:
            return None, None, FAIL_OWN
        l, s = self.pop(s, n, m_lhs)
        return (None, None, FAIL_OWN) if s is None else (l, r, s)

    def n_Matrix(self, n, s, names):
        x, s = self.pop(s, n, "Stack underflow in Matrix GEMV")
        if s is None:
            return FAIL_OWN
        if type(x) is int and x != n.cols:
            return self.fail(n, f"Matrix GEMV dimension mismatch: input len {x} \u2260 matrix cols {n.cols}",
                             f"the input is a {x}-element vector on every path")
        return Outcome(push(s, n.rows), None, None)

    def n_Norm(self, n, s, names):
        x, s = self.pop(s, n, "Stack underflow in Norm")
        if s is None:
            return FAIL_OWN
        if type(x) is int and x != n.size:
            return self.fail(n, f"Norm dimension mismatch: input len {x} \u2260 norm size {n.size}",
                             f"the input is a {x}-element vector on every path")
        return Outcome(push(s, n.size), None, None)

    def n_Compare(self, n, s, names):
        l, r, s = self._binary(n, n.lhs, n.rhs, s, names, "Stack underflow in Compare rhs",
                               "Stack underflow in Compare lhs")
        if type(s) is Outcome:
            return s
        return Outcome(push(s, compare_value(l, r)), None, None)

    def n_Add(self, n, s, names):
        l, r, s = self._binary(n, n.lhs, n.rhs, s, names, "Stack underflow in Add rhs",
                               "Stack underflow in Add lhs")
        if type(s) is Outcome:
            return s
        return self._pushed(s, add_value(self, n, l, r))

    def _pushed(self, s, v) -> Outcome:
        """The outcome of an operator whose value rule gave `v` (FAILED: it reported)."""
        if v is FAILED:
            return FAIL_OWN
        return Outcome(push(s, v), None, None)

    def n_VecOp(self, n, s, names):
        x, s = self._unary(n, n.operand, s, names, "Stack underflow in VecOp operand")
        if type(s) is Outcome:
            return s
        return Outcome(push(s, vecop_value(n, x)), None, None)

    def n_Print(self, n, s, names):
        _, s = self._unary(n, n.source, s, names, "Stack underflow in Print source")
        if type(s) is Outcome:
            return s
        return Outcome(s, None, None)

    def n_Bitwise(self, n, s, names):
        l, s = self._unary(n, n.lhs, s, names, "Stack underflow in Bitwise lhs")
        if type(s) is Outcome:
            return s
        if n.op == ir.BitwiseOp.Not:
            return Outcome(push(s, l), None, None)
        if n.rhs is None:
            return NONE_OUT  # "Missing rhs for binary Bitwise op": reported by the structure check
        s = self.expr(n.rhs, s, self.sx.plus(names, n.lhs))
        if s is None:
            return NONE_OUT
        r, s = self.pop(s, n, "Stack underflow in Bitwise rhs")
        if s is None:
            return FAIL_OWN
        return Outcome(push(s, bitwise_value(l, r)), None, None)

    def n_Math(self, n, s, names):
        l, r, s = self._binary(n, n.lhs, n.rhs, s, names, "Stack underflow in Math rhs",
                               "Stack underflow in Math lhs")
        if type(s) is Outcome:
            return s
        return self._pushed(s, math_value(self, n, l, r))

    def n_MathFunc(self, n, s, names):
        x, s = self._unary(n, n.operand, s, names, "Stack underflow in MathFunc")
        if type(s) is Outcome:
            return s
        return self._pushed(s, mathfunc_value(self, n, x))

    def n_Cast(self, n, s, names):
        x, s = self._unary(n, n.operand, s, names, "Stack underflow in Cast operand")
        if type(s) is Outcome:
            return s
        return self._pushed(s, cast_value(self, n, x))

    def n_Peek(self, n, s, names):
        a, s = self._unary(n, n.addr, s, names, "Stack underflow in Peek")
        if type(s) is Outcome:
            return s
        return self._pushed(s, peek_value(self, n, a))

    def n_Poke(self, n, s, names):
        a, _v, s = self._binary(n, n.addr, n.value, s, names, "Stack underflow in Poke value",
                                "Stack underflow in Poke address")
        if type(s) is Outcome:
            return s
        if is_vec(a):
            return self.fail(n, "Poke address must be scalar", "the address is a Vector on every path")
        # a constant address pops as itself when the value child pushes exactly one value
        addr = const_addr(n.addr) if type(n.value) in (ir.Int, ir.Float, ir.Load) else None
        if addr is not None and addr < MMIO_BASE:
            if HEAP_BYTES < addr + 4:
                return self.fail(n, f"Out of bounds MMIO/heap write at address {addr}",
                                 "a constant address outside the heap that can never be an MMIO key")
            if is_vec(_v):
                return self.fail(n, "Poke value must be scalar", "a Vector written to the heap")
        return Outcome(s._replace(clean=False), None, None)

    def n_Gemv(self, n, s, names):
        s = self.exprs((n.matrix, n.vector), s, names)
        if s is None:
            return NONE_OUT
        v, s = self.pop(s, n, "Stack underflow in Gemv vector")
        if s is None:
            return FAIL_OWN
        if v in NONVEC:
            return self.fail(n, "Gemv vector operand must be a Vector", "the operand is never a Vector here")
        m, s = self.pop(s, n, "Stack underflow in Gemv matrix")
        if s is None:
            return FAIL_OWN
        # a later check is reported only when the earlier ones surely pass (exact message);
        # a failure that is certain but whose message is not makes the rest unreachable
        if m in NONVEC:
            if not is_vec(v):
                return NONE_OUT
            return self.fail(n, "Gemv matrix operand must be a Vector", "the operand is never a Vector here")
        if v == 0:
            if not is_vec(m):
                return NONE_OUT  # m is Any: a TYPE_ERROR or this DIMENSION_MISMATCH
            return self.fail(n, "Gemv cols cannot be zero", "the vector operand is always empty here")
        a, b = vlen(m), vlen(v)
        res = a // b if a is not None and b else VQ
        return Outcome(push(s, res), None, None)

    def n_Dot(self, n, s, names):
        s = self.exprs((n.lhs, n.rhs), s, names)
        if s is None:
            return NONE_OUT
        r, s = self.pop(s, n, "Stack underflow in Dot rhs")
        if s is None:
            return FAIL_OWN
        if r in NONVEC:
            return self.fail(n, "Dot rhs operand must be a Vector", "the operand is never a Vector here")
        l, s = self.pop(s, n, "Stack underflow in Dot lhs")
        if s is None:
            return FAIL_OWN
        if l in NONVEC:
            if not is_vec(r):
                return NONE_OUT  # fails either way, but the rhs check may speak first
            return self.fail(n, "Dot lhs operand must be a Vector", "the operand is never a Vector here")
        a, b = vlen(l), vlen(r)
        if a is not None and b is not None and a != b:
            return self.fail(n, "Dot vector length mismatch", f"the operands always have lengths {a} and {b}")
        return Outcome(push(s, FL), None, None)

    def n_Syscall(self, n, s, names):
        s = self.exprs(n.args, s, names)
        if s is None:
            return NONE_OUT
        k = len(n.args)
        if s.stack is None:
            return Outcome(s if n.num == 1 else push(s, I0), None, None)
        st = s.stack
        if st.depth < k:
            return self.fail(n, "Stack underflow in Syscall args",
                             f"{k} arguments but only {st.depth} values on the stack on every path")
        for _ in range(k):
            st = st.rest
        s = St(st, s.env, s.clean)
        return Outcome(s if n.num == 1 else push(s, I0), None, None)

    # -- no-op nodes: counted, children never evaluated, stack untouched
    def _noop(self, n, s, names):
        return Outcome(s, None, None)


# no-op kinds share `_noop`, named here rather than aliased in the class body (which mypyc
# rejects: docs/decisions.md #31)
_NOOPS = frozenset({"Spawn", "Atomic", "Alloc", "Free", "RegInt", "GpuDispatch", "Triple"})
_FAST_STMT = PURE | {ir.Let, ir.Store, ir.Print}
_Let, _Store, _Print = ir.Let, ir.Store, ir.Print
_tnew = tuple.__new__  # St(...) without the NamedTuple's Python-level __new__
_DISPATCH = {cls: Frame._noop if cls.__name__ in _NOOPS else getattr(Frame, "n_" + cls.__name__)
             for cls in ir.NODE_CLASSES}


__all__ = ["Frame", "Names", "Syntax", "St", "UNK", "program_start", "const_truth"]
