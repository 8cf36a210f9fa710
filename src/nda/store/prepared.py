"""Prepared writes: a program and its module hashed, v1-hashed and encoded once, outside the
store's transaction, then written with a handful of batched statements.

In: a top-level sequence, its `LinkedModule` (or None), a `hashing.Hasher` (the memo that
linking and the run filled: no node it knows is hashed again), the store (read for the v1
hashes of call targets outside the module), and for `write_program` the source names, the
defs' signatures and the triples to record.
Out: `prepare(store, seq, linked, hasher)` → `Prepared` — one row per def and for the program
root (address, H1, opcode, v2 bytes, group), each one built by a single
`hashing.hash_and_encode` pass, plus the v1 identity of every def (`call_v1`, the term its
callers and its triples use); `write_prepared(store, prepared)` inserts, inside the caller's
transaction or one of its own, the rows not stored yet with their state entries and
node-origin triples, the groups and the `programs` row (what `SiteMap.put_module(bind=False)`
and `put_program` write, with the same rows and the same state); `put_strings` and
`put_functions_meta` are the batched `register_strings` / `codebase.put_function_meta`.

Every check that can fail runs before the first statement; a typed error raised later
(a call target nobody stored) propagates out of the transaction, which rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from nda.core.hashing import HashTargetError, Hasher, alias_of, hash_and_encode, program_entry_hash
from nda.core.ir import Node, Scope, name_hash
from nda.store.records import be8, from_be8, e_group, e_meta, e_node, e_prog, e_str, e_triple, now_us
from nda.syntax.triples import node_triples

CHUNK = 500  # bound parameters per `IN (…)` query


@dataclass(slots=True)
class NodeRow:
    """One `nodes` row to write (data None: the node must already be stored — its H1 needed
    a call target only the store could have; `error` is raised if it is not)."""

    addr: bytes
    v1: int
    opcode: int
    data: bytes | None
    node: Node
    group: bytes | None = None
    index: int | None = None
    error: Exception | None = None


@dataclass(slots=True)
class Prepared:
    """A program ready to write: rows callee-first (defs, then the root unless a def's row is
    the root already), the module's groups, the root, its H1 and `call_v1` (address → the v1
    term of a call to it: H1, or the alias of a group member)."""

    rows: list[NodeRow]
    groups: tuple
    root: bytes | None
    root_v1: int
    call_v1: dict = field(default_factory=dict)


def prepare(store, seq: Sequence[Node], linked=None, hasher: Hasher | None = None, *,
            program: bool = True) -> Prepared:
    """Hash, v1-hash and encode the module's defs and the program root, each node once
    (see the module docstring). Reads the store only for targets outside the module.
    `program=False`: the defs only (`SiteMap.put_module`; root None, no programs row)."""
    hasher = hasher if hasher is not None else Hasher()
    call_v1: dict[bytes, int] = {}
    stored_v1 = store.callee_h1

    def callee_h1(digest: bytes) -> int | None:
        v = call_v1.get(digest)
        return v if v is not None else stored_v1(digest)

    rows: list[NodeRow] = []
    for d in linked.defs if linked is not None else ():
        aliases = None if d.group is None else d.group.aliases
        row = _row(d.node, hasher, aliases, callee_h1, store, d.address)
        if d.group is not None:
            row.group, row.index = d.group.hash, d.index
            call_v1[d.address] = alias_of(d.address)
        else:
            call_v1.setdefault(d.address, row.v1)
        rows.append(row)
    if not program:
        return Prepared(rows, linked.groups if linked is not None else (), None, 0, call_v1)
    main = linked.by_name("main") if linked is not None else None
    if (main is not None and main.group is None and type(main.node) is Scope
            and len(main.node.children) == len(seq) and all(a is b for a, b in zip(seq, main.node.children))):
        # the program is main's own Scope: same H2, H1 and bytes as main's row
        row = next(r for r in rows if r.addr == main.address)
        return Prepared(rows, linked.groups, row.addr, row.v1, call_v1)
    scope = Scope(tuple(seq))
    row = _row(scope, hasher, None, callee_h1, store, None)
    rows.append(row)
    call_v1.setdefault(row.addr, row.v1)
    return Prepared(rows, linked.groups if linked is not None else (), row.addr, row.v1, call_v1)


def _row(node: Node, hasher: Hasher, aliases, callee_h1, store, addr: bytes | None) -> NodeRow:
    try:
        h, v1, data = hash_and_encode(node, hasher, aliases, callee_h1)
    except HashTargetError as e:  # fine if the node is stored already (as `SiteMap._put`)
        where = addr if addr is not None else hasher.h2(node)
        row = store._one("SELECT v1_hash FROM nodes WHERE hash=?", (where,))
        return NodeRow(where, 0 if row is None else from_be8(row[0]), int(node.OPCODE), None, node,
                       error=e)
    return NodeRow(h if addr is None else addr, v1, int(node.OPCODE), data, node)


def stored_among(store, table: str, column: str, keys: Iterable[bytes]) -> set:
    """The `keys` present in `table.column` (chunked `IN` queries, inside the transaction)."""
    keys = list(dict.fromkeys(keys))
    found: set = set()
    for i in range(0, len(keys), CHUNK):
        chunk = keys[i:i + CHUNK]
        q = f"SELECT {column} FROM {table} WHERE {column} IN ({','.join('?' * len(chunk))})"
        found.update(r[0] for r in store._x(q, chunk))
    return found


def write_prepared(store, prep: Prepared, message: str = "put_program") -> None:
    """Insert what `prep` holds that the store lacks (see the module docstring)."""
    with store.transaction(message):
        conn = store._conn
        if prep.groups:
            have = stored_among(store, "groups", "hash", [g.hash for g in prep.groups])
            new_groups = [g for g in dict((g.hash, g) for g in prep.groups).values() if g.hash not in have]
            conn.executemany("INSERT INTO groups VALUES (?,?)", [(g.hash, len(g.members)) for g in new_groups])
            store._add_entries(e_group(g.hash) for g in new_groups)
        have = stored_among(store, "nodes", "hash", [r.addr for r in prep.rows])
        new: list[NodeRow] = []
        for r in prep.rows:
            if r.addr in have:
                continue
            if r.data is None:
                raise r.error
            have.add(r.addr)
            new.append(r)
        conn.executemany("INSERT INTO nodes VALUES (?,?,?,?,?,?)",
                         [(r.addr, be8(r.v1), r.opcode, r.data, r.group, r.index) for r in new])
        store._add_entries(e_node(r.addr) for r in new)
        trips = [(t, r.addr) for r in new if b"\x25" in r.data  # opcode 37 (Triple) needs it
                 for t in node_triples(r.node)]
        if trips:
            conn.executemany("INSERT INTO triples VALUES (?,?,?,'node',?)",
                             [(be8(s), p, be8(o), a) for (s, p, o), a in trips])
            store._add_entries(e_triple(s, p, o, "node", a) for (s, p, o), a in trips)
        if prep.root is not None and store._x("INSERT OR IGNORE INTO programs VALUES (?,?,?)",
                                              (prep.root, be8(program_entry_hash(prep.root_v1)),
                                               now_us())).rowcount:
            store._add_entries([e_prog(prep.root)])


def put_strings(store, values: Iterable[str]) -> None:
    """Add `values` to the string dictionary (in order; a hash already present is kept), in
    the caller's transaction or one of its own: one query for what is there, one insert."""
    by_hash: dict[bytes, str] = {}
    for v in values:
        by_hash.setdefault(be8(name_hash(v)), v)
    if not by_hash:
        return
    with store.transaction("register_strings"):
        have = stored_among(store, "strings", "hash", by_hash)
        new = [(h, v) for h, v in by_hash.items() if h not in have]
        store._conn.executemany("INSERT INTO strings VALUES (?,?)", new)
        store._add_entries(e_str(h, v) for h, v in new)


def put_functions_meta(store, metas: Iterable[tuple[bytes, str, str]]) -> None:
    """(address, source name, canonical signature JSON) rows of `fn_meta` with their state
    entries (`codebase.put_function_meta`, batched; every address must be stored, the
    signatures validated by the caller). An existing row is kept, and so is its entry."""
    metas = list(dict.fromkeys(metas))
    if not metas:
        return
    t = now_us()
    with store.transaction("meta"):
        store._conn.executemany("INSERT OR IGNORE INTO fn_meta VALUES (?,?,?,?)",
                                [(a, n, sig, t) for a, n, sig in metas])
        store._add_entries(e_meta(a, n, sig) for a, n, sig in metas)


__all__ = ["NodeRow", "Prepared", "prepare", "write_prepared", "stored_among", "put_strings",
           "put_functions_meta", "CHUNK"]
