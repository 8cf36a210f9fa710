"""The optimizer (runtime.md §3): observationally exact rewrites for tiers 1 and 2.

In: a top-level sequence (tuple of IR nodes) or a callee node.
Out: the same code with some subtrees replaced by optimizer nodes (`nda.tiers.opt_nodes`), each of
which keeps its original and charges the exact counts of what it skips. Optimized trees are
never hashed or stored; they only go to the tier 1 compiler.

Passes, in order (`PASSES`):
1. `fold` — constant folding and propagation with i32 wrapping and the kernels' arithmetic:
   Add / Compare / VecOp{Negate, Abs, ReduceSum} of constants, `Load x` of a variable known to
   hold an Int, `Negate(Negate(e))` → e and `e + 0` / `0 + e` → e (e stack-clean; for `+ 0`
   statically Scalar(_, 0)), `If` with a constant condition → the taken branch.
   Known values flow along sequences; a variable written inside a Loop/While is unknown in and
   after it, If joins both branches, and an expression child that may end in a swallowed
   Return/Break forgets what it writes.
2. `unroll` — `Loop{1 ≤ n ≤ 4}` without a Break that targets it (and at most `UNROLL_BUDGET`
   nodes after unrolling) → the n copies of its body in sequence, folded with the values known
   at the loop (this pass re-runs folding, with unrolling, over the stripped tree).
3. `dce` — nodes after an unconditional Return/Break in a sequence are dropped (kept aside for
   slot registration only); a Let/Store whose variable is dead (backward liveness; a loop body
   treats every variable read in the loop as live; If joins; a Return/Break lands at the frame
   end, the loop exit or the operator that swallows it; folded Loads read nothing) is replaced by its value when that value is stack-clean. Parameter Lets (whose
   init is an empty Scope) are never touched.
4. `scev` — loops whose body is `v = v + X` assignments (X a constant, a loop-invariant
   variable, or a variable with such an update) are marked for the closed form of §2.3.

`optimize_sequence(seq, timings=None, passes=PASSES, dump_after=None, dump=None) -> tuple`,
`optimize_node(node) -> node`.
"""

from __future__ import annotations

import time
from dataclasses import replace as dc_replace

from nda.core import ir
from nda.tiers.opt_nodes import (
    DeadTail, Elide, Folded, IfFolded, OptNode, Scev, Unrolled, format_sequence, reads,
    rebuild, strip, strip_seq,
)

PASSES = ("fold", "unroll", "dce", "scev")
UNROLL_BUDGET = 512  # max nodes of an unrolled loop's copies (before folding)

INT0 = "int0"  # fact: stack-clean, loop-free, cannot raise, pushes Scalar(_, 0)
_NEG, _ABS, _RSUM = int(ir.VecOpKind.Negate), int(ir.VecOpKind.Abs), int(ir.VecOpKind.ReduceSum)
_SEQ_KINDS = (ir.Scope, ir.Loop, ir.While, ir.If)


def _wrap(x: int) -> int:
    return ((x + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def _cmp(op: int, a: int, b: int) -> int:
    r = (a == b, a != b, a < b, a > b, a <= b, a >= b)[op]
    return 1 if r else -1


def _vecop_int(op: int, a: int) -> int:
    if op == _NEG:
        return _wrap(-a)
    if op == _ABS:
        return _wrap(abs(a))
    return a  # ReduceSum of a Scalar is the identity


# ---------------------------------------------------------------------------------------------
# Static properties


class _Clean:
    """`clean(n)`: n is *stack-clean* — pushes exactly one value and never pops below its own
    pushes (its only statement boundary, if any, inside a one-element Scope). Memoized."""

    def __init__(self):
        self.memo: dict = {}

    def __call__(self, n) -> bool:
        r = self.memo.get(id(n))
        if r is None:
            r = self.memo[id(n)] = (self._clean(n), n)
        return r[0]

    def _clean(self, n) -> bool:
        t = type(n)
        if t in (ir.Int, ir.Float, ir.Load, Folded):
            return True
        if t in (ir.Add, ir.Compare, ir.Math, ir.Dot):
            return self(n.lhs) and self(n.rhs)
        if t is ir.Gemv:
            return self(n.matrix) and self(n.vector)
        if t in (ir.VecOp, ir.MathFunc, ir.Cast):
            return self(n.operand)
        if t is ir.Peek:
            return self(n.addr)
        if t is ir.Bitwise:
            return self(n.lhs) and (n.op == ir.BitwiseOp.Not or (n.rhs is not None and self(n.rhs)))
        if t is ir.Let:
            return self(n.init)
        if t is ir.Store:
            return self(n.value)
        if t is ir.Scope:
            return len(n.children) == 1 and self(n.children[0])
        if t is Elide:
            return self(n.replacement)
        return False


def stack_clean(n) -> bool:
    return _Clean()(n)


def _expr_children(n) -> list[tuple[str, str]]:
    """(field, kind) of the children an expression-like node evaluates, in evaluation order."""
    if type(n) is ir.Bitwise:
        if n.op == ir.BitwiseOp.Not or n.rhs is None:
            return [("lhs", "node")]
        return [("lhs", "node"), ("rhs", "node")]
    return [(f, k) for f, k in n.FIELDS if k in ("node", "optnode", "nodes", "optnodes")]


class _Facts:
    """Memoized subtree facts over plain IR: variables written, whether a Return/Break occurs
    (whose signal a parent might swallow). Each node is computed once (bottom-up)."""

    def __init__(self):
        self._memo: dict = {}

    def _get(self, n):
        r = self._memo.get(id(n))
        if r is None:
            w: frozenset = frozenset()
            sig = type(n) in (ir.Return, ir.Break)
            if type(n) in (ir.Let, ir.Store):
                w = frozenset((n.name,))
            for c in ir.children(n):
                cw, cs = self._get(c)
                if cw:
                    w = w | cw
                sig = sig or cs
            r = self._memo[id(n)] = (w, sig, n)
        return r[0], r[1]

    def writes(self, n) -> frozenset:
        return self._get(n)[0]

    def writes_seq(self, nodes) -> frozenset:
        out = frozenset()
        for n in nodes:
            out |= self.writes(n)
        return out

    def may_signal(self, n) -> bool:
        return self._get(n)[1]


def targets_break(body) -> bool:
    """A Break at sequence level of `body` (through Scopes and If branches, not inner loops)."""
    stack = list(body)
    while stack:
        n = stack.pop()
        t = type(n)
        if t is ir.Break:
            return True
        if t is ir.Scope:
            stack.extend(n.children)
        elif t is ir.If:
            stack.extend(n.then_body)
            if n.else_body is not None:
                stack.extend(n.else_body)
    return False


# ---------------------------------------------------------------------------------------------
# Passes 1 and 2: folding (and unrolling)


class _Folder:
    """Forward walk over plain IR with an environment name → ("c", v) | INT0.

    `node(n, env)` returns (node', fact) where fact is ("c", value, kinds) for a side-effect-free
    constant, INT0, or None; `env` is updated in evaluation order.
    """

    def __init__(self, unroll: bool):
        self.unroll = unroll
        self.facts = _Facts()
        self.clean = _Clean()
        self._est: dict = {}

    # -- sequences
    def seq(self, nodes, env: dict) -> tuple:
        out = []
        for i, n in enumerate(nodes):
            out.append(self.node(n, env)[0])
            if type(n) in (ir.Return, ir.Break):
                out.extend(nodes[i + 1:])  # unreachable: left for DCE
                break
        return tuple(out)

    def child(self, c, env):
        """An expression-position child: a Return/Break inside it is swallowed by the parent,
        so whatever it writes is unknown afterwards."""
        r = self.node(c, env)
        if self.facts.may_signal(c):
            for w in self.facts.writes(c):
                env.pop(w, None)
            return r[0], None
        return r

    # -- nodes
    def node(self, n, env: dict):
        t = type(n)
        if t is ir.Int:
            return n, ("c", n.value, ("Int",))
        if t is ir.Load:
            f = env.get(n.name)
            if f is INT0:
                return n, INT0
            if f is not None:
                return Folded(f[1], n, ("Load",)), ("c", f[1], ("Load",))
            return n, None
        m = getattr(self, "n_" + t.__name__, None)
        if m is not None:
            return m(n, env)
        if isinstance(n, ir.NOOP_KINDS) or t in (ir.Float, ir.Matrix, ir.Norm, ir.Call, ir.Break):
            return n, None
        if isinstance(n, OptNode):
            raise TypeError("the folder works on plain IR (strip first)")
        return self.generic(n, env), None

    def generic(self, n, env):
        changes = {}
        for f, kind in _expr_children(n):
            v = getattr(n, f)
            if v is None:
                continue
            if kind in ("node", "optnode"):
                nv = self.child(v, env)[0]
            else:
                nv = tuple(self.child(c, env)[0] for c in v)
                if all(a is b for a, b in zip(nv, v)):
                    nv = v
            if nv is not v:
                changes[f] = nv
        return dc_replace(n, **changes) if changes else n

    @staticmethod
    def _int(f) -> bool:
        return f is INT0 or (f is not None and f[0] == "c")

    def n_Add(self, n, env):
        l, fl = self.child(n.lhs, env)
        r, fr = self.child(n.rhs, env)
        if fl and fr and fl is not INT0 and fr is not INT0:
            v = _wrap(fl[1] + fr[1])
            kinds = ("Add",) + fl[2] + fr[2]
            return Folded(v, n, kinds), ("c", v, kinds)
        new = n if (l is n.lhs and r is n.rhs) else dc_replace(n, lhs=l, rhs=r)
        if fl and fl is not INT0 and fl[1] == 0 and fr is INT0 and self.clean(r):
            return Elide(n, r, ("Add",) + fl[2], (), "add0"), INT0
        if fr and fr is not INT0 and fr[1] == 0 and fl is INT0 and self.clean(l):
            return Elide(n, l, ("Add",), fr[2], "add0"), INT0
        return new, (INT0 if self._int(fl) and self._int(fr) else None)

    def n_Compare(self, n, env):
        l, fl = self.child(n.lhs, env)
        r, fr = self.child(n.rhs, env)
        if fl and fr and fl is not INT0 and fr is not INT0:
            v = _cmp(int(n.op), fl[1], fr[1])
            kinds = ("Compare",) + fl[2] + fr[2]
            return Folded(v, n, kinds), ("c", v, kinds)
        new = n if (l is n.lhs and r is n.rhs) else dc_replace(n, lhs=l, rhs=r)
        return new, (INT0 if self._int(fl) and self._int(fr) else None)

    def n_VecOp(self, n, env):
        x, fx = self.child(n.operand, env)
        op = int(n.op)
        if op in (_NEG, _ABS, _RSUM) and fx and fx is not INT0:
            v = _vecop_int(op, fx[1])
            kinds = ("VecOp",) + fx[2]
            return Folded(v, n, kinds), ("c", v, kinds)
        new = n if x is n.operand else dc_replace(n, operand=x)
        fact = INT0 if op in (_NEG, _ABS, _RSUM) and self._int(fx) else None
        if op == _NEG and type(x) is ir.VecOp and int(x.op) == _NEG and self.clean(x.operand):
            return Elide(n, x.operand, ("VecOp", "VecOp"), (), "negneg"), fact
        return new, fact

    def _assign(self, n, env, field):
        c, fc = self.child(getattr(n, field), env)
        new = n if c is getattr(n, field) else dc_replace(n, **{field: c})
        if fc is INT0:
            env[n.name] = INT0
        elif fc is not None:
            env[n.name] = ("c", fc[1])
        else:
            env.pop(n.name, None)
        return new, (INT0 if fc is not None else None)

    def n_Let(self, n, env):
        return self._assign(n, env, "init")

    def n_Store(self, n, env):
        return self._assign(n, env, "value")

    def n_Scope(self, n, env):
        ch = self.seq(n.children, env)
        return (n if _same(ch, n.children) else dc_replace(n, children=ch)), None

    def n_Return(self, n, env):
        v = self.child(n.value, env)[0]
        return (n if v is n.value else dc_replace(n, value=v)), None

    def n_If(self, n, env):
        c, fc = self.child(n.cond, env)
        env_t, env_e = dict(env), dict(env)
        th = self.seq(n.then_body, env_t)
        el = self.seq(n.else_body, env_e) if n.else_body is not None else None
        new = n
        if c is not n.cond or not _same(th, n.then_body) or (el is not None and not _same(el, n.else_body)):
            new = dc_replace(n, cond=c, then_body=th, else_body=el)
        if fc and fc is not INT0:
            taken, tenv = (th, env_t) if fc[1] > 0 else (el, env_e)
            env.clear()
            env.update(tenv)
            return IfFolded(n, taken, fc[2]), None
        env.clear()
        env.update(_join(env_t, env_e))
        return new, None

    def n_While(self, n, env):
        for w in self.facts.writes(n):
            env.pop(w, None)
        inner = dict(env)
        c = self.child(n.cond, inner)[0]
        body = self.seq(n.body, inner)
        if c is n.cond and _same(body, n.body):
            return n, None
        return dc_replace(n, cond=c, body=body), None

    def n_Loop(self, n, env):
        if self.unroll and 1 <= n.count <= 4 and self._unrollable(n):
            return Unrolled(n, self.seq(n.body * n.count, env)), None
        for w in self.facts.writes_seq(n.body):
            env.pop(w, None)
        body = self.seq(n.body, dict(env))
        return (n if _same(body, n.body) else dc_replace(n, body=body)), None

    # -- unrolling budget
    def _unrollable(self, n) -> bool:
        if targets_break(n.body):
            return False
        return n.count * sum(self._estimate(c) for c in n.body) <= UNROLL_BUDGET

    def _estimate(self, n) -> int:
        """Size of `n` after unrolling (nested loops unrolled when they fit the budget)."""
        k = id(n)
        r = self._est.get(k)
        if r is not None:
            return r[0]
        if isinstance(n, ir.NOOP_KINDS):
            v = 1
        elif type(n) is ir.Loop:
            b = sum(self._estimate(c) for c in n.body)
            v = n.count * b if (1 <= n.count <= 4 and not targets_break(n.body)
                                and n.count * b <= UNROLL_BUDGET) else 1 + b
        else:
            v = 1 + sum(self._estimate(c) for c in ir.children(n))
        self._est[k] = (v, n)
        return v


def _join(a: dict, b: dict) -> dict:
    """Facts true after either branch: equal constants stay, two Int facts give INT0."""
    out = {}
    for k, fa in a.items():
        fb = b.get(k)
        if fb is None:
            continue
        out[k] = fa if fa == fb else INT0
    return out


def _same(a, b) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def fold_pass(seq: tuple) -> tuple:
    return _Folder(False).seq(strip_seq(seq), {})


def unroll_pass(seq: tuple) -> tuple:
    return _Folder(True).seq(strip_seq(seq), {})


# ---------------------------------------------------------------------------------------------
# Pass 3: dead code elimination


class _Ctx:
    """Backward liveness context: `floor` is live everywhere (enclosing loops), `brk` / `ret`
    are live where a Break / Return signal lands (loop exit, swallowing parent, frame end)."""

    __slots__ = ("floor", "brk", "ret")

    def __init__(self, floor=frozenset(), brk=frozenset(), ret=frozenset()):
        self.floor, self.brk, self.ret = floor, brk, ret


class _DCE:
    def __init__(self):
        self.clean = _Clean()

    def seq(self, nodes, live, ctx: _Ctx):
        nodes = list(nodes)
        for i, n in enumerate(nodes):
            if isinstance(n, DeadTail):
                nodes = nodes[:i + 1]
                break
            if type(n) in (ir.Return, ir.Break) and i + 1 < len(nodes):
                nodes = nodes[:i] + [DeadTail(n, tuple(nodes[i + 1:]))]
                break
        out = []
        for n in reversed(nodes):
            n2, live = self.node(n, live, ctx)
            out.append(n2)
        out.reverse()
        return tuple(out), live

    def child(self, c, live, ctx: _Ctx):
        """An expression-position child: its signals are swallowed right after it."""
        sub = _Ctx(ctx.floor, live, live)
        return self.node(c, live, sub)

    def node(self, n, live, ctx: _Ctx):
        n2, before = self._node(n, live, ctx)
        return n2, before | ctx.floor

    def _node(self, n, live, ctx):
        t = type(n)
        if t is ir.Load:
            return n, live | {n.name}
        if t is ir.Let or t is ir.Store:
            return self.assign(n, live, ctx)
        if t is ir.Return:
            v, before = self.child(n.value, ctx.ret | ctx.floor, ctx)
            return (n if v is n.value else dc_replace(n, value=v)), before
        if t is ir.Break:
            return n, live | ctx.brk
        if t is ir.Scope:
            ch, before = self.seq(n.children, live, ctx)
            return (n if _same(ch, n.children) else dc_replace(n, children=ch)), before
        if t is ir.If:
            th, lt = self.seq(n.then_body, live, ctx)
            if n.else_body is not None:
                el, le = self.seq(n.else_body, live, ctx)
            else:
                el, le = None, live
            c, before = self.child(n.cond, lt | le, ctx)
            if c is n.cond and _same(th, n.then_body) and (el is None or _same(el, n.else_body)):
                return n, before
            return dc_replace(n, cond=c, then_body=th, else_body=el), before
        if t is ir.Loop or t is ir.While:
            r = reads(n)
            floor = ctx.floor | live | r
            inner = _Ctx(floor, floor, ctx.ret)
            # live before the loop: what is live after it or anywhere in it (floor), and what
            # the body needs on entry — e.g. what is live where a Return inside it lands
            body, body_in = self.seq(n.body, floor, inner)
            if t is ir.Loop:
                return (n if _same(body, n.body) else dc_replace(n, body=body)), floor | body_in
            c, cond_in = self.child(n.cond, floor, inner)
            if c is n.cond and _same(body, n.body):
                return n, floor | body_in | cond_in
            return dc_replace(n, cond=c, body=body), floor | body_in | cond_in
        if isinstance(n, ir.NOOP_KINDS) or t in (ir.Int, ir.Float, ir.Matrix, ir.Norm, ir.Call):
            return n, live
        if t is Folded:
            return n, live
        if t is DeadTail:
            x, before = self.node(n.node, live, ctx)
            return (n if x is n.node else DeadTail(x, n.dead)), before
        if t is Elide:
            x, before = self.node(n.replacement, live, ctx)
            return (n if x is n.replacement else dc_replace(n, replacement=x)), before
        if t is Unrolled:
            body, before = self.seq(n.body, live, ctx)
            return (n if _same(body, n.body) else dc_replace(n, body=body)), before
        if t is IfFolded:
            if n.branch is None:
                return n, live
            br, before = self.seq(n.branch, live, ctx)
            return (n if _same(br, n.branch) else dc_replace(n, branch=br)), before
        if isinstance(n, OptNode):
            return n, live | reads(n)
        # expression-like: children evaluated in order, so processed in reverse
        fields = _expr_children(n)
        changes = {}
        for f, kind in reversed(fields):
            v = getattr(n, f)
            if v is None:
                continue
            if kind in ("node", "optnode"):
                nv, live = self.child(v, live, ctx)
            else:
                items = []
                for c in reversed(v):
                    x, live = self.child(c, live, ctx)
                    items.append(x)
                items.reverse()
                nv = v if _same(items, v) else tuple(items)
            if nv is not v:
                changes[f] = nv
        return (dc_replace(n, **changes) if changes else n), live

    def assign(self, n, live, ctx):
        field = "init" if type(n) is ir.Let else "value"
        child = getattr(n, field)
        param = type(child) is ir.Scope and not child.children
        if n.name not in live and n.name not in ctx.floor and not param and self.clean(child):
            c, before = self.child(child, live, ctx)
            return Elide(strip(n), c, (type(n).__name__,), (), "dead"), before
        c, before = self.child(child, (live - {n.name}) | ctx.floor, ctx)
        return (n if c is child else dc_replace(n, **{field: c})), before


def dce_pass(seq: tuple) -> tuple:
    return _DCE().seq(seq, frozenset(), _Ctx())[0]


# ---------------------------------------------------------------------------------------------
# Pass 4: SCEV-lite marking


def _scev_map(n):
    if isinstance(n, OptNode):
        return n.map(_scev_map)
    if isinstance(n, ir.NOOP_KINDS):
        return n
    n2 = rebuild(n, _scev_map, lambda s: tuple(_scev_map(c) for c in s))
    if type(n2) is ir.Loop:
        m = match_scev(n2)
        if m is not None:
            return m
    return n2


def match_scev(loop: ir.Loop) -> Scev | None:
    """A `Scev` for `loop` if its body is m ≥ 1 assignments `v = v + X` (module doc)."""
    if loop.count < 1 or not loop.body:
        return None
    raw = []
    kinds: dict = {"Loop": 1}
    per_iter = 0
    for s in loop.body:
        ts = type(s)
        if ts is not ir.Store and ts is not ir.Let:
            return None
        add = s.value if ts is ir.Store else s.init
        if type(add) is not ir.Add:
            return None
        a, b = add.lhs, add.rhs
        if type(a) is ir.Load and a.name == s.name:
            x = b
        elif type(b) is ir.Load and b.name == s.name:
            x = a
        else:
            return None
        tx = type(x)
        if tx is ir.Int:
            src, xk = ("const", x.value), ("Int",)
        elif tx is Folded:
            src, xk = ("const", x.value), x.kinds
        elif tx is ir.Load and x.name != s.name:
            src, xk = ("var", x.name), ("Load",)
        else:
            return None
        raw.append((s.name, src))
        for kd in (ts.__name__, "Add", "Load") + xk:
            kinds[kd] = kinds.get(kd, 0) + loop.count
        per_iter += 3 + len(xk)
    names = [v for v, _ in raw]
    if len(set(names)) != len(names):
        return None
    linear = {v for v, (mode, arg) in raw if mode == "const" or arg not in names}
    updates = []
    for v, (mode, arg) in raw:
        if mode == "const":
            updates.append((v, "const", arg))
        elif arg not in names:
            updates.append((v, "inv", arg))
        elif arg in linear:
            updates.append((v, "lin", arg))
        else:
            return None
    return Scev(loop, loop.count, tuple(updates), per_iter, tuple(sorted(kinds.items())))


def scev_pass(seq: tuple) -> tuple:
    return tuple(_scev_map(n) for n in seq)


# ---------------------------------------------------------------------------------------------
# Entry points

_PASS_FUNCS = {"fold": fold_pass, "unroll": unroll_pass, "dce": dce_pass, "scev": scev_pass}


def optimize_sequence(seq, timings: dict | None = None, passes=PASSES, dump_after: str | None = None,
                      dump=None) -> tuple:
    """Run `passes` (in the given order) over a top-level sequence.

    `timings[pass] = wall time in µs`; `dump(pass, tree)` is called after `dump_after`.
    """
    tree = tuple(seq)
    for p in passes:
        f = _PASS_FUNCS.get(p)
        if f is None:
            raise ValueError(f"unknown optimizer pass {p!r} (expected one of {', '.join(PASSES)})")
        t0 = time.perf_counter_ns()
        tree = f(tree)
        if timings is not None:
            timings[p] = round((time.perf_counter_ns() - t0) / 1000, 1)
        if dump is not None and dump_after == p:
            dump(p, tree)
    return tree


def optimize_node(node):
    """Optimize a callee (a fresh frame): a Scope's children as a sequence; the Scope is kept."""
    if type(node) is ir.Scope:
        ch = optimize_sequence(node.children)
        return node if _same(ch, node.children) else dc_replace(node, children=ch)
    out = optimize_sequence((node,))
    return out[0]


__all__ = ["PASSES", "UNROLL_BUDGET", "optimize_sequence", "optimize_node", "fold_pass",
           "unroll_pass", "dce_pass", "scev_pass", "match_scev", "stack_clean", "targets_break",
           "format_sequence", "strip", "strip_seq"]
