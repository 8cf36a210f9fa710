"""Hashes: v2 content addresses (H2), v1 legacy hashes (H1) and the other v1-family hashes.

In: IR nodes (`nda.core.ir`) whose call targets are already resolved (Hash32 / Legacy64 / GroupRef;
a `NamedRef` raises `UnresolvedNameError`), top-level sequences, byte strings.
Out: `h2(node)` = SHA-256(0x02 ‖ shallow(node)) (formats.md §3.2, 32 bytes), `program_hash`,
`h1(node)` (the original's u64, §3.1), the group digests of §3.3 (`group_hash`,
`member_address`, `alias_of`) and the §3.4 family (`program_entry_hash`, `snapshot_hash`,
`kv_token_hash`, `string_hash`, `index_root`, `file_sha`).

Every walk is iterative (post-order with an explicit stack), so deep trees are fine, and each
distinct node object is hashed once per call. `Hasher` keeps that memo across several calls of
one batch of work (it pins the nodes it has seen, so drop it when the batch is done); there is
no global cache.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any, Callable, Iterable, Optional, Sequence

from nda.core.binary_v2 import (
    EncodeError, UnresolvedNameError, encode_shallow, is_leaf_kind, node_parts,
)
from nda.core.errors import CALL_TARGET_NOT_FOUND, NdaError
from nda.core import hash_encode
from nda.core.hash_encode import H1_TAG, VERSION_BYTE
from nda.core.ir import (
    GroupRef, Hash32, Legacy64, NamedRef, Node, Scope, children, name_hash,
)

_sha256 = hashlib.sha256
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

CalleeH1 = Callable[[bytes], Optional[int]]


class HashTargetError(NdaError):
    """H1 needs a call target's v1 hash and nobody could supply it."""

    code = CALL_TARGET_NOT_FOUND

    def __init__(self, message: str):
        super().__init__(message, CALL_TARGET_NOT_FOUND)


# ---------------------------------------------------------------------------------------------
# H2


def _postorder(root: Node, done: dict) -> Iterable[Node]:
    """Nodes of `root` not yet in `done` (keyed by id), children before parents, each once."""
    stack: list = [(root, False)]
    pop, push = stack.pop, stack.append
    while stack:
        n, expanded = pop()
        if id(n) in done:
            continue
        if expanded or is_leaf_kind(type(n)):
            yield n
            continue
        push((n, True))
        for c in children(n):
            if id(c) not in done:
                push((c, False))


class Hasher:
    """Memoizing H2 computer for one batch of work (e.g. linking one module, storing one program).

    `h2(node)` hashes each distinct node object once; the memo holds the nodes it has seen
    (so their ids stay unique) and lives as long as the Hasher. Leaf kinds (Int, Float, Load,
    …: no children, their encoding is their content) are kept by encoding instead, so equal
    leaves are hashed once: `known(leaf)` may be None for a leaf it has hashed.
    """

    __slots__ = ("_memo", "_leaves", "_leaves1", "_callee_h1", "_encoded", "_h1_of")

    def __init__(self, callee_h1: CalleeH1 | None = None) -> None:
        self._memo: dict[int, tuple[Node, bytes]] = {}
        self._leaves: dict[bytes, bytes] = {}  # a leaf kind's encoding → its H2 (`h2_run`)
        self._leaves1: dict[bytes, tuple] = {}  # … → (H2, H1 bytes) (`hash_and_encode`)
        self._callee_h1 = callee_h1  # set: `h2_root` also H1-hashes and encodes (a commit's)
        self._encoded: dict[int, tuple] = {}  # id(root) → (root, H2, H1, v2 bytes)
        self._h1_of: dict[bytes, int] = {}  # H2 → H1 of the roots encoded so far

    def h2_root(self, node: Node) -> bytes:
        """`h2` of a def's root (what `link_module` asks). A Hasher made with `callee_h1`
        (a commit's: the store's `callee_h1`) also computes the root's H1 and v2 encoding in
        the same pass and keeps them for `hash_and_encode`, so the store's write walks the
        def no second time; the H1 of a call comes from the roots encoded before (link goes
        callee first), else from `callee_h1`. A root the one pass cannot finish (a group
        member's GroupRef calls, an unknown target, anything unusual) is only H2-hashed, and
        `hash_and_encode` does the rest later, as without `callee_h1`."""
        store_h1 = self._callee_h1
        if store_h1 is None or id(node) in self._memo:
            return self.h2(node)
        h1_of = self._h1_of

        def callee(digest: bytes) -> int | None:
            v = h1_of.get(digest)
            return v if v is not None else store_h1(digest)

        def target(t) -> int:
            return call_target_h1(t, None, callee)

        try:
            d2, d1, data = hash_encode.run(node, self._memo, target, self._leaves, self._leaves1)
        except Exception:  # noqa: BLE001 — H2 alone; `hash_and_encode` answers for the rest
            return self.h2(node)
        v1 = int.from_bytes(d1, "little")
        self._encoded[id(node)] = (node, d2, v1, data)
        h1_of.setdefault(d2, v1)
        return d2

    def h2(self, node: Node) -> bytes:
        memo = self._memo
        hit = memo.get(id(node))
        if hit is not None:
            return hit[1]
        try:  # one function per kind (`hash_encode.h2_run`); anything unusual: the definition
            return hash_encode.h2_run(node, memo, self._leaves)
        except Exception:  # noqa: BLE001 — the definition gives the digest or the exact error
            pass

        return _h2_walk(node, memo)

    def __reduce__(self):
        """A copy or an unpickled Hasher starts empty: the memo is keyed by object identity,
        which means nothing for the copied nodes (or in another process)."""
        return (Hasher, ())

    def known(self, node: Node) -> bytes | None:
        """H2 of `node` if this Hasher has computed it already, else None."""
        hit = self._memo.get(id(node))
        return None if hit is None else hit[1]

    def subtree_digests(self, node: Node) -> list[tuple[Node, bytes]]:
        """(node, H2) for every distinct node object of the tree, children first."""
        self.h2(node)
        out, seen = [], set()
        for n in _postorder(node, {}):
            if id(n) not in seen:
                seen.add(id(n))
                out.append((n, self.h2(n)))  # a leaf is known by content, not in the memo
        return out


def _h2_walk(node: Node, memo: dict) -> bytes:
    """H2 by its definition: SHA-256(0x02 ‖ `encode_shallow`) in `_postorder`, every distinct
    node not in `memo` (`{id: (node, H2)}`, filled) hashed once."""

    def digest_of(c: Node) -> bytes:
        return memo[id(c)][1]

    for n in _postorder(node, memo):
        if id(n) not in memo:  # shared subtree pushed twice before it was hashed
            memo[id(n)] = (n, _sha256(VERSION_BYTE + encode_shallow(n, digest_of)).digest())
    return memo[id(node)][1]


def h2_reference(node: Node) -> bytes:
    """H2 by its definition alone (`_h2_walk` with a fresh memo): no generated code, slow,
    and the oracle the fast paths are tested and fuzzed against (tests/test_hashing_fast.py,
    tests/test_hash_encode.py, bench/fuzz_hashing.py). Same value or the same error as `h2`."""
    return _h2_walk(node, {})


def h2(node: Node) -> bytes:
    """SHA-256(0x02 ‖ shallow(node)) — the 32-byte v2 content address (§3.2)."""
    return Hasher().h2(node)


def program_hash(sequence: Sequence[Node]) -> bytes:
    """A program's identity: H2(Scope{top-level sequence})."""
    return h2(Scope(tuple(sequence), span=None))


# ---------------------------------------------------------------------------------------------
# Recursive groups (§3.3)


def group_hash(member_digests: Sequence[bytes]) -> bytes:
    """G = SHA-256(0x02 ‖ "grp" ‖ u32 k ‖ D_0 ‖ … ‖ D_{k−1})."""
    return _sha256(VERSION_BYTE + b"grp" + _U32.pack(len(member_digests)) + b"".join(member_digests)).digest()


def member_address(group: bytes, index: int) -> bytes:
    """SHA-256(0x02 ‖ "mem" ‖ G ‖ u32 j)."""
    return _sha256(VERSION_BYTE + b"mem" + group + _U32.pack(index)).digest()


def alias_of(member_addr: bytes) -> int:
    """The v1 alias of a group member: its address's first 8 bytes as LE u64."""
    return int.from_bytes(member_addr[:8], "little")


# ---------------------------------------------------------------------------------------------
# H1 (v1 legacy hash, §3.1)


def _first_u64(data: bytes) -> int:
    return int.from_bytes(_sha256(data).digest()[:8], "little")


def call_target_h1(target, aliases: Sequence[int] | None, callee_h1: CalleeH1 | None) -> int:
    """The u64 a Call contributes to H1 and writes to v1 (§1.1, §3.1)."""
    t = type(target)
    if t is Legacy64:
        return target.value
    if t is Hash32:
        v = callee_h1(target.digest) if callee_h1 is not None else None
        if v is None:
            raise HashTargetError(f"call target {target.digest.hex()} not found (needed for its v1 hash)")
        return v
    if t is GroupRef:
        if aliases is None or not 0 <= target.index < len(aliases):
            raise HashTargetError(f"call target g:{target.index} not found (no group member alias)")
        return aliases[target.index]
    if t is NamedRef:
        raise UnresolvedNameError(f"unresolved call target '@{target.name}' cannot be hashed (link the module first)")
    raise EncodeError(f"invalid call target {target!r}")


def _h1_preimage(n: Any, child: Callable[[Node], bytes], target: Callable) -> bytes:
    """§3.1 preimage; child(c) is H1(c) as 8 LE bytes. Fields are packed via the v2 parts."""
    name = type(n).__name__
    tag = H1_TAG.get(name) if isinstance(n, Node) else None  # §3.1 tags (`hash_encode`)
    if tag is None:
        raise EncodeError(f"not a node: {name}")
    if name == "Call":
        return tag + _U64.pack(target(n.target))
    if name == "If":
        out = [tag, child(n.cond), _U32.pack(len(n.then_body))]
        out.extend(child(c) for c in n.then_body)
        if n.else_body is not None:
            out.append(b"EL")
            out.append(_U32.pack(len(n.else_body)))
            out.extend(child(c) for c in n.else_body)
        return b"".join(out)
    if name == "Bitwise":  # rhs without a presence marker
        out = [tag, bytes((int(n.op),)), child(n.lhs)]
        if n.rhs is not None:
            out.append(child(n.rhs))
        return b"".join(out)
    # every other kind: the v2 field layout (scale i8 == its u8 byte) minus the opcode
    parts = node_parts(n, child)
    return tag + b"".join(parts[1:])


def h1(node: Node, aliases: Sequence[int] | None = None, callee_h1: CalleeH1 | None = None) -> int:
    """The original's 64-bit hash (§3.1).

    `aliases[i]` is the alias of member i of the group `node` belongs to (GroupRef(i) → alias);
    `callee_h1(digest)` gives the H1 of a Hash32 callee (or the alias of a member address).
    A missing one raises `HashTargetError`; a `NamedRef` raises `UnresolvedNameError`.
    """
    memo: dict[int, bytes] = {}

    def child(c: Node) -> bytes:
        return memo[id(c)]

    def target(t) -> int:
        return call_target_h1(t, aliases, callee_h1)

    for n in _postorder(node, memo):
        if id(n) in memo:
            continue
        memo[id(n)] = _sha256(_h1_preimage(n, child, target)).digest()[:8]
    return int.from_bytes(memo[id(node)], "little")


def hash_and_encode(node: Node, hasher: "Hasher", aliases: Sequence[int] | None = None,
                    callee_h1: CalleeH1 | None = None) -> tuple[bytes, int, bytes]:
    """(H2, H1, v2 encoding) of `node`: the values and errors of `hasher.h2`, `h1` and
    `binary_v2.encode_node` called in that order (a DAG whose expanded tree passes
    `dag.MAX_NODES`: `TooManyNodes`, as the encoder), from one pass of `hash_encode.run` (a
    function per kind; H2s go to `hasher`'s memo, so a node it knows is not hashed again),
    or the encoding kept when the node was linked (`Hasher.h2_root`). When the one pass
    gives up (anything unusual, a tree deeper than Python's stack) the three definitions
    answer."""
    hit = hasher._encoded.get(id(node)) if aliases is None else None
    if hit is not None and hit[0] is node:  # encoded while it was linked (`Hasher.h2_root`)
        return hit[1], hit[2], hit[3]

    def target(t) -> int:
        return call_target_h1(t, aliases, callee_h1)

    try:
        d2, d1, data = hash_encode.run(node, hasher._memo, target, hasher._leaves, hasher._leaves1)
        return d2, int.from_bytes(d1, "little"), data
    except Exception:  # noqa: BLE001 — the definitions give the values or the exact error
        pass
    from nda.core.binary_v2 import encode_node

    return hasher.h2(node), h1(node, aliases, callee_h1), encode_node(node)


# ---------------------------------------------------------------------------------------------
# Other v1-family hashes (§3.4)


def program_entry_hash(root_h1: int) -> int:
    """u64 of "prog" ‖ root H1 (LE u64)."""
    return _first_u64(b"prog" + _U64.pack(root_h1))


def snapshot_hash(path: str) -> int:
    """u64 of "snapshot" ‖ UTF-8 path."""
    return _first_u64(b"snapshot" + path.encode("utf-8"))


def kv_token_hash(token: int, layer: int, weight_root: int) -> int:
    """u64 of "kv" ‖ token u32 ‖ layer u32 ‖ weight_root u64."""
    return _first_u64(b"kv" + _U32.pack(token) + _U32.pack(layer) + _U64.pack(weight_root))


def string_hash(s: str) -> int:
    """u64 of the UTF-8 string (same as `name_hash`)."""
    return name_hash(s)


def index_root(entry_hashes: Iterable[int]) -> int:
    """u64 of "IDX" ‖ all entry hashes sorted ascending (duplicates kept), each LE u64."""
    return _first_u64(b"IDX" + b"".join(_U64.pack(h) for h in sorted(entry_hashes)))


def file_sha(data: bytes) -> str:
    """Full SHA-256 of the file bytes, lowercase hex."""
    return _sha256(data).hexdigest()


__all__ = [
    "VERSION_BYTE", "HashTargetError", "UnresolvedNameError", "Hasher", "h2", "program_hash",
    "group_hash", "member_address", "alias_of", "call_target_h1", "h1", "program_entry_hash",
    "snapshot_hash", "kv_token_hash", "string_hash", "index_root", "file_sha", "name_hash",
]
