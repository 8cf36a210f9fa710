"""Lowering rules of the text syntax (`language.md` §4.3): source constructs → `nda.core.ir` nodes.

In: already-parsed pieces (tokens, child nodes, spans) handed over by `parser.py`.
Out: IR nodes exactly as the lowering table prescribes, plus the tables that `printer.py`
uses to invert them (operator spellings, builtin names, synthetic plane patterns, the dynamic
loop and parameter-prologue shapes).

Everything here is pure except `PlaneBudget`, a per-parse object that shares identical
synthetic planes and bounds their total size (a resource guard, see `MAX_PLANE_BYTES`).
"""

from __future__ import annotations

from nda.core.errors import Span
from nda.core.ir import (
    Add, Bitwise, BitwiseOp, Call, Cast, CmpOp, Compare, Dot, Float, Gemv, If, Int, Let, Load,
    Math, MathFunc, MathFuncKind, MathOp, Matrix, NamedRef, Node, Norm, Peek, Poke, Scope,
    Store, TypeKind, VecOp, VecOpKind, While, name_hash,
)

# Binary operators: token → (precedence, IR factory key). Lowest precedence first (§4.2).
BINARY_PREC: dict[str, int] = {
    "==": 1, "!=": 1, "<": 1, ">": 1, "<=": 1, ">=": 1,
    "|": 2, "^": 3, "&": 4, "<<": 5, ">>": 5, "+": 6, "-": 6, "*": 7, "/": 7,
}
UNARY_PREC = 8
PRIMARY_PREC = 9

CMP_TOKENS: dict[str, CmpOp] = {
    "==": CmpOp.Eq, "!=": CmpOp.Ne, "<": CmpOp.Lt, ">": CmpOp.Gt, "<=": CmpOp.Le, ">=": CmpOp.Ge,
}
BITWISE_TOKENS: dict[str, BitwiseOp] = {
    "&": BitwiseOp.And, "|": BitwiseOp.Or, "^": BitwiseOp.Xor,
    "<<": BitwiseOp.Shl, ">>": BitwiseOp.Shr,
}
MATH_TOKENS: dict[str, MathOp] = {"-": MathOp.Sub, "*": MathOp.Mul, "/": MathOp.Div}

# Inverse tables for the printer.
CMP_SPELLING = {v: k for k, v in CMP_TOKENS.items()}
BITWISE_SPELLING = {v: k for k, v in BITWISE_TOKENS.items()}
MATH_SPELLING = {v: k for k, v in MATH_TOKENS.items()}

VECOP_BUILTINS: dict[str, VecOpKind] = {
    "silu": VecOpKind.SiLU, "negate": VecOpKind.Negate, "abs": VecOpKind.Abs,
    "reduce_sum": VecOpKind.ReduceSum,
}
MATHFUNC_BUILTINS: dict[str, MathFuncKind] = {
    "sqrt": MathFuncKind.Sqrt, "sin": MathFuncKind.Sin, "cos": MathFuncKind.Cos,
    "exp": MathFuncKind.Exp,
}
CAST_BUILTINS: dict[str, tuple[TypeKind, TypeKind]] = {
    "int": (TypeKind.Float, TypeKind.Int), "float": (TypeKind.Int, TypeKind.Float),
}
VECOP_SPELLING = {v: k for k, v in VECOP_BUILTINS.items()}
MATHFUNC_SPELLING = {v: k for k, v in MATHFUNC_BUILTINS.items()}
CAST_SPELLING = {v: k for k, v in CAST_BUILTINS.items()}
UNARY_BUILTINS = frozenset(VECOP_BUILTINS) | frozenset(MATHFUNC_BUILTINS) | {"peek", "int", "float"}
BINARY_BUILTINS = frozenset({"add", "dot", "gemv", "poke"})
TYPE_KEYWORDS = ("vec", "matrix", "norm", "int", "float")

DIM_MIN, DIM_MAX = 1, 65535
LOOP_COUNTER_PREFIX = "_loop_cnt_"
# Default bound on the total bytes of distinct synthetic planes one parse may allocate
# (`matrix[65535, 65535]` alone would need 2 × 512 MiB). Configurable per call.
MAX_PLANE_BYTES = 64 * 1024 * 1024


def wrap32(v: int) -> int:
    """Reduce an integer to the signed 32-bit range (two's complement)."""
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v >= 0x80000000 else v


def clamp_dim(v: int) -> int:
    return DIM_MIN if v < DIM_MIN else DIM_MAX if v > DIM_MAX else v


def loop_counter_name(i: int) -> str:
    return f"{LOOP_COUNTER_PREFIX}{i}"


def span_join(a: Span | None, b: Span | None) -> Span | None:
    """The span from the start of `a` to the end of `b`."""
    if a is None or b is None:
        return a or b
    return Span(a.line, a.col, b.end_line, b.end_col, file=a.file)


def alternating(first: int, second: int, n: int) -> bytes:
    """`n` bytes alternating first, second, first, … (by byte index over the whole plane)."""
    return (bytes((first, second)) * ((n + 1) // 2))[:n]


class PlaneTooLarge(Exception):
    """A synthetic matrix would exceed the per-parse plane budget."""

    def __init__(self, needed: int, limit: int):
        super().__init__(needed, limit)
        self.needed = needed
        self.limit = limit


class PlaneBudget:
    """Per-parse cache of synthetic planes (keyed by length) with a total-size bound."""

    def __init__(self, limit: int | None = MAX_PLANE_BYTES):
        self.limit = limit
        self.used = 0
        self._cache: dict[tuple[int, int, int], bytes] = {}

    def plane(self, first: int, second: int, n: int) -> bytes:
        key = (first, second, n)
        got = self._cache.get(key)
        if got is None:
            if self.limit is not None and self.used + n > self.limit:
                raise PlaneTooLarge(self.used + n, self.limit)
            self.used += n
            got = self._cache[key] = alternating(first, second, n)
        return got


def synthetic_matrix(rows: int, cols: int, budget: PlaneBudget, span: Span | None = None) -> Matrix:
    """`matrix[r, c]`: clamped dims, scale 0, sign aa55…, extra 55aa… (raises PlaneTooLarge)."""
    rows, cols = clamp_dim(rows), clamp_dim(cols)
    n = rows * ((cols + 7) // 8)
    return Matrix(rows, cols, 0, budget.plane(0xAA, 0x55, n), budget.plane(0x55, 0xAA, n), span)


def synthetic_norm(size: int, budget: PlaneBudget, span: Span | None = None) -> Norm:
    """`norm[n]`: clamped size, weight ff…, bias 00…."""
    size = clamp_dim(size)
    n = (size + 7) // 8
    return Norm(size, budget.plane(0xFF, 0xFF, n), budget.plane(0, 0, n), span)


def is_synthetic_matrix(node: Node) -> bool:
    if not isinstance(node, Matrix) or node.scale != 0:
        return False
    if not (DIM_MIN <= node.rows <= DIM_MAX and DIM_MIN <= node.cols <= DIM_MAX):
        return False
    n = node.plane_len
    return (len(node.sign) == n and len(node.extra) == n
            and node.sign == alternating(0xAA, 0x55, n) and node.extra == alternating(0x55, 0xAA, n))


def is_synthetic_norm(node: Node) -> bool:
    if not isinstance(node, Norm) or not DIM_MIN <= node.size <= DIM_MAX:
        return False
    n = node.plane_len
    return node.weight == b"\xff" * n and node.bias == bytes(n)


def binary(op: str, lhs: Node, rhs: Node) -> Node:
    """The node for `lhs op rhs` (`op` a key of BINARY_PREC)."""
    span = span_join(lhs.span, rhs.span)
    if op == "+":
        return Add(lhs, rhs, span)
    if op in MATH_TOKENS:
        return Math(MATH_TOKENS[op], lhs, rhs, span)
    if op in BITWISE_TOKENS:
        return Bitwise(BITWISE_TOKENS[op], lhs, rhs, span)
    return Compare(CMP_TOKENS[op], lhs, rhs, span)


def unary(op: str, operand: Node, span: Span | None) -> Node:
    """`-e` → VecOp{Negate}; `~e` → Bitwise{Not, e, none} (`span` covers operator and operand)."""
    if op == "-":
        return VecOp(VecOpKind.Negate, operand, span)
    return Bitwise(BitwiseOp.Not, operand, None, span)


def int_literal(value: int, negative: bool, span: Span | None) -> Int:
    return Int(wrap32(-value) if negative else wrap32(value), span)


def float_literal(bits: int, negative: bool, span: Span | None) -> Float:
    return Float(bits ^ 0x80000000 if negative else bits, span)


def builtin_unary(name: str, operand: Node, span: Span | None) -> Node:
    if name in VECOP_BUILTINS:
        return VecOp(VECOP_BUILTINS[name], operand, span)
    if name in MATHFUNC_BUILTINS:
        return MathFunc(MATHFUNC_BUILTINS[name], operand, span)
    if name == "peek":
        return Peek(operand, span)
    frm, to = CAST_BUILTINS[name]
    return Cast(frm, to, operand, span)


def builtin_binary(name: str, a: Node, b: Node, span: Span | None) -> Node:
    if name == "add":
        return Add(a, b, span)
    if name == "dot":
        return Dot(a, b, span)
    if name == "gemv":
        return Gemv(a, b, span)
    return Poke(a, b, span)


def call(name: str, args: list[Node], span: Span | None) -> Scope:
    """`f(a, …)` → Scope{a, …, Call{NamedRef(f)}}."""
    return Scope((*args, Call(NamedRef(name), span)), span)


def prologue(params: list[tuple[int, Span | None]]) -> list[Node]:
    """Parameter binding (§3.4): last parameter first, each Let{p, Scope{}} + If{Scope{}}."""
    out: list[Node] = []
    for h, span in reversed(params):
        out.append(Let(h, Scope((), span), span))
        out.append(If(Scope((), span), (), None, span))
    return out


def dynamic_loop(counter: int, count: Node, body: tuple[Node, ...], span: Span | None) -> Scope:
    """`loop e {…}` → Scope{Let{k, e}, While{k > 0, body + [k = k + -1]}}."""
    s = count.span or span
    return Scope((
        Let(counter, count, s),
        While(Compare(CmpOp.Gt, Load(counter, s), Int(0, s), s),
              (*body, Store(counter, Add(Load(counter, s), Int(-1, s), s), s)), span),
    ), span)


def match_dynamic_loop(node: Node) -> tuple[int, Node, tuple[Node, ...]] | None:
    """(counter hash, count expression, user body) if `node` has the dynamic-loop shape."""
    if not isinstance(node, Scope) or len(node.children) != 2:
        return None
    let, wh = node.children
    if not isinstance(let, Let) or not isinstance(wh, While) or not wh.body:
        return None
    k = let.name
    if wh.cond != Compare(CmpOp.Gt, Load(k), Int(0)):
        return None
    if wh.body[-1] != Store(k, Add(Load(k), Int(-1))):
        return None
    return k, let.init, wh.body[:-1]


def is_prologue_pair(a: Node, b: Node) -> bool:
    return (isinstance(a, Let) and a.init == Scope(())
            and isinstance(b, If) and b.cond == Scope(()) and b.then_body == () and b.else_body is None)


class NameTable:
    """name → name_hash with memoisation, remembering every name seen (hash → name)."""

    def __init__(self) -> None:
        self.by_name: dict[str, int] = {}
        self.by_hash: dict[int, str] = {}

    def __call__(self, name: str) -> int:
        h = self.by_name.get(name)
        if h is None:
            h = self.by_name[name] = name_hash(name)
            self.by_hash.setdefault(h, name)
        return h
