"""The NDA intermediate representation: a closed set of frozen, slotted node dataclasses.

In: nothing (this is the vocabulary every stage speaks).
Out: the 34 node kinds of `language.md` §3 with their numeric opcode ids and sub-enums, call
targets, `Module` (named definitions before hashing), and generic helpers (`children`,
`replace_children`, `walk`, `NodeVisitor`) driven by each class's `FIELDS` table.
Nodes built through the Python API may share subtrees (a DAG); `walk` and `node_depth` see
the expanded tree, once per occurrence (`dag.measure` measures it per distinct object).

Conventions:
- Child lists are tuples; an absent optional child is `None` (an absent else-branch is `None`,
  an empty one is `()`).
- `Float` keeps the exact f32 bit pattern (`bits`, a u32) so that equality and hashing are exact
  for NaN payloads and signed zeros; `Float.of(x)` rounds a number to the nearest f32.
- Integer fields hold their declared range (`Int.value` is an i32, names are u64, …); the
  structural validator of the gate rejects out-of-range values produced by decoders.
- `span` rides along for diagnostics but takes no part in equality, hashing or repr.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields as dc_fields, replace as dc_replace
from enum import IntEnum
from typing import Callable, ClassVar, Iterator, Sequence, Union

from nda.core.errors import Span

# ---------------------------------------------------------------------------------------------
# Opcode ids (language.md §2)


class Op(IntEnum):
    Scope = 0
    EndScope = 1  # stream token only
    Matrix = 2
    Norm = 3
    Call = 4
    Int = 5
    Root = 6  # stream token only
    Bit0 = 7  # stream token only
    Bit1 = 8  # stream token only
    Loop = 9
    While = 10
    If = 11
    Compare = 12
    Let = 13
    Load = 14
    Store = 15
    Add = 16
    VecOp = 17
    Print = 18
    Return = 19
    Break = 20
    Bitwise = 21
    Float = 22
    Math = 23
    MathFunc = 24
    Peek = 25
    Poke = 26
    Gemv = 27
    Dot = 28
    Syscall = 29
    Spawn = 30
    Atomic = 31
    Alloc = 32
    Free = 33
    RegInt = 34
    Cast = 35
    GpuDispatch = 36
    Triple = 37


VOCAB_SIZE = 38
STREAM_TOKENS = frozenset({Op.EndScope, Op.Root, Op.Bit0, Op.Bit1})


class CmpOp(IntEnum):
    Eq = 0
    Ne = 1
    Lt = 2
    Gt = 3
    Le = 4
    Ge = 5


class VecOpKind(IntEnum):
    SiLU = 0
    Negate = 1
    Abs = 2
    ReduceSum = 3


class BitwiseOp(IntEnum):
    And = 0
    Or = 1
    Xor = 2
    Not = 3
    Shl = 4
    Shr = 5


class MathOp(IntEnum):
    Add = 0
    Sub = 1
    Mul = 2
    Div = 3


class MathFuncKind(IntEnum):
    Sin = 0
    Cos = 1
    Sqrt = 2
    Exp = 3


class AtomicOp(IntEnum):
    Cas = 0
    Faa = 1


class TypeKind(IntEnum):
    Int = 0
    Float = 1
    Vector = 2


# S-expression spellings of the sub-enums (language.md §2)
ENUM_SPELLING: dict[type, dict[int, str]] = {
    CmpOp: {0: "eq", 1: "ne", 2: "lt", 3: "gt", 4: "le", 5: "ge"},
    VecOpKind: {0: "silu", 1: "negate", 2: "abs", 3: "reduce_sum"},
    BitwiseOp: {0: "and", 1: "or", 2: "xor", 3: "not", 4: "shl", 5: "shr"},
    MathOp: {0: "add", 1: "sub", 2: "mul", 3: "div"},
    MathFuncKind: {0: "sin", 1: "cos", 2: "sqrt", 3: "exp"},
    AtomicOp: {0: "cas", 1: "faa"},
    TypeKind: {0: "int", 1: "float", 2: "vector"},
}

# ---------------------------------------------------------------------------------------------
# Call targets (formats.md §2)


@dataclass(frozen=True, slots=True)
class Hash32:
    """A v2 content address (32-byte SHA-256 digest)."""

    digest: bytes

    def __str__(self) -> str:
        return self.digest.hex()


@dataclass(frozen=True, slots=True)
class Legacy64:
    """A v1 hash (u64), looked up in the store's v1 index."""

    value: int

    def __str__(self) -> str:
        return f"{self.value:016x}"


@dataclass(frozen=True, slots=True)
class GroupRef:
    """Member `index` of the recursive group the running code belongs to."""

    index: int

    def __str__(self) -> str:
        return f"g:{self.index}"


@dataclass(frozen=True, slots=True)
class NamedRef:
    """`@name` inside a module, before hashing replaces it by Hash32 or GroupRef.

    Never encoded, hashed, stored or run: `link.link_module` removes every NamedRef.
    """

    name: str

    def __str__(self) -> str:
        return f"@{self.name}"


CallTarget = Union[Hash32, Legacy64, GroupRef, NamedRef]

# ---------------------------------------------------------------------------------------------
# Nodes
#
# FIELDS lists (name, kind) in wire order. Kinds:
#   node, nodes, optnode, optnodes      children
#   i8, u8, u16, u32, i32, u64          integers
#   enum:<EnumName>                     u8 sub-enum
#   bytes                               raw plane bytes (length implied by other fields)
#   f32                                 f32 bit pattern (u32)
#   target                              call target

_SPAN = dict(default=None, compare=False, hash=False, repr=False)


class Node:
    """Base class of every node kind (no fields of its own)."""

    __slots__ = ()
    OPCODE: ClassVar[Op]
    FIELDS: ClassVar[tuple[tuple[str, str], ...]]

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, slots=True)
class Scope(Node):
    children: tuple[Node, ...] = ()
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Scope
    FIELDS: ClassVar = (("children", "nodes"),)


@dataclass(frozen=True, slots=True)
class Matrix(Node):
    rows: int
    cols: int
    scale: int
    sign: bytes
    extra: bytes
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Matrix
    FIELDS: ClassVar = (("rows", "u16"), ("cols", "u16"), ("scale", "i8"),
                        ("sign", "bytes"), ("extra", "bytes"))

    @property
    def plane_len(self) -> int:
        return self.rows * ((self.cols + 7) // 8)


@dataclass(frozen=True, slots=True)
class Norm(Node):
    size: int
    weight: bytes
    bias: bytes
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Norm
    FIELDS: ClassVar = (("size", "u16"), ("weight", "bytes"), ("bias", "bytes"))

    @property
    def plane_len(self) -> int:
        return (self.size + 7) // 8


@dataclass(frozen=True, slots=True)
class Call(Node):
    target: CallTarget
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Call
    FIELDS: ClassVar = (("target", "target"),)


@dataclass(frozen=True, slots=True)
class Int(Node):
    value: int
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Int
    FIELDS: ClassVar = (("value", "i32"),)


@dataclass(frozen=True, slots=True)
class Loop(Node):
    count: int
    body: tuple[Node, ...] = ()
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Loop
    FIELDS: ClassVar = (("count", "u32"), ("body", "nodes"))


@dataclass(frozen=True, slots=True)
class While(Node):
    cond: Node
    body: tuple[Node, ...] = ()
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.While
    FIELDS: ClassVar = (("cond", "node"), ("body", "nodes"))


@dataclass(frozen=True, slots=True)
class If(Node):
    cond: Node
    then_body: tuple[Node, ...] = ()
    else_body: tuple[Node, ...] | None = None
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.If
    FIELDS: ClassVar = (("cond", "node"), ("then_body", "nodes"), ("else_body", "optnodes"))


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: CmpOp
    lhs: Node
    rhs: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Compare
    FIELDS: ClassVar = (("op", "enum:CmpOp"), ("lhs", "node"), ("rhs", "node"))


@dataclass(frozen=True, slots=True)
class Let(Node):
    name: int
    init: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Let
    FIELDS: ClassVar = (("name", "u64"), ("init", "node"))


@dataclass(frozen=True, slots=True)
class Load(Node):
    name: int
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Load
    FIELDS: ClassVar = (("name", "u64"),)


@dataclass(frozen=True, slots=True)
class Store(Node):
    name: int
    value: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Store
    FIELDS: ClassVar = (("name", "u64"), ("value", "node"))


@dataclass(frozen=True, slots=True)
class Add(Node):
    lhs: Node
    rhs: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Add
    FIELDS: ClassVar = (("lhs", "node"), ("rhs", "node"))


@dataclass(frozen=True, slots=True)
class VecOp(Node):
    op: VecOpKind
    operand: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.VecOp
    FIELDS: ClassVar = (("op", "enum:VecOpKind"), ("operand", "node"))


@dataclass(frozen=True, slots=True)
class Print(Node):
    source: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Print
    FIELDS: ClassVar = (("source", "node"),)


@dataclass(frozen=True, slots=True)
class Return(Node):
    value: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Return
    FIELDS: ClassVar = (("value", "node"),)


@dataclass(frozen=True, slots=True)
class Break(Node):
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Break
    FIELDS: ClassVar = ()


@dataclass(frozen=True, slots=True)
class Bitwise(Node):
    op: BitwiseOp
    lhs: Node
    rhs: Node | None = None
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Bitwise
    FIELDS: ClassVar = (("op", "enum:BitwiseOp"), ("lhs", "node"), ("rhs", "optnode"))


@dataclass(frozen=True, slots=True)
class Float(Node):
    bits: int  # the f32 bit pattern, u32
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Float
    FIELDS: ClassVar = (("bits", "f32"),)

    @staticmethod
    def of(x: float, span: Span | None = None) -> "Float":
        """The Float node holding the f32 nearest to `x` (overflow gives ±inf)."""
        return Float(f32_bits(x), span)

    @property
    def value(self) -> float:
        """The f32 value as a Python float (exact)."""
        return struct.unpack("<f", struct.pack("<I", self.bits))[0]


@dataclass(frozen=True, slots=True)
class Math(Node):
    op: MathOp
    lhs: Node
    rhs: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Math
    FIELDS: ClassVar = (("op", "enum:MathOp"), ("lhs", "node"), ("rhs", "node"))


@dataclass(frozen=True, slots=True)
class MathFunc(Node):
    func: MathFuncKind
    operand: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.MathFunc
    FIELDS: ClassVar = (("func", "enum:MathFuncKind"), ("operand", "node"))


@dataclass(frozen=True, slots=True)
class Peek(Node):
    addr: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Peek
    FIELDS: ClassVar = (("addr", "node"),)


@dataclass(frozen=True, slots=True)
class Poke(Node):
    addr: Node
    value: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Poke
    FIELDS: ClassVar = (("addr", "node"), ("value", "node"))


@dataclass(frozen=True, slots=True)
class Gemv(Node):
    matrix: Node
    vector: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Gemv
    FIELDS: ClassVar = (("matrix", "node"), ("vector", "node"))


@dataclass(frozen=True, slots=True)
class Dot(Node):
    lhs: Node
    rhs: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Dot
    FIELDS: ClassVar = (("lhs", "node"), ("rhs", "node"))


@dataclass(frozen=True, slots=True)
class Syscall(Node):
    num: int
    args: tuple[Node, ...] = ()
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Syscall
    FIELDS: ClassVar = (("num", "u32"), ("args", "nodes"))


@dataclass(frozen=True, slots=True)
class Spawn(Node):
    scope_hash: int
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Spawn
    FIELDS: ClassVar = (("scope_hash", "u64"),)


@dataclass(frozen=True, slots=True)
class Atomic(Node):
    op: AtomicOp
    addr: Node
    val: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Atomic
    FIELDS: ClassVar = (("op", "enum:AtomicOp"), ("addr", "node"), ("val", "node"))


@dataclass(frozen=True, slots=True)
class Alloc(Node):
    size: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Alloc
    FIELDS: ClassVar = (("size", "node"),)


@dataclass(frozen=True, slots=True)
class Free(Node):
    addr: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Free
    FIELDS: ClassVar = (("addr", "node"),)


@dataclass(frozen=True, slots=True)
class RegInt(Node):
    vector: int
    handler_hash: int
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.RegInt
    FIELDS: ClassVar = (("vector", "u32"), ("handler_hash", "u64"))


@dataclass(frozen=True, slots=True)
class Cast(Node):
    from_type: TypeKind
    to_type: TypeKind
    operand: Node
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Cast
    FIELDS: ClassVar = (("from_type", "enum:TypeKind"), ("to_type", "enum:TypeKind"),
                        ("operand", "node"))


@dataclass(frozen=True, slots=True)
class GpuDispatch(Node):
    shader_hash: int
    args: tuple[Node, ...] = ()
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.GpuDispatch
    FIELDS: ClassVar = (("shader_hash", "u64"), ("args", "nodes"))


@dataclass(frozen=True, slots=True)
class Triple(Node):
    subject_hash: int
    predicate_id: int
    object_hash: int
    span: Span | None = field(**_SPAN)
    OPCODE: ClassVar[Op] = Op.Triple
    FIELDS: ClassVar = (("subject_hash", "u64"), ("predicate_id", "u16"), ("object_hash", "u64"))


NODE_CLASSES: tuple[type[Node], ...] = (
    Scope, Matrix, Norm, Call, Int, Loop, While, If, Compare, Let, Load, Store, Add, VecOp,
    Print, Return, Break, Bitwise, Float, Math, MathFunc, Peek, Poke, Gemv, Dot, Syscall, Spawn,
    Atomic, Alloc, Free, RegInt, Cast, GpuDispatch, Triple,
)
assert len(NODE_CLASSES) == 34
NODE_BY_OPCODE: dict[int, type[Node]] = {cls.OPCODE: cls for cls in NODE_CLASSES}
NODE_BY_NAME: dict[str, type[Node]] = {cls.__name__: cls for cls in NODE_CLASSES}
ENUMS: dict[str, type[IntEnum]] = {e.__name__: e for e in ENUM_SPELLING}
NOOP_KINDS = (Spawn, Atomic, Alloc, Free, RegInt, GpuDispatch, Triple)

# ---------------------------------------------------------------------------------------------
# Modules (before hashing)


@dataclass(frozen=True, slots=True)
class Def:
    name: str
    node: Node
    span: Span | None = field(**_SPAN)


@dataclass(frozen=True, slots=True)
class Module:
    """Named definitions whose calls may use `NamedRef`; `link.link_module` resolves them."""

    defs: tuple[Def, ...]
    span: Span | None = field(**_SPAN)

    def get(self, name: str) -> Node | None:
        for d in self.defs:
            if d.name == name:
                return d.node
        return None


# ---------------------------------------------------------------------------------------------
# Generic structure helpers


def name_hash(name: str) -> int:
    """u64 of a variable name: first 8 bytes of SHA-256(UTF-8 name), little-endian."""
    import hashlib

    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def f32_bits(x: float) -> int:
    """Bit pattern of the f32 nearest to `x` (round-to-nearest-even; overflow → ±inf)."""
    import numpy as np

    with np.errstate(over="ignore"):
        return int(np.array(x, dtype=np.float32).view(np.uint32))


def f32_bits_from_decimal(text: str) -> int:
    """Bit pattern of the f32 nearest to the decimal `text` (correctly rounded, ties to even).

    Going through a Python float first can round twice; when the double lands exactly on the
    midpoint of two f32 values the tie is settled against the exact decimal value.
    Raises ValueError for text that is not a decimal number.
    """
    import numpy as np
    from fractions import Fraction

    d = float(text)
    bits = f32_bits(d)
    if d != d or d in (float("inf"), float("-inf")):
        return bits
    f = float(np.array(bits, dtype=np.uint32).view(np.float32))
    if f == d or f in (float("inf"), float("-inf")):
        return bits
    # neighbour on the other side of d
    other_bits = bits + 1 if (abs(f) < abs(d)) else bits - 1
    if other_bits < 0 or (other_bits & 0x7F800000) == 0x7F800000:
        return bits
    g = float(np.array(other_bits, dtype=np.uint32).view(np.float32))
    if Fraction(f) + Fraction(g) != 2 * Fraction(d):
        return bits  # d is not a midpoint: single rounding of d is correct
    exact = Fraction(text.strip())
    lo, hi = sorted((f, g))
    mid = (Fraction(lo) + Fraction(hi)) / 2
    if exact < mid:
        return f32_bits(lo)
    if exact > mid:
        return f32_bits(hi)
    return bits if bits % 2 == 0 else other_bits


def children(node: Node) -> Iterator[Node]:
    """Every child node in field order (lists in element order), absent options skipped."""
    for name, kind in node.FIELDS:
        if kind == "node":
            yield getattr(node, name)
        elif kind == "nodes":
            yield from getattr(node, name)
        elif kind == "optnode":
            v = getattr(node, name)
            if v is not None:
                yield v
        elif kind == "optnodes":
            v = getattr(node, name)
            if v is not None:
                yield from v


def replace_children(node: Node, fn: Callable[[Node], Node]) -> Node:
    """A copy of `node` with `fn` applied to each child (identity when nothing changes)."""
    changes = {}
    for name, kind in node.FIELDS:
        v = getattr(node, name)
        if kind == "node":
            nv = fn(v)
            if nv is not v:
                changes[name] = nv
        elif kind in ("nodes", "optnodes"):
            if v is not None:
                nv = tuple(fn(c) for c in v)
                if any(a is not b for a, b in zip(nv, v)):
                    changes[name] = nv
        elif kind == "optnode":
            if v is not None:
                nv = fn(v)
                if nv is not v:
                    changes[name] = nv
    return dc_replace(node, **changes) if changes else node


def walk(node: Node) -> Iterator[Node]:
    """Pre-order traversal (iterative; safe for deep trees)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(list(children(n))))


def _kids_while(n) -> list:
    out = [n.cond]
    out.extend(n.body)
    return out


def _kids_if(n) -> list:
    out = [n.cond]
    out.extend(n.then_body)
    if n.else_body is not None:
        out.extend(n.else_body)
    return out


def child_getter(cls) -> Callable[[Node], Sequence[Node]] | None:
    """A fast `node → sequence of children` (in `children` order) for one node class (None for
    leaf kinds)."""
    from operator import attrgetter

    if cls is While:
        return _kids_while
    if cls is If:
        return _kids_if
    fs = [(n, k) for n, k in cls.FIELDS if k in ("node", "nodes", "optnode", "optnodes")]
    if not fs:
        return None
    if len(fs) == 1 and fs[0][1] == "nodes":
        return attrgetter(fs[0][0])
    if all(k == "node" for _, k in fs):
        if len(fs) == 1:
            name = fs[0][0]
            return lambda n: (getattr(n, name),)
        return attrgetter(*(n for n, _ in fs))
    return lambda n: tuple(children(n))


# class → child_getter(class) for every node class (None for leaves). The tree walks of the
# write path (link, the sandbox's facts pass, `dag.collect`, `dag.measure`, H2, the gate, the text parser) all
# read this one table; a walk meeting a non-node (an ill-formed tree) calls `child_getter`.
CHILD_GETTERS: dict = {cls: child_getter(cls) for cls in NODE_CLASSES}


def node_depth(node: Node) -> int:
    """Nesting depth: a leaf has depth 1 (iterative)."""
    best = 0
    stack = [(node, 1)]
    while stack:
        n, d = stack.pop()
        if d > best:
            best = d
        for c in children(n):
            stack.append((c, d + 1))
    return best


def node_fields(node: Node) -> dict:
    """Field name → value (span excluded), in wire order."""
    return {name: getattr(node, name) for name, _ in node.FIELDS}


class NodeVisitor:
    """Dispatches `visit(node)` to `visit_<Kind>`; subclasses must cover all 34 kinds.

    `missing_methods(cls)` lists kinds a visitor class does not handle (tests use it).
    """

    def visit(self, node: Node):
        return getattr(self, "visit_" + type(node).__name__)(node)

    @classmethod
    def missing_methods(cls) -> list[str]:
        return [c.__name__ for c in NODE_CLASSES if not callable(getattr(cls, "visit_" + c.__name__, None))]


__all__ = [n for n in dir() if not n.startswith("_")] + ["dc_fields"]
