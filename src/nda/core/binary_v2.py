"""Binary v2 (formats.md §2): node bytes ⇄ nodes, shallow encoding for H2, and the container.

In: IR nodes (`nda.core.ir`), a top-level sequence or a `LinkedModule` (encode); bytes (decode).
Out: the unique v2 encoding of a node (`encode_node`), its *shallow* form in which every child
is replaced by a 32-byte digest (`encode_shallow`, used by `nda.core.hashing.h2`), container files
(`encode_program`, `encode_module`, `encode_container`) and the strict decoders
(`decode_node`, `decode_container` / `decode_file`) that raise only `DecodeError`.

One table-driven encoder walks each class's `FIELDS` (`nda.core.ir`); encoding and decoding are
iterative (explicit stacks), so deep trees never hit Python's recursion limit. The decoder
never allocates more than the input justifies: a list count is checked against the remaining
bytes before anything is built, plane lengths are checked before slicing. IR that shares
subtrees (a DAG built through the API) encodes as its expanded tree; past `dag.MAX_NODES`
nodes the encoders refuse it (`dag.TooManyNodes`, VALIDATION_ERROR) before writing it out.

Decisions where §2 names no message (all DECODE_ERROR, all prefixed `v2:`):
`invalid {field} {n} at offset {o}` uses the IR field name (`op`, `func`, `from_type`, …);
an option flag is reported as `invalid {field} flag {n} at offset {o}`; container problems use
`invalid magic {hex}`, `invalid version {n}`, `invalid kind {n}`, `invalid group size 0`,
`invalid name at offset {o}` (bad UTF-8) and `duplicate name '{name}' at offset {o}`.
A list count larger than the remaining bytes is `unexpected end of data at offset {o}` with
`o` the offset of the count.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, Union

from nda.core.dag import MAX_NODES, check_point, walk_check
from nda.core.errors import VALIDATION_ERROR, DecodeError, NdaError
from nda.core.ir import (
    CHILD_GETTERS, ENUMS, NODE_BY_OPCODE, NODE_CLASSES, STREAM_TOKENS, GroupRef, Hash32, Legacy64, NamedRef, Node,
)

if TYPE_CHECKING:  # pragma: no cover
    from nda.core.link import LinkedModule

MAGIC = b"NDA2"
FORMAT_VERSION = 2
KIND_NODE, KIND_PROGRAM, KIND_MODULE = 0, 1, 2
DEFAULT_MAX_DEPTH = 256

TARGET_HASH32, TARGET_LEGACY64, TARGET_GROUPREF = 0, 1, 2


class EncodeError(NdaError):
    """A node cannot be encoded or hashed (out-of-range field, wrong plane length, …)."""

    code = VALIDATION_ERROR

    def __init__(self, message: str):
        super().__init__(message, VALIDATION_ERROR)


class UnresolvedNameError(EncodeError):
    """A `NamedRef` call target reached the encoder/hasher (only `link_module` may remove it)."""


# ---------------------------------------------------------------------------------------------
# Field plans (derived once from ir FIELDS)

_K_NODE, _K_NODES, _K_OPTNODE, _K_OPTNODES, _K_INT, _K_ENUM, _K_BYTES, _K_TARGET = range(8)
_INT_FMT = {"i8": "<b", "u8": "<B", "u16": "<H", "u32": "<I", "i32": "<i", "u64": "<Q", "f32": "<I"}
_CHILD_KINDS = {"node": _K_NODE, "nodes": _K_NODES, "optnode": _K_OPTNODE, "optnodes": _K_OPTNODES}


def _make_plan(cls: type[Node]) -> tuple:
    plan = []
    for name, kind in cls.FIELDS:
        if kind in _CHILD_KINDS:
            plan.append((name, _CHILD_KINDS[kind], None))
        elif kind in _INT_FMT:
            plan.append((name, _K_INT, struct.Struct(_INT_FMT[kind])))
        elif kind.startswith("enum:"):
            plan.append((name, _K_ENUM, ENUMS[kind[5:]]))
        elif kind == "bytes":
            plan.append((name, _K_BYTES, None))
        elif kind == "target":
            plan.append((name, _K_TARGET, None))
        else:  # pragma: no cover - ir is fixed
            raise AssertionError(f"unknown field kind {kind}")
    return tuple(plan)


PLANS: dict[type[Node], tuple] = {cls: _make_plan(cls) for cls in NODE_CLASSES}
_OPBYTE: dict[type[Node], bytes] = {cls: bytes([int(cls.OPCODE)]) for cls in NODE_CLASSES}
_LEAF: dict[type[Node], bool] = {
    cls: not any(k in (_K_NODE, _K_NODES, _K_OPTNODE, _K_OPTNODES) for _, k, _ in PLANS[cls])
    for cls in NODE_CLASSES
}
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_ABSENT, _PRESENT = b"\x00", b"\x01"


def is_leaf_kind(cls: type[Node]) -> bool:
    """True when nodes of `cls` have no child fields (non-node types count as leaves)."""
    return _LEAF.get(cls, True)


def target_bytes(target: Any) -> bytes:
    """Form byte + payload of a call target (§2); NamedRef → `UnresolvedNameError`."""
    t = type(target)
    try:
        if t is Hash32:
            if not isinstance(target.digest, (bytes, bytearray)) or len(target.digest) != 32:
                raise EncodeError(f"Hash32 digest must be 32 bytes, got {target.digest!r}")
            return b"\x00" + bytes(target.digest)
        if t is Legacy64:
            return b"\x01" + _U64.pack(target.value)
        if t is GroupRef:
            return b"\x02" + _U32.pack(target.index)
    except struct.error as e:
        raise EncodeError(f"call target {target!r} out of range") from e
    if t is NamedRef:
        raise UnresolvedNameError(
            f"unresolved call target '@{target.name}' cannot be encoded or hashed (link the module first)")
    raise EncodeError(f"invalid call target {target!r}")


def _bad_child(node: Node, name: str, v: Any) -> EncodeError:
    return EncodeError(f"{type(node).__name__}.{name} must be a node, got {type(v).__name__}")


def node_parts(node: Node, child: Callable[[Node], Any]) -> list:
    """The v2 encoding of `node` as a list of pieces; each child node `c` becomes `child(c)`.

    With `child` = identity the pieces are bytes and child nodes (pre-order emission gives the
    full encoding); with `child` = digest lookup they are all bytes (the shallow form).
    """
    cls = type(node)
    plan = PLANS.get(cls)
    if plan is None:
        raise EncodeError(f"not a node: {cls.__name__}")
    parts: list = [_OPBYTE[cls]]
    append = parts.append
    for name, kind, aux in plan:
        v = getattr(node, name)
        if kind == _K_INT:
            try:
                append(aux.pack(v))
            except (struct.error, TypeError) as e:
                raise EncodeError(f"{cls.__name__}.{name} = {v!r} is out of range") from e
        elif kind == _K_NODE:
            if not isinstance(v, Node):
                raise _bad_child(node, name, v)
            append(child(v))
        elif kind == _K_NODES or kind == _K_OPTNODES:
            if v is None:
                if kind == _K_NODES:
                    raise _bad_child(node, name, v)
                append(_ABSENT)
                continue
            if kind == _K_OPTNODES:
                append(_PRESENT)
            append(_U32.pack(len(v)))
            for c in v:
                if not isinstance(c, Node):
                    raise _bad_child(node, name, c)
                append(child(c))
        elif kind == _K_OPTNODE:
            if v is None:
                append(_ABSENT)
            else:
                if not isinstance(v, Node):
                    raise _bad_child(node, name, v)
                append(_PRESENT)
                append(child(v))
        elif kind == _K_ENUM:
            if not isinstance(v, int) or not 0 <= v < len(aux):
                raise EncodeError(f"{cls.__name__}.{name} = {v!r} is not a valid {aux.__name__}")
            append(bytes((int(v),)))
        elif kind == _K_BYTES:
            if not isinstance(v, (bytes, bytearray)) or len(v) != node.plane_len:
                got = len(v) if isinstance(v, (bytes, bytearray)) else type(v).__name__
                raise EncodeError(f"{cls.__name__}.{name} plane has {got} bytes, expected {node.plane_len}")
            append(bytes(v))
        else:  # target
            append(target_bytes(v))
    return parts


def encode_shallow(node: Node, child_digest: Callable[[Node], bytes]) -> bytes:
    """`shallow(node)` of §3.2: the v2 encoding with every child replaced by `child_digest(child)`."""
    return b"".join(node_parts(node, child_digest))


def _identity(n: Node) -> Node:
    return n


def _emit(node: Node, out: list, count: int = 0, roots: tuple = ()) -> int:
    """Append `node`'s encoding to `out`; → `count` plus its nodes. The encoding of IR that
    shares subtrees (a DAG built through the API) is its expanded tree: `roots` (all the
    nodes being encoded, `(node,)` when empty) are measured once `count` reaches
    `dag.check_point`, and refused past `dag.MAX_NODES` (`TooManyNodes`)."""
    stack: list = [node]
    pop, extend = stack.pop, stack.extend
    at = check_point(MAX_NODES)
    while stack:
        item = pop()
        if type(item) is bytes:
            out.append(item)
            continue
        count += 1
        if count == at:
            walk_check(roots or (node,), MAX_NODES, count)
        parts = node_parts(item, _identity)
        parts.reverse()
        extend(parts)
    return count


def encode_node(node: Node) -> bytes:
    """The v2 bytes of one node (§2). Invalid fields → `EncodeError`, an expanded tree over
    `dag.MAX_NODES` nodes → `TooManyNodes` (never partial output)."""
    out: list = []
    _emit(node, out)
    return b"".join(out)


def _encode_list(seq: Sequence[Node], out: list) -> None:
    out.append(_U32.pack(len(seq)))
    count = 0
    for n in seq:
        count = _emit(n, out, count, seq)


def _header(kind: int) -> bytes:
    return MAGIC + bytes((FORMAT_VERSION, kind))


def encode_program(sequence: Sequence[Node]) -> bytes:
    """Container kind 01: the top-level sequence."""
    out = [_header(KIND_PROGRAM)]
    _encode_list(tuple(sequence), out)
    return b"".join(out)


def _module_groups(linked: "LinkedModule") -> list[list]:
    """Split `linked.defs` (callee-first, members contiguous in index order) into groups."""
    groups: list[list] = []
    i, defs = 0, linked.defs
    while i < len(defs):
        d = defs[i]
        if d.group is None:
            groups.append([d])
            i += 1
            continue
        k = len(d.group.members)
        block = list(defs[i:i + k])
        if len(block) != k or any(b.group != d.group or b.index != j for j, b in enumerate(block)):
            raise EncodeError("LinkedModule group members are not contiguous in index order")
        groups.append(block)
        i += k
    return groups


def encode_module(linked: "LinkedModule") -> bytes:
    """Container kind 02: per group (callee-first) `u32 k` then k × (u16 len, name, node)."""
    groups = _module_groups(linked)
    out = [_header(KIND_MODULE), _U32.pack(len(groups))]
    count, roots = 0, tuple(d.node for d in linked.defs)
    for block in groups:
        out.append(_U32.pack(len(block)))
        for d in block:
            name = d.name.encode("utf-8")
            if len(name) > 0xFFFF:
                raise EncodeError(f"function name too long ({len(name)} bytes)")
            out.append(_U16.pack(len(name)))
            out.append(name)
            count = _emit(d.node, out, count, roots)
    return b"".join(out)


def encode_container(kind: int, payload: Any) -> bytes:
    """kind 0 → a node, 1 → a sequence of nodes, 2 → a `LinkedModule`."""
    if kind == KIND_NODE:
        return _header(KIND_NODE) + encode_node(payload)
    if kind == KIND_PROGRAM:
        return encode_program(payload)
    if kind == KIND_MODULE:
        return encode_module(payload)
    raise EncodeError(f"invalid container kind {kind}")


# ---------------------------------------------------------------------------------------------
# Decoding


class _Reader:
    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos
        self.end = len(data)

    def eof(self, at: int | None = None) -> DecodeError:
        o = self.pos if at is None else at
        return DecodeError(f"v2: unexpected end of data at offset {o}", o)

    def take(self, n: int) -> bytes:
        p = self.pos
        if n > self.end - p:
            raise self.eof()
        self.pos = p + n
        return self.data[p:p + n]

    def u8(self) -> int:
        p = self.pos
        if p >= self.end:
            raise self.eof()
        self.pos = p + 1
        return self.data[p]

    def unpack(self, st: struct.Struct) -> int:
        p = self.pos
        if st.size > self.end - p:
            raise self.eof()
        self.pos = p + st.size
        return st.unpack_from(self.data, p)[0]

    def count(self) -> int:
        """A list count; each element needs at least one byte."""
        at = self.pos
        n = self.unpack(_U32)
        if n > self.end - self.pos:
            raise self.eof(at)
        return n

    def flag(self, field: str) -> int:
        at = self.pos
        f = self.u8()
        if f > 1:
            raise DecodeError(f"v2: invalid {field} flag {f} at offset {at}", at)
        return f


def _read_target(r: _Reader):
    at = r.pos
    form = r.u8()
    if form == TARGET_HASH32:
        return Hash32(r.take(32))
    if form == TARGET_LEGACY64:
        return Legacy64(r.unpack(_U64))
    if form == TARGET_GROUPREF:
        return GroupRef(r.unpack(_U32))
    raise DecodeError(f"v2: invalid call target form {form}", at)


def _read_scalar(r: _Reader, cls: type[Node], name: str, kind: int, aux: Any, vals: list):
    if kind == _K_INT:
        return r.unpack(aux)
    if kind == _K_ENUM:
        at = r.pos
        v = r.u8()
        if v >= len(aux):
            raise DecodeError(f"v2: invalid {name} {v} at offset {at}", at)
        return aux(v)
    if kind == _K_BYTES:
        # planes follow rows/cols (Matrix) or size (Norm), already read into vals
        if cls.__name__ == "Matrix":
            n = vals[0] * ((vals[1] + 7) // 8)
        else:
            n = (vals[0] + 7) // 8
        return r.take(n)
    return _read_target(r)


def _node_gen(r: _Reader, cls: type[Node]):
    """Generator decoding the fields of one `cls` node; yields once per child it needs."""
    vals: list = []
    for name, kind, aux in PLANS[cls]:
        if kind == _K_NODE:
            vals.append((yield))
        elif kind == _K_NODES or kind == _K_OPTNODES:
            if kind == _K_OPTNODES and not r.flag(name):
                vals.append(None)
                continue
            n = r.count()
            items = []
            for _ in range(n):
                items.append((yield))
            vals.append(tuple(items))
        elif kind == _K_OPTNODE:
            vals.append((yield) if r.flag(name) else None)
        else:
            vals.append(_read_scalar(r, cls, name, kind, aux, vals))
    return cls(*vals)


def _start(r: _Reader):
    at = r.pos
    op = r.u8()
    cls = NODE_BY_OPCODE.get(op)
    if cls is None:
        if op in STREAM_TOKENS:
            raise DecodeError(f"v2: opcode {op} is a stream token, not a node", at)
        raise DecodeError(f"v2: unknown opcode {op}", at)
    if _LEAF[cls]:
        vals: list = []
        for name, kind, aux in PLANS[cls]:
            vals.append(_read_scalar(r, cls, name, kind, aux, vals))
        return cls(*vals)
    return _node_gen(r, cls)


def _read_node(r: _Reader, max_depth: int) -> Node:
    """Decode one node at `r.pos` (iterative trampoline over per-node generators)."""
    if max_depth < 1:
        raise DecodeError(f"node nesting exceeds {max_depth}", r.pos)
    first = _start(r)
    if isinstance(first, Node):
        return first
    stack = [first]
    value: Any = None
    while True:
        try:
            stack[-1].send(value)
        except StopIteration as stop:
            stack.pop()
            value = stop.value
            if not stack:
                return value
            continue
        # the top generator wants a child
        if len(stack) >= max_depth:
            raise DecodeError(f"node nesting exceeds {max_depth}", r.pos)
        child = _start(r)
        if isinstance(child, Node):
            value = child
        else:
            stack.append(child)
            value = None


def decode_node(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Node:
    """Exactly one v2 node, every byte consumed (§2); otherwise `DecodeError`."""
    data = bytes(data)
    r = _Reader(data)
    node = _read_node(r, max_depth)
    if r.pos != r.end:
        raise DecodeError(f"v2: trailing bytes at offset {r.pos}", r.pos)
    return node


def decode_node_prefix(data: bytes, offset: int = 0, max_depth: int = DEFAULT_MAX_DEPTH) -> tuple[Node, int]:
    """One node starting at `offset`; returns (node, offset after it). Trailing bytes allowed."""
    r = _Reader(bytes(data), offset)
    node = _read_node(r, max_depth)
    return node, r.pos


class ModuleGroups(list):
    """A decoded module container before linking: a list of groups, each a list of
    (name, stored form) in index order, callee-first. `nda.core.link.decode_file` rebuilds
    the `LinkedModule` (group hashes) from it."""


def decode_container(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Union[Node, list, ModuleGroups]:
    """A container file: kind 00 → Node, 01 → list of nodes, 02 → `ModuleGroups` (names and
    stored forms; `nda.core.link.decode_file` links them into a `LinkedModule`)."""
    data = bytes(data)
    r = _Reader(data)
    magic = r.take(4)
    if magic != MAGIC:
        raise DecodeError(f"v2: invalid magic {magic.hex()} at offset 0", 0)
    version = r.u8()
    if version != FORMAT_VERSION:
        raise DecodeError(f"v2: invalid version {version} at offset 4", 4)
    kind = r.u8()
    result: Any
    if kind == KIND_NODE:
        result = _read_node(r, max_depth)
    elif kind == KIND_PROGRAM:
        n = r.count()
        result = [_read_node(r, max_depth) for _ in range(n)]
    elif kind == KIND_MODULE:
        result = _read_module(r, max_depth)
    else:
        raise DecodeError(f"v2: invalid kind {kind} at offset 5", 5)
    if r.pos != r.end:
        raise DecodeError(f"v2: trailing bytes at offset {r.pos}", r.pos)
    return result


def _read_module(r: _Reader, max_depth: int) -> ModuleGroups:
    at = r.pos
    ngroups = r.unpack(_U32)
    if ngroups * 4 > r.end - r.pos:  # each group needs at least its u32 k
        raise r.eof(at)
    seen: set[str] = set()
    groups = ModuleGroups()
    for _ in range(ngroups):
        at = r.pos
        k = r.unpack(_U32)
        if k == 0:
            raise DecodeError(f"v2: invalid group size 0 at offset {at}", at)
        if k * 3 > r.end - r.pos:  # u16 name length + ≥1 node byte per member
            raise r.eof(at)
        block = []
        for _ in range(k):
            nlen = r.unpack(_U16)
            at = r.pos
            raw = r.take(nlen)
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DecodeError(f"v2: invalid name at offset {at}", at) from e
            if name in seen:
                raise DecodeError(f"v2: duplicate name '{name}' at offset {at}", at)
            seen.add(name)
            block.append((name, _read_node(r, max_depth)))
        groups.append(block)
    return groups


def iter_node_kinds() -> Iterator[type[Node]]:
    """All 34 node classes in opcode order (convenience for tests and tools)."""
    return iter(sorted(NODE_CLASSES, key=lambda c: int(c.OPCODE)))


__all__ = [
    "MAGIC", "FORMAT_VERSION", "KIND_NODE", "KIND_PROGRAM", "KIND_MODULE", "DEFAULT_MAX_DEPTH",
    "EncodeError", "UnresolvedNameError", "PLANS", "node_parts", "target_bytes", "encode_shallow",
    "encode_node", "encode_program", "encode_module", "encode_container", "decode_node",
    "decode_node_prefix", "decode_container", "ModuleGroups", "is_leaf_kind", "iter_node_kinds",
]


# ---------------------------------------------------------------------------------------------
# `CHILDREN[cls](node)` → the child nodes in `ir.children` order: the non-leaf entries of
# `ir.CHILD_GETTERS` (for the walks that only need a node's children).

CHILDREN: dict = {cls: get for cls, get in CHILD_GETTERS.items() if get is not None}
