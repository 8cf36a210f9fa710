"""Hypothesis strategies for random *runnable* NDA programs (differential testing of tiers).

Programs use every language-level node kind: scalar arithmetic on a small variable pool,
nested Loop/While/If with Break and Return, Matrix/Norm/Add chains whose shapes usually agree
(and sometimes deliberately do not), vector kernels, the simulated machine (Peek/Poke/Syscall),
no-op nodes, and Calls into a module of callees (which may recurse). Errors are welcome: every
tier must fail the same way. Loop counts are small and runs use tight limits so that each
example finishes in milliseconds.
"""

from __future__ import annotations

from hypothesis import strategies as st

from nda.core import ir
from nda.runtime.state import Limits

VARS = [ir.name_hash(n) for n in ("x", "y", "z", "i")]
DIMS = (8, 16)


def _planes(draw, nbytes):
    pat = draw(st.sampled_from([b"\xaa", b"\x55", b"\xff", b"\x0f", b"\xa5\x3c", b"\x00"]))
    return (pat * (nbytes // len(pat) + 1))[:nbytes]


class Gen:
    def __init__(self, draw, dim: int, funcs: list[str], in_callee: bool):
        self.draw = draw
        self.dim = dim
        self.funcs = funcs
        self.in_callee = in_callee

    def choice(self, options):
        return self.draw(st.sampled_from(options))

    def small_int(self):
        return self.draw(st.one_of(st.integers(-4, 9), st.sampled_from([2**31 - 1, -2**31, 1 << 20, -7])))

    # -- expressions (push one value, usually)
    def expr(self, depth: int) -> ir.Node:
        d = self.draw
        leaves = ["int", "int", "load", "load", "float", "scope_input"]
        inner = ["add", "add", "cmp", "math", "vecop", "bitwise", "bitnot", "mathfunc", "cast",
                 "peek", "matrix", "norm", "dot", "gemv", "let", "call", "scope_expr"]
        k = self.choice(leaves if depth <= 0 else leaves + inner * 2)
        if k == "int":
            return ir.Int(self.small_int())
        if k == "float":
            return ir.Float.of(d(st.sampled_from([0.5, -1.5, 2.0, 3.25, -0.0, 1e-3, 100.0])))
        if k == "load":
            return ir.Load(self.choice(VARS))
        if k == "scope_input":
            return ir.Scope(())  # pushes nothing: the operator pops what is below
        if k == "add":
            return ir.Add(self.expr(depth - 1), self.expr(depth - 1))
        if k == "cmp":
            return ir.Compare(ir.CmpOp(d(st.integers(0, 5))), self.expr(depth - 1), self.expr(depth - 1))
        if k == "math":
            return ir.Math(ir.MathOp(d(st.integers(0, 3))), self.expr(depth - 1), self.expr(depth - 1))
        if k == "vecop":
            return ir.VecOp(ir.VecOpKind(d(st.integers(0, 3))), self.expr(depth - 1))
        if k == "bitwise":
            op = self.choice([0, 1, 2, 4, 5])
            rhs = self.expr(depth - 1) if d(st.integers(0, 9)) else None
            return ir.Bitwise(ir.BitwiseOp(op), self.expr(depth - 1), rhs)
        if k == "bitnot":
            return ir.Bitwise(ir.BitwiseOp.Not, self.expr(depth - 1), None)
        if k == "mathfunc":
            return ir.MathFunc(ir.MathFuncKind(d(st.integers(0, 3))), self.expr(depth - 1))
        if k == "cast":
            return ir.Cast(ir.TypeKind(d(st.integers(0, 2))), ir.TypeKind(d(st.integers(0, 2))), self.expr(depth - 1))
        if k == "peek":
            addr = self.choice([ir.Int(16), ir.Int(0), ir.Int(65532), ir.Int(70000),
                                ir.Int(-268435456), self.expr(depth - 1)])
            return ir.Peek(addr)
        if k == "matrix":
            rows = self.choice([self.dim, 8, 16, 3])
            cols = self.choice([self.dim, self.dim, 8, 5])
            n = rows * ((cols + 7) // 8)
            return ir.Scope((self.expr(depth - 1), ir.Matrix(rows, cols, d(st.integers(-2, 2)),
                                                              _planes(d, n), _planes(d, n))))
        if k == "norm":
            size = self.choice([self.dim, self.dim, 8, 1])
            n = (size + 7) // 8
            return ir.Scope((self.expr(depth - 1), ir.Norm(size, _planes(d, n), _planes(d, n))))
        if k == "dot":
            return ir.Dot(self.expr(depth - 1), self.expr(depth - 1))
        if k == "gemv":
            return ir.Gemv(self.expr(depth - 1), self.expr(depth - 1))
        if k == "let":
            cls = self.choice([ir.Let, ir.Store])
            return cls(self.choice(VARS), self.expr(depth - 1))
        if k == "call" and self.funcs:
            args = tuple(self.expr(depth - 1) for _ in range(d(st.integers(0, 2))))
            return ir.Scope(args + (ir.Call(ir.NamedRef(self.choice(self.funcs))),))
        return ir.Scope(tuple(self.stmt(depth - 1, False) for _ in range(d(st.integers(1, 2)))))

    # -- statements
    def stmt(self, depth: int, in_loop: bool) -> ir.Node:
        d = self.draw
        kinds = ["let", "let", "store", "expr", "print"]
        if depth > 0:
            kinds += ["loop", "loop", "while", "if", "if", "scope", "poke", "syscall", "noop"]
        if in_loop:
            kinds += ["break"]
        if self.in_callee or d(st.integers(0, 5)) == 0:
            kinds += ["return"]
        k = self.choice(kinds)
        if k == "let":
            return ir.Let(self.choice(VARS), self.expr(depth))
        if k == "store":
            v = self.choice(VARS)
            return ir.Store(v, ir.Add(ir.Load(v), ir.Int(self.small_int())))
        if k == "expr":
            return self.expr(depth)
        if k == "print":
            return ir.Print(self.expr(depth))
        if k == "break":
            return ir.Break()
        if k == "return":
            return ir.Return(self.expr(depth - 1 if depth > 0 else 0))
        if k == "loop":
            return ir.Loop(d(st.integers(0, 4)), self.body(depth - 1, True))
        if k == "while":
            v = self.choice(VARS)
            # mostly terminating: count a variable down; sometimes an arbitrary condition
            if d(st.booleans()):
                cond = ir.Compare(ir.CmpOp.Gt, ir.Load(v), ir.Int(0))
                body = self.body(depth - 1, True) + (ir.Store(v, ir.Add(ir.Load(v), ir.Int(-1))),)
                return ir.Scope((ir.Let(v, ir.Int(d(st.integers(0, 4)))), ir.While(cond, body)))
            return ir.While(self.expr(depth - 1), self.body(depth - 1, True))
        if k == "if":
            other = self.body(depth - 1, in_loop) if d(st.booleans()) else None
            return ir.If(self.expr(depth - 1), self.body(depth - 1, in_loop), other)
        if k == "scope":
            return ir.Scope(self.body(depth - 1, in_loop))
        if k == "poke":
            addr = self.choice([ir.Int(16), ir.Int(65532), ir.Int(65533), ir.Int(-268435456),
                                ir.Int(-268435452), self.expr(depth - 1)])
            return ir.Poke(addr, self.expr(depth - 1))
        if k == "syscall":
            return ir.Syscall(self.choice([1, 1, 2]), tuple(self.expr(depth - 1) for _ in range(d(st.integers(0, 2)))))
        # no-op nodes: children are never evaluated
        cls = self.choice(["spawn", "atomic", "alloc", "free", "regint", "gpu", "triple"])
        junk = ir.Load(ir.name_hash("never_bound"))
        return {
            "spawn": ir.Spawn(7), "atomic": ir.Atomic(ir.AtomicOp.Faa, junk, junk),
            "alloc": ir.Alloc(junk), "free": ir.Free(junk), "regint": ir.RegInt(3, 9),
            "gpu": ir.GpuDispatch(5, (junk,)), "triple": ir.Triple(1, 2, 3),
        }[cls]

    def body(self, depth: int, in_loop: bool) -> tuple:
        return tuple(self.stmt(depth, in_loop) for _ in range(self.draw(st.integers(0, 3))))


def _bind_vars(draw, names) -> tuple:
    """Usually bind the whole variable pool first, so that runs get past the first Load."""
    if draw(st.integers(0, 4)) == 0:
        return ()
    return tuple(ir.Let(v, ir.Int(draw(st.integers(-3, 5)))) for v in names)


@st.composite
def programs(draw, max_depth: int = 3, with_calls: bool = True):
    """→ (module: ir.Module whose `main` is the program, input: list[float], limits: Limits)."""
    dim = draw(st.sampled_from(DIMS))
    nfuncs = draw(st.integers(0, 3)) if with_calls else 0
    funcs = [f"f{i}" for i in range(nfuncs)]
    defs = []
    for name in funcs:
        g = Gen(draw, dim, funcs, in_callee=True)
        # parameter prologue for one parameter, sometimes
        pro = (ir.Let(VARS[0], ir.Scope(())), ir.If(ir.Scope(()), (), None)) if draw(st.booleans()) else ()
        defs.append(ir.Def(name, ir.Scope(pro + _bind_vars(draw, VARS[1:] if pro else VARS) + g.body(max(1, max_depth - 1), False))))
    g = Gen(draw, dim, funcs, in_callee=False)
    main_body = _bind_vars(draw, VARS) + tuple(g.stmt(max_depth, False) for _ in range(draw(st.integers(1, 5))))
    defs.append(ir.Def("main", ir.Scope(main_body)))
    inp = draw(st.lists(st.sampled_from([1.0, -1.0, 0.5, 2.0, -0.25, 3.0, 0.0]), min_size=dim, max_size=dim))
    if draw(st.integers(0, 9)) == 0:
        inp = inp[: dim // 2]  # shape mismatch on purpose
    limits = Limits(
        fuel=draw(st.sampled_from([20_000, 20_000, 50, 200, 1000])),
        max_while_iterations=draw(st.sampled_from([100, 100, 3])),
        max_call_depth=draw(st.sampled_from([8, 8, 2])),
        max_output_bytes=draw(st.sampled_from([100_000, 100_000, 60])),
        max_memory_bytes=draw(st.sampled_from([1 << 24, 1 << 24, 65536 + 200])),
        deadline_ms=60_000,
    )
    return ir.Module(tuple(defs)), inp, limits
