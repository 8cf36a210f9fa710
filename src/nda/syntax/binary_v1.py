"""Binary v1 — the original's tag layout (formats.md §1), for interchange only.

In: IR nodes plus a way to turn call targets into v1 u64s (encode); bytes (decode).
Out: `encode_v1(node, target_h1, aliases)` (§1.1: Hash32 → the callee's v1 hash via
`target_h1(digest)`, GroupRef(i) → `aliases[i]`), `decode_v1` / `decode_v1_prefix` reproducing
the original decoder of §1.2 exactly, including its ambiguities and error texts,
`validate_v1(bytes)` and `v1_roundtrips(node)`.

The v1 layout of every kind except Call is its two-letter tag followed by the same field bytes as
v2 (§2), so the encoder reuses `binary_v2.node_parts` (and its validation). The decoder is a
trampoline over per-node generators (no Python recursion); list counts are not pre-checked, as
in the original, but every element consumes input, so time is bounded by the input length.
Errors are `DecodeError(text, offset)` with the original's texts; `decode_v1` ignores bytes
after the node like the original (use `strict=True` or `validate_v1` to require full
consumption; that error is `v1: trailing bytes at offset {o}`, our wording).
"""

from __future__ import annotations

import struct
from typing import Callable, Optional, Sequence

from nda.core.binary_v2 import DEFAULT_MAX_DEPTH, encode_node, node_parts
from nda.core.errors import DecodeError, NdaError
from nda.core.hashing import call_target_h1
from nda.core.ir import (
    Add, Alloc, Atomic, AtomicOp, Bitwise, BitwiseOp, Break, Call, Cast, CmpOp, Compare, Dot,
    Float, Free, Gemv, GpuDispatch, If, Int, Legacy64, Let, Load, Loop, Matrix, Node, Norm,
    Peek, Poke, Print, RegInt, Return, Scope, Store, Triple, TypeKind, VecOp, VecOpKind, While,
    node_depth,
)

TAGS: dict[str, bytes] = {
    "Matrix": b"M", "Norm": b"N", "Call": b"C", "Int": b"I", "Scope": b"S", "Loop": b"LP",
    "While": b"WH", "If": b"IF", "Compare": b"CMP", "Break": b"BK", "Let": b"LT", "Load": b"LD",
    "Store": b"ST", "Add": b"AD", "VecOp": b"VO", "Print": b"PR", "Return": b"RT",
    "Bitwise": b"BW", "Float": b"FL", "Math": b"MH", "MathFunc": b"MF", "Peek": b"PK",
    "Poke": b"PO", "Gemv": b"GM", "Dot": b"DT", "Syscall": b"SC", "Spawn": b"SW",
    "Atomic": b"AT", "Alloc": b"AL", "Free": b"FR", "RegInt": b"RI", "Cast": b"CS",
    "GpuDispatch": b"GD", "Triple": b"T",
}

_U64 = struct.Struct("<Q")


# ---------------------------------------------------------------------------------------------
# Writer (§1.1)


def encode_v1(node: Node, target_h1: Optional[Callable[[bytes], Optional[int]]] = None,
              aliases: Optional[Sequence[int]] = None) -> bytes:
    """The v1 bytes of `node`. Call targets: Legacy64 as is, Hash32 → `target_h1(digest)`,
    GroupRef(i) → `aliases[i]` (missing → `HashTargetError`). Invalid fields → `EncodeError`."""
    def target(t) -> int:
        return call_target_h1(t, aliases, target_h1)

    out: list[bytes] = []
    stack: list = [node]
    while stack:
        item = stack.pop()
        if type(item) is bytes:
            out.append(item)
            continue
        name = type(item).__name__
        if name == "Call":
            out.append(b"C" + _U64.pack(target(item.target)))
            continue
        parts = node_parts(item, _identity)
        parts[0] = TAGS[name]
        parts.reverse()
        stack.extend(parts)
    return b"".join(out)


def _identity(n: Node) -> Node:
    return n


# ---------------------------------------------------------------------------------------------
# Reader (§1.2)


class _R:
    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos
        self.end = len(data)

    def need(self, n: int, msg: str) -> None:
        if self.end - self.pos < n:
            raise DecodeError(msg, self.pos)

    def u8(self) -> int:
        v = self.data[self.pos]
        self.pos += 1
        return v

    def unpack(self, fmt: struct.Struct):
        v = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return v

    def take(self, n: int) -> bytes:
        p = self.pos
        self.pos = p + n
        return self.data[p:p + n]

    def peek(self) -> int | None:
        return self.data[self.pos] if self.pos < self.end else None


_S_HHb = struct.Struct("<HHb")
_S_H = struct.Struct("<H")
_S_I = struct.Struct("<I")
_S_i = struct.Struct("<i")
_S_Q = struct.Struct("<Q")
_S_II = struct.Struct("<II")
_S_IQ = struct.Struct("<IQ")
_S_QI = struct.Struct("<QI")
_S_QHQ = struct.Struct("<QHQ")


def _list(r: _R, msg: str):
    r.need(4, msg)
    (n,) = r.unpack(_S_I)
    items = []
    for _ in range(n):
        items.append((yield))
    return tuple(items)


def _g_unary(cls):
    def gen(r):
        return cls((yield))
    return gen


def _g_binary(cls):
    def gen(r):
        a = yield
        b = yield
        return cls(a, b)
    return gen


def _g_compare(r: _R, op: int):
    lhs = yield
    rhs = yield
    return Compare(CmpOp(op), lhs, rhs)


def _g_cast(r: _R, f: int, t: int):
    return Cast(TypeKind(f), TypeKind(t), (yield))


def _g_if(r: _R):
    cond = yield
    then = yield from _list(r, "Truncated If then len")
    else_body = None
    b = r.peek()
    if b == 1:
        r.pos += 1
        else_body = yield from _list(r, "Truncated If else len")
    elif b == 0:
        r.pos += 1
    return If(cond, then, else_body)


def _g_store(r: _R, name: int):
    return Store(name, (yield))


def _g_let(r: _R, name: int):
    return Let(name, (yield))


def _g_scope(r: _R):
    return Scope((yield from _list(r, "Truncated Scope")))


def _g_loop(r: _R, count: int, n: int):
    items = []
    for _ in range(n):
        items.append((yield))
    return Loop(count, tuple(items))


def _g_while(r: _R):
    cond = yield
    body = yield from _list(r, "Truncated While body len")
    return While(cond, body)


def _g_bitwise(r: _R, op: int):
    lhs = yield
    r.need(1, "Truncated Bitwise has_rhs")
    rhs = (yield) if r.u8() == 1 else None
    return Bitwise(BitwiseOp(op), lhs, rhs)


def _g_vecop(r: _R, op: int):
    return VecOp(VecOpKind(op), (yield))


def _g_atomic(r: _R, op: int):
    addr = yield
    val = yield
    return Atomic(AtomicOp(op), addr, val)


def _g_gpu(r: _R, shader: int, n: int):
    items = []
    for _ in range(n):
        items.append((yield))
    return GpuDispatch(shader, tuple(items))


_G_ADD, _G_GEMV, _G_DOT, _G_POKE = _g_binary(Add), _g_binary(Gemv), _g_binary(Dot), _g_binary(Poke)
_G_FREE, _G_ALLOC, _G_PRINT = _g_unary(Free), _g_unary(Alloc), _g_unary(Print)
_G_PEEK, _G_RETURN = _g_unary(Peek), _g_unary(Return)
_M, _N, _C, _I, _S, _L, _W, _B, _F, _G, _D, _V, _A, _P, _RR, _T = b"MNCISLWBFGDVAPRT"
_LETTER_FAMILIES = {_L, _B, _F, _G, _A, _P, _RR}


def _start(r: _R):
    """Read one tag and return either a finished node or a generator wanting children."""
    if r.pos >= r.end:
        raise DecodeError("EOF", r.pos)
    t = r.u8()
    if t in _LETTER_FAMILIES and r.pos >= r.end:
        raise DecodeError(f"Truncated {chr(t)} tag", r.pos)
    if t == _M:
        r.need(5, "Truncated Matrix")
        rows, cols, scale = r.unpack(_S_HHb)
        n = rows * ((cols + 7) // 8)
        r.need(2 * n, "Truncated Matrix bitmaps")
        return Matrix(rows, cols, scale, r.take(n), r.take(n))
    if t == _N:
        r.need(2, "Truncated Norm")
        (size,) = r.unpack(_S_H)
        n = (size + 7) // 8
        r.need(2 * n, "Truncated Norm bitmaps")
        return Norm(size, r.take(n), r.take(n))
    if t == _C:
        nxt = r.peek()
        if nxt == _M:
            r.pos += 1
            if r.peek() != ord("P"):
                raise DecodeError("Invalid Compare tag", r.pos)
            r.pos += 1
            op = r.peek()
            if op is None or op > 5:
                raise DecodeError("Invalid CmpOp", r.pos)
            r.pos += 1
            return _g_compare(r, op)
        if nxt == _S:
            r.pos += 1
            r.need(2, "Truncated Cast types")
            f, to = r.u8(), r.u8()
            if f > 2:
                raise DecodeError("Invalid from_type", r.pos - 2)
            if to > 2:
                raise DecodeError("Invalid to_type", r.pos - 1)
            return _g_cast(r, f, to)
        r.need(8, "Truncated Call")
        return Call(Legacy64(r.unpack(_S_Q)[0]))
    if t == _I:
        if r.peek() == _F:
            r.pos += 1
            return _g_if(r)
        r.need(4, "Truncated Int")
        return Int(r.unpack(_S_i)[0])
    if t == _S:
        if r.peek() == _T:
            r.pos += 1
            r.need(8, "Truncated Store name_hash")
            return _g_store(r, r.unpack(_S_Q)[0])
        return _g_scope(r)
    if t == _W:
        if r.peek() != ord("H"):
            raise DecodeError("Invalid While tag", r.pos)
        r.pos += 1
        return _g_while(r)
    if t == _D:
        if r.peek() != _T:
            raise DecodeError("Invalid Dot tag", r.pos)
        r.pos += 1
        return _G_DOT(r)
    if t == _V:
        if r.peek() != ord("O"):
            raise DecodeError("Invalid VecOp tag", r.pos)
        r.pos += 1
        r.need(1, "Truncated VecOp op")
        op = r.u8()
        if op > 3:
            raise DecodeError("Invalid VecOpKind", r.pos - 1)
        return _g_vecop(r, op)
    if t == _T:
        r.need(18, "Truncated Triple")
        s, p, o = r.unpack(_S_QHQ)
        return Triple(s, p, o)
    if t not in _LETTER_FAMILIES:
        raise DecodeError(f"Unknown tag {t}", r.pos - 1)
    sub = r.u8()
    if t == _L:
        if sub == ord("P"):
            r.need(8, "Truncated Loop count/len")
            count, n = r.unpack(_S_II)
            return _g_loop(r, count, n)
        if sub == _T:
            r.need(8, "Truncated Let name_hash")
            return _g_let(r, r.unpack(_S_Q)[0])
        if sub == _D:
            r.need(8, "Truncated Load name_hash")
            return Load(r.unpack(_S_Q)[0])
    elif t == _B:
        if sub == ord("K"):
            return Break()
        if sub == _W:
            r.need(1, "Truncated Bitwise op")
            op = r.u8()
            if op > 5:
                raise DecodeError("Invalid BitwiseOp", r.pos - 1)
            return _g_bitwise(r, op)
    elif t == _F:
        if sub == ord("L"):
            r.need(4, "Truncated Float")
            return Float(r.unpack(_S_I)[0])
        if sub == ord("R"):
            return _G_FREE(r)
    elif t == _G:
        if sub == _M:
            return _G_GEMV(r)
        if sub == _D:
            r.need(12, "Truncated GpuDispatch")
            shader, n = r.unpack(_S_QI)
            return _g_gpu(r, shader, n)
    elif t == _A:
        if sub == _D:
            return _G_ADD(r)
        if sub == _T:
            r.need(1, "Truncated Atomic op")
            op = r.u8()
            if op > 1:
                raise DecodeError("Invalid AtomicOp", r.pos - 1)
            return _g_atomic(r, op)
        if sub == ord("L"):
            return _G_ALLOC(r)
    elif t == _P:
        if sub == ord("R"):
            return _G_PRINT(r)
        if sub == ord("K"):
            return _G_PEEK(r)
        if sub == ord("O"):
            return _G_POKE(r)
    else:  # R
        if sub == _T:
            return _G_RETURN(r)
        if sub == _I:
            r.need(12, "Truncated RegInt")
            vec, handler = r.unpack(_S_IQ)
            return RegInt(vec, handler)
    raise DecodeError(f"Unknown subtag {chr(t)}{sub}", r.pos - 1)


def _read(r: _R, max_depth: int) -> Node:
    if max_depth < 1:
        raise DecodeError(f"node nesting exceeds {max_depth}", r.pos)
    first = _start(r)
    if isinstance(first, Node):
        return first
    stack = [first]
    value = None
    while True:
        try:
            stack[-1].send(value)
        except StopIteration as stop:
            stack.pop()
            value = stop.value
            if not stack:
                return value
            continue
        if len(stack) >= max_depth:
            raise DecodeError(f"node nesting exceeds {max_depth}", r.pos)
        child = _start(r)
        if isinstance(child, Node):
            value = child
        else:
            stack.append(child)
            value = None


def decode_v1_prefix(data: bytes, offset: int = 0, max_depth: int = DEFAULT_MAX_DEPTH) -> tuple[Node, int]:
    """One v1 node starting at `offset`; returns (node, offset after it)."""
    r = _R(bytes(data), offset)
    node = _read(r, max_depth)
    return node, r.pos


def decode_v1(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH, strict: bool = False) -> Node:
    """The original decoder (§1.2): one node from the start of `data`.

    Like the original, bytes after the node are ignored unless `strict`.
    """
    node, end = decode_v1_prefix(data, 0, max_depth)
    if strict and end != len(data):
        raise DecodeError(f"v1: trailing bytes at offset {end}", end)
    return node


def validate_v1(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> bool:
    """True iff one node decodes and every byte is consumed."""
    try:
        _, end = decode_v1_prefix(data, 0, max_depth)
    except DecodeError:
        return False
    return end == len(data)


def v1_roundtrips(node: Node, target_h1: Optional[Callable[[bytes], Optional[int]]] = None,
                  aliases: Optional[Sequence[int]] = None) -> bool:
    """True iff `encode_v1(node)` decodes (fully) back to `node` with its call targets replaced by
    the Legacy64 values written. A node that cannot be written (e.g. a Hash32 target and no
    `target_h1`) is not round-trippable."""
    from nda.core.link import rewrite_calls

    try:
        data = encode_v1(node, target_h1, aliases)
    except NdaError:
        return False
    try:
        back, end = decode_v1_prefix(data, 0, max(DEFAULT_MAX_DEPTH, node_depth(node)))
    except DecodeError:
        return False
    if end != len(data):
        return False
    expected = rewrite_calls(node, lambda t: Legacy64(call_target_h1(t, aliases, target_h1)))
    return encode_node(back) == encode_node(expected)  # unique v2 bytes ⇔ equality, no recursion


__all__ = ["TAGS", "encode_v1", "decode_v1", "decode_v1_prefix", "validate_v1", "v1_roundtrips"]
