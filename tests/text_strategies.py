"""Hypothesis strategies for the text front end.

In: nothing (hypothesis draws).
Out: `text_modules()` — pairs `(module, names)` of random *text-expressible* `nda.core.ir.Module`s
(every construct of `language.md` §4.3: prologues, calls between the module's functions,
static and dynamic loops with correctly numbered `_loop_cnt_{i}` counters, else-if chains,
synthetic matrices and norms, negative and special float literals, all operators) and the
name_hash → name mapping the printer needs (loop counters deliberately left out: the printer
must recover them). `mutated_sources()` — example programs with random character/token edits.
"""

from __future__ import annotations

from hypothesis import strategies as st

from nda.core.ir import (
    Add, Bitwise, BitwiseOp, Break, Cast, CmpOp, Compare, Def, Dot, Float, Gemv, If, Int, Let,
    Load, Loop, Math, MathFunc, MathFuncKind, MathOp, Module, Peek, Poke, Print, Return, Scope,
    Store, VecOp, VecOpKind, While, name_hash,
)
from nda.syntax.text import KEYWORDS
from nda.syntax.text import lower as L

IDENTS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
I32 = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31)]))
F32_SPECIAL = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x00000001, 0x80000001,
               0x7F7FFFFF, 0x3F800000, 0x3DCCCCCD, 0x38D1B717, 0x5A0E1BCA]
F32_BITS = st.one_of(st.integers(0, 2**32 - 1), st.sampled_from(F32_SPECIAL)).filter(
    lambda b: not ((b & 0x7F800000) == 0x7F800000 and (b & 0x7FFFFF)))  # no NaN


class _Ctx:
    def __init__(self, fns: list[str], vars_: list[int]):
        self.fns = fns
        self.vars = vars_
        self.loops = 0


def _expr(draw, ctx: _Ctx, depth: int):
    leaves = ["int", "float", "load", "matrix", "norm", "call0"]
    inner = ["add", "math", "bitwise", "not", "cmp", "vecop", "mathfunc", "dot", "gemv", "peek",
             "poke", "cast", "call"]
    kind = draw(st.sampled_from(leaves + inner if depth > 0 else leaves))
    sub = lambda: _expr(draw, ctx, depth - 1)  # noqa: E731
    if kind == "int":
        return Int(draw(I32))
    if kind == "float":
        return Float(draw(F32_BITS))
    if kind == "load":
        return Load(draw(st.sampled_from(ctx.vars)))
    if kind == "matrix":
        return L.synthetic_matrix(draw(st.integers(1, 12)), draw(st.integers(1, 20)), L.PlaneBudget(None))
    if kind == "norm":
        return L.synthetic_norm(draw(st.integers(1, 20)), L.PlaneBudget(None))
    if kind == "call0":
        return L.call(draw(st.sampled_from(ctx.fns)), [], None)
    if kind == "call":
        n = draw(st.integers(1, 3))
        return L.call(draw(st.sampled_from(ctx.fns)), [sub() for _ in range(n)], None)
    if kind == "add":
        return Add(sub(), sub())
    if kind == "math":
        return Math(draw(st.sampled_from([MathOp.Sub, MathOp.Mul, MathOp.Div])), sub(), sub())
    if kind == "bitwise":
        op = draw(st.sampled_from([o for o in BitwiseOp if o != BitwiseOp.Not]))
        return Bitwise(op, sub(), sub())
    if kind == "not":
        return Bitwise(BitwiseOp.Not, sub(), None)
    if kind == "cmp":
        return Compare(draw(st.sampled_from(list(CmpOp))), sub(), sub())
    if kind == "vecop":
        return VecOp(draw(st.sampled_from(list(VecOpKind))), sub())
    if kind == "mathfunc":
        return MathFunc(draw(st.sampled_from(list(MathFuncKind))), sub())
    if kind == "dot":
        return Dot(sub(), sub())
    if kind == "gemv":
        return Gemv(sub(), sub())
    if kind == "peek":
        return Peek(sub())
    if kind == "poke":
        return Poke(sub(), sub())
    frm, to = draw(st.sampled_from(list(L.CAST_BUILTINS.values())))
    return Cast(frm, to, sub())


def _block(draw, ctx: _Ctx, depth: int) -> tuple:
    n = draw(st.integers(0, 3))
    return tuple(_stmt(draw, ctx, depth) for _ in range(n))


def _stmt(draw, ctx: _Ctx, depth: int):
    simple = ["let", "store", "print", "return", "break", "expr"]
    nested = ["while", "loop", "if", "dynloop"]
    kind = draw(st.sampled_from(simple + nested if depth > 0 else simple))
    e = lambda: _expr(draw, ctx, draw(st.integers(0, 2)))  # noqa: E731
    if kind == "let":
        return Let(draw(st.sampled_from(ctx.vars)), e())
    if kind == "store":
        return Store(draw(st.sampled_from(ctx.vars)), e())
    if kind == "print":
        return Print(e())
    if kind == "return":
        return Return(e())
    if kind == "break":
        return Break()
    if kind == "expr":
        return e()
    if kind == "while":
        return While(e(), _block(draw, ctx, depth - 1))
    if kind == "loop":
        return Loop(draw(st.integers(0, 2**32 - 1)), _block(draw, ctx, depth - 1))
    if kind == "dynloop":
        counter = name_hash(L.loop_counter_name(ctx.loops))  # numbered in pre-order
        ctx.loops += 1
        return L.dynamic_loop(counter, e(), _block(draw, ctx, depth - 1), None)
    cond = e()
    then = _block(draw, ctx, depth - 1)
    shape = draw(st.sampled_from(["none", "empty", "block", "elseif"]))
    if shape == "none":
        return If(cond, then, None)
    if shape == "empty":
        return If(cond, then, ())
    if shape == "block":
        return If(cond, then, _block(draw, ctx, depth - 1))
    inner = _stmt_if(draw, ctx, depth - 1)
    return If(cond, then, (inner,))


def _stmt_if(draw, ctx: _Ctx, depth: int):
    cond = _expr(draw, ctx, 1)
    then = _block(draw, ctx, max(depth - 1, 0))
    return If(cond, then, draw(st.sampled_from([None, ()])))


@st.composite
def text_modules(draw, max_defs: int = 3, max_depth: int = 3):
    fns = draw(st.lists(IDENTS, min_size=1, max_size=max_defs, unique=True))
    var_names = draw(st.lists(IDENTS, min_size=1, max_size=5, unique=True))
    if draw(st.booleans()):
        var_names.append("_loop_cnt_0")  # a user variable that looks like a counter
    names = {name_hash(v): v for v in var_names}
    vars_ = list(names)
    defs = []
    for f in fns:
        ctx = _Ctx(fns, vars_)
        params = draw(st.lists(st.sampled_from(vars_), max_size=3))
        body = _block(draw, ctx, max_depth)
        prologue = L.prologue([(p, None) for p in params])
        defs.append(Def(f, Scope((*prologue, *body))))
    if "_loop_cnt_0" in var_names:
        del names[name_hash("_loop_cnt_0")]  # must be recovered by the printer
    return Module(tuple(defs)), names


EXAMPLES = [
    "fn main() { let s = 0  loop 5 { s = s + 1 }  print(s) }",
    "fn main() { let x = 7  if x > 5 { print(1) } else { print(0) } }",
    "fn main() { let n = 3  loop n { print(n) } }",
    "fn main() { matrix[128, 896]  norm[128] }",
    "fn sum(n: int) -> int {\n    if n <= 0 { return 0 }\n    return n + sum(n - 1)\n}\n"
    "fn main() { print(sum(4)) }",
    "fn main() { poke(16, (6 & 3) << 4)  print(peek(16)) }",
    "fn main(x: vec) { let y = silu(x) ~y ^ 3 >= -2.5e-3 vec[y; 8] while y != 0 { break } }",
    'fn f(a: int, b: float) -> vec { return dot(a, gemv(matrix(2; 3), vec(b))) }\n'
    'fn main() { f(1, 2) // comment\n if 1 { } else if 2 { } else { norm(4) } }',
]
SNIPPETS = ["fn", "main", "(", ")", "{", "}", "[", "]", ",", ";", ":", "->", "=", "==", "<<",
            "-", "~", "let", "loop", "while", "if", "else", "x", "1", "0x", "1.5e", "\"", "\\",
            "//", "\n", "vec", "matrix", "norm", "print", "return", "break", "f(", "!", "@",
            "99999999999", "é", "\x00", " "]


@st.composite
def mutated_sources(draw):
    """An example program with 1–4 random insertions, deletions or replacements."""
    src = draw(st.sampled_from(EXAMPLES))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(src)))
        op = draw(st.sampled_from(["ins", "del", "rep", "dup"]))
        piece = draw(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=3)))
        if op == "ins":
            src = src[:pos] + piece + src[pos:]
        elif op == "del":
            src = src[:pos] + src[pos + draw(st.integers(1, 5)):]
        elif op == "rep":
            src = src[:pos] + piece + src[pos + 1:]
        else:
            end = min(len(src), pos + draw(st.integers(1, 30)))
            src = src[:pos] + src[pos:end] * draw(st.integers(2, 5)) + src[end:]
    return src
