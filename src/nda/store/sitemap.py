"""The SiteMap: a content-addressed store on SQLite (runtime.md §8).

In: nodes, programs (top-level sequences), linked modules, names, KV records, file snapshots of
triples, strings, an original SiteMap directory (import); a path to one database file.
Out: `SiteMap` — the schema of §8 (WAL, synchronous=FULL, foreign_keys=ON, u64 as 8-byte
big-endian BLOBs, append-only `roots` enforced by triggers), the store API of §8, call
resolution (`resolve_call`, the `link.Resolver` protocol), `resolve_ref` for the CLI
pipeline, the root log (state_root / commit_id chain), `verify()`, and directory import/export
(`sitemap_dir`; integrity checks in `verify`, byte-level records in `records`).

Transactions: every public write is one `BEGIN IMMEDIATE … COMMIT` that appends exactly one
`roots` row. `with store.transaction(message):` groups several writes into one commit (one
roots row); writes inside it join it. Each write method computes everything that can fail
(encoding, hashing, validation) before it touches the database, so a typed `NdaError` never
leaves a partial write behind; any other failure inside a transaction poisons it and the
commit is refused (rolled back). The store's lock is held for a whole transaction: other
threads (e.g. a sandbox worker) wait, so do not run store-calling programs inside one.

Storage decisions (deviations/additions to §8):
- durability (decisions #32): §8's WAL with `synchronous=FULL` by default (fsync per commit);
  `open(path, sync="normal")` opts into NORMAL — a commit still survives any crash of the
  process and nothing is ever partially written, but a power loss may roll back the last
  commits (whole);
- a row in `nodes` is a node that was *put* (a program root Scope, a def, a group member, an
  imported node, or any node given to `put_node`), stored with the v2 bytes of its whole
  subtree; its sub-nodes are not stored as separate rows (storage stays linear in the input);
- node-origin triples: the distinct Triple records inside a stored node, origin = its hash;
  snapshot-origin triples: origin = the 8-byte snapshot key. Historical triples = all rows
  (every stored node + the current snapshots); live = snapshot rows. A replaced snapshot's
  old triples are gone (there is no other origin to keep them under);
- auxiliary table `state_entries(digest PRIMARY KEY) WITHOUT ROWID` holds every entry digest
  E of the state, maintained with each write; the state_root is one ordered index scan per
  commit (O(state) hashing, O(k log n) index work for k writes — never quadratic in a batch).
  `verify()` recomputes every E from the tables and checks this table and the root against it;
- extra indexes: member aliases (`substr(hash,1,8)` of group members, for Legacy64 calls by
  alias), `programs(v1_program_hash)`, `triples(origin_kind, origin)`, `nodes(group_hash)`;
- in entry preimages, u64 keys (snapshot, kv, string hashes) are the stored 8-byte BE BLOBs;
  other integers (u32 name length, u64 counts and times) are little-endian;
- the codebase tables (`nda.store.codebase`; additive, created on open, so older stores open
  unchanged): `fn_meta(hash, name, signature)` — a function's source name and signature, part
  of the state (entry `e_meta`); `name_commits(name, seq, root_seq)` — the commit each binding
  was made in (log metadata like `roots`, not state). A committed program's DEFINES / CALLS
  triples live in a snapshot of its own (path `program:` + root hex) that is only added to.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Sequence

from nda.core.binary_v2 import decode_node, encode_node
from nda.core.errors import VALIDATION_ERROR, Diagnostic, NdaError, StoreError, UsageError, ValidationError
from nda.core.hashing import (
    HashTargetError, Hasher, alias_of, h1, hash_and_encode, kv_token_hash, program_entry_hash, snapshot_hash,
)
from nda.core.ir import GroupRef, Hash32, Legacy64, Let, Load, Node, Scope, Store, name_hash, walk
from nda.core.link import Callee, GroupInfo, LinkedModule
from nda.store.records import (
    DECODE_DEPTH, EMPTY_ROOT, be8, commit_id_of, e_group, e_kv, e_name, e_node, e_prog, e_snap,
    e_str, e_triple, from_be8, kv_record_problem, now_us, state_root_of,
)
from nda.store import stateroot
from nda.store.verify import verify_store
from nda.syntax.triples import TripleQueries, TripleRecord, encode_record, node_triples, validate_triples

SCHEMA_VERSION = 1
KV_CACHE_SIZE = 4096
CALLEE_CACHE_SIZE = 4096
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_sha = hashlib.sha256
SYNC_MODES = {"normal": "NORMAL", "full": "FULL"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS nodes(hash BLOB PRIMARY KEY, v1_hash BLOB NOT NULL,
    opcode INTEGER NOT NULL, bytes BLOB NOT NULL, group_hash BLOB NULL, group_index INTEGER NULL);
CREATE INDEX IF NOT EXISTS nodes_v1 ON nodes(v1_hash);
CREATE INDEX IF NOT EXISTS nodes_alias ON nodes(substr(hash, 1, 8)) WHERE group_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS nodes_group ON nodes(group_hash, group_index) WHERE group_hash IS NOT NULL;
CREATE TABLE IF NOT EXISTS groups(hash BLOB PRIMARY KEY, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS programs(root BLOB PRIMARY KEY REFERENCES nodes(hash),
    v1_program_hash BLOB, created_us INTEGER);
CREATE INDEX IF NOT EXISTS programs_v1 ON programs(v1_program_hash);
CREATE TABLE IF NOT EXISTS names(name TEXT, seq INTEGER, hash BLOB NOT NULL, created_us INTEGER,
    PRIMARY KEY(name, seq));
CREATE TABLE IF NOT EXISTS triples(subject BLOB, predicate INTEGER, object BLOB,
    origin_kind TEXT CHECK(origin_kind IN ('node','snapshot')), origin BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS triples_po ON triples(predicate, object);
CREATE INDEX IF NOT EXISTS triples_s ON triples(subject);
CREATE INDEX IF NOT EXISTS triples_origin ON triples(origin_kind, origin);
CREATE TABLE IF NOT EXISTS snapshots(key BLOB PRIMARY KEY, path TEXT NULL, updated_us INTEGER);
CREATE TABLE IF NOT EXISTS kv(key BLOB PRIMARY KEY, token INTEGER, layer INTEGER, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS strings(hash BLOB PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roots(seq INTEGER PRIMARY KEY, state_root BLOB NOT NULL, parent BLOB NULL,
    commit_id BLOB NOT NULL, message TEXT, time_us INTEGER, entry_count INTEGER);
CREATE TRIGGER IF NOT EXISTS roots_no_update BEFORE UPDATE ON roots
    BEGIN SELECT RAISE(ABORT, 'roots is append-only'); END;
CREATE TRIGGER IF NOT EXISTS roots_no_delete BEFORE DELETE ON roots
    BEGIN SELECT RAISE(ABORT, 'roots is append-only'); END;
CREATE TABLE IF NOT EXISTS state_entries(digest BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fn_meta(hash BLOB NOT NULL, name TEXT NOT NULL, signature TEXT NOT NULL,
    created_us INTEGER, PRIMARY KEY(hash, name, signature));
CREATE TABLE IF NOT EXISTS name_commits(name TEXT NOT NULL, seq INTEGER NOT NULL,
    root_seq INTEGER NOT NULL, PRIMARY KEY(name, seq));
CREATE INDEX IF NOT EXISTS name_commits_root ON name_commits(root_seq);
CREATE INDEX IF NOT EXISTS names_hash ON names(hash);
"""


# ---------------------------------------------------------------------------------------------
# Records returned by the API


@dataclass(frozen=True, slots=True)
class NodeRecord:
    hash: bytes
    v1_hash: int
    opcode: int
    node: Node
    group: GroupInfo | None = None
    index: int | None = None
    is_program: bool = False


@dataclass(frozen=True, slots=True)
class LogEntry:
    seq: int
    state_root: bytes
    parent: bytes | None
    commit_id: bytes
    message: str
    time_us: int
    entry_count: int

    def to_dict(self) -> dict:
        return {"seq": self.seq, "state_root": self.state_root.hex(),
                "parent": self.parent.hex() if self.parent else None,
                "commit_id": self.commit_id.hex(), "message": self.message,
                "time_us": self.time_us, "entry_count": self.entry_count}


class Transaction:
    """The open write transaction; after commit, `entry` is its roots row."""

    __slots__ = ("message", "poisoned", "entry")

    def __init__(self, message: str):
        self.message = message
        self.poisoned = False
        self.entry: LogEntry | None = None


# ---------------------------------------------------------------------------------------------
# The store


class SiteMap(TripleQueries):
    """One SQLite database (see the module docstring). Thread-safe (one lock per store)."""

    def __init__(self, conn: sqlite3.Connection, path: str):
        self._conn = conn
        self.path = path
        self._lock = threading.RLock()
        self._tx: Transaction | None = None
        self._kv_cache: OrderedDict[bytes, bytes] = OrderedDict()
        self._callees: OrderedDict[bytes, Callee] = OrderedDict()
        self.weight_root = 0
        self.read_only = False
        # The sorted state entries as of roots row `_entries_seq` (None: not loaded / unknown);
        # see `stateroot`.
        self._entries: list | None = None
        self._entries_seq = -1

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str, weight_root: int | None = None, *, read_only: bool = False,
             sync: str = "full") -> "SiteMap":
        """Open (creating if needed) the store at `path`. `weight_root` (u64) is recorded on
        creation; given for an existing store it must match unless the store has no token KV.
        `read_only=True` opens an existing store for reading only (SQLite `mode=ro`; many
        readers, e.g. batch workers, may share it while one writer commits): any write
        raises `StoreError`. `sync`: "full" (the default, §8: fsync at every commit, so
        commits survive power loss) or "normal" (WAL with synchronous=NORMAL: commits survive
        process crashes; a power loss may roll back the last ones, whole)."""
        if sync not in SYNC_MODES:
            raise StoreError(f"unknown sync mode {sync!r} (expected one of {', '.join(SYNC_MODES)})")
        if read_only:
            return cls._open_read_only(path)
        try:
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                   timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={SYNC_MODES[sync]}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA temp_store=MEMORY")  # only the change log of `stateroot`
            store = cls(conn, str(path))
            store._init_schema(weight_root)
            stateroot.install(conn)  # the state entries are kept between commits
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{path}: cannot open store: {e}") from e
        return store

    @classmethod
    def _open_read_only(cls, path: str) -> "SiteMap":
        from pathlib import Path
        from urllib.parse import quote

        p = Path(path)
        if not p.is_file():
            raise StoreError(f"{path}: no such store")
        try:
            conn = sqlite3.connect(f"file:{quote(str(p.resolve()))}?mode=ro", uri=True,
                                   isolation_level=None, check_same_thread=False, timeout=30.0)
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{path}: cannot open store read-only: {e}") from e
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            conn.close()
            raise StoreError(f"{path}: unsupported schema_version {meta.get('schema_version')}")
        store = cls(conn, str(path))
        store.weight_root = int(meta.get("weight_root") or "0", 16)
        store.read_only = True
        return store

    def _init_schema(self, weight_root: int | None) -> None:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _statements(SCHEMA):
                c.execute(stmt)
            meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
            if "schema_version" not in meta:
                c.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif meta["schema_version"] != str(SCHEMA_VERSION):
                raise StoreError(f"{self.path}: unsupported schema_version {meta['schema_version']}")
            stored = meta.get("weight_root")
            if stored is None:
                c.execute("INSERT INTO meta VALUES ('weight_root', ?)", (f"{weight_root or 0:016x}",))
            elif weight_root is not None and int(stored, 16) != weight_root:
                if c.execute("SELECT 1 FROM kv WHERE token IS NOT NULL LIMIT 1").fetchone():
                    raise StoreError(f"{self.path}: weight_root {weight_root:016x} does not match "
                                     f"the store's {stored} (it holds KV records)")
                c.execute("UPDATE meta SET value=? WHERE key='weight_root'", (f"{weight_root:016x}",))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        self.weight_root = int(c.execute("SELECT value FROM meta WHERE key='weight_root'").fetchone()[0], 16)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "SiteMap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- low-level access ----------------------------------------------------------------------

    def _one(self, sql: str, args=()):
        with self._lock:
            return self._conn.execute(sql, args).fetchone()

    def _all(self, sql: str, args=()) -> list:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _x(self, sql: str, args=()) -> sqlite3.Cursor:  # only inside a transaction (lock held)
        return self._conn.execute(sql, args)

    def _add_entries(self, digests: Iterable[bytes]) -> None:
        self._conn.executemany("INSERT OR IGNORE INTO state_entries VALUES (?)", ((d,) for d in digests))

    def _del_entries(self, digests: Iterable[bytes]) -> None:
        self._conn.executemany("DELETE FROM state_entries WHERE digest=?", ((d,) for d in digests))

    # -- transactions and the root log ---------------------------------------------------------

    @contextmanager
    def transaction(self, message: str = ""):
        """One logical commit: every write inside is atomic and appends one roots row."""
        with self._lock:
            if self._conn is None:
                raise StoreError("store is closed")
            if self.read_only:
                raise StoreError(f"{self.path}: store is open read-only")
            if self._tx is not None:  # join the open transaction
                try:
                    yield self._tx
                except NdaError:
                    raise
                except BaseException:
                    self._tx.poisoned = True
                    raise
                return
            tx = Transaction(message)
            self._conn.execute("BEGIN IMMEDIATE")
            self._tx = tx
            try:
                yield tx
                if tx.poisoned:
                    raise StoreError("transaction aborted: a write inside it failed")
                tx.entry = self._append_root(message)
                self._conn.execute("COMMIT")
            except BaseException:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                self._kv_cache.clear()
                self._callees.clear()
                self._entries = None
                tx.entry = None
                raise
            finally:
                self._tx = None

    def _append_root(self, message: str) -> LogEntry:
        last = self._x("SELECT seq, commit_id, time_us FROM roots ORDER BY seq DESC LIMIT 1").fetchone()
        digests = stateroot.sorted_entries(self._conn, self._entries, self._entries_seq,
                                           0 if last is None else last[0])
        sroot = state_root_of(digests)
        seq = 1 if last is None else last[0] + 1
        parent = None if last is None else last[1]
        t = now_us()
        if last is not None and t <= last[2]:
            t = last[2] + 1  # keep time strictly increasing along the chain
        cid = commit_id_of(sroot, parent, t, message)
        self._x("INSERT INTO roots VALUES (?,?,?,?,?,?,?)", (seq, sroot, parent, cid, message, t, len(digests)))
        self._entries, self._entries_seq = digests, seq  # reset by `transaction` if COMMIT fails
        return LogEntry(seq, sroot, parent, cid, message, t, len(digests))

    def root(self) -> bytes:
        """The current state_root (of the last roots row; the empty-state root before any)."""
        row = self._one("SELECT state_root FROM roots ORDER BY seq DESC LIMIT 1")
        return EMPTY_ROOT if row is None else row[0]

    def log(self, limit: int | None = None) -> list[LogEntry]:
        """Root log entries, oldest first (the last `limit` when given)."""
        if limit is None:
            rows = self._all("SELECT * FROM roots ORDER BY seq")
        else:
            rows = self._all("SELECT * FROM roots ORDER BY seq DESC LIMIT ?", (limit,))[::-1]
        return [LogEntry(r[0], r[1], r[2], r[3], r[4] or "", r[5], r[6]) for r in rows]

    def stats(self) -> dict:
        out = {}
        for t in ("nodes", "groups", "programs", "triples", "snapshots", "kv", "strings", "roots",
                  "state_entries"):
            out[t] = self._one(f"SELECT count(*) FROM {t}")[0]
        out["name_bindings"] = self._one("SELECT count(*) FROM names")[0]
        out["names"] = self._one("SELECT count(DISTINCT name) FROM names")[0]
        out["state_root"] = self.root().hex()
        out["weight_root"] = f"{self.weight_root:016x}"
        return out

    # -- nodes ---------------------------------------------------------------------------------

    def callee_h1(self, digest: bytes) -> int | None:
        """The v1 hash a call to `digest` contributes (H1; alias for a group member)."""
        row = self._one("SELECT v1_hash, group_hash FROM nodes WHERE hash=?", (bytes(digest),))
        if row is None:
            return None
        return alias_of(digest) if row[1] is not None else from_be8(row[0])

    def _has(self, addr: bytes) -> bool:
        return self._one("SELECT 1 FROM nodes WHERE hash=?", (addr,)) is not None

    def _insert_node(self, addr: bytes, v1: int, node: Node, data: bytes,
                     group: bytes | None = None, index: int | None = None) -> None:
        self._x("INSERT INTO nodes VALUES (?,?,?,?,?,?)", (addr, be8(v1), int(node.OPCODE), data, group, index))
        self._x("INSERT OR IGNORE INTO state_entries VALUES (?)", (e_node(addr),))
        if b"\x25" in data:  # opcode 37 (Triple) can only occur where this byte does
            trips = node_triples(node)
            self._conn.executemany("INSERT INTO triples VALUES (?,?,?,'node',?)",
                                   [(be8(s), p, be8(o), addr) for s, p, o in trips])
            self._add_entries(e_triple(s, p, o, "node", addr) for s, p, o in trips)

    def _put(self, node: Node, hasher: Hasher) -> tuple[bytes, int]:
        """Insert `node` unless stored (inside a transaction) → (address, v1 of a call to it)."""
        addr, data = hasher.known(node), None
        if addr is None:  # a new node, most likely: hash, v1-hash and encode it in one pass
            try:
                addr, v1, data = hash_and_encode(node, hasher, None, self.callee_h1)
            except HashTargetError:
                addr = hasher.h2(node)  # stored already? then no error, as before: see below
        row = self._x("SELECT v1_hash, group_hash FROM nodes WHERE hash=?", (addr,)).fetchone()
        if row is not None:
            return addr, alias_of(addr) if row[1] is not None else from_be8(row[0])
        if data is None:
            data, v1 = encode_node(node), h1(node, None, self.callee_h1)
        self._insert_node(addr, v1, node, data)
        return addr, v1

    def put_node(self, node: Node, *, _hasher: Hasher | None = None) -> bytes:
        """Store `node` under its H2 (idempotent); indexes the Triple nodes it contains.
        A Hash32 call target must already be stored (its H1 is part of this node's)."""
        hasher = _hasher or Hasher()
        if self._tx is None and self._has(hasher.h2(node)):
            return hasher.h2(node)  # nothing to write: no transaction, no roots row
        with self.transaction("put_node"):
            return self._put(node, hasher)[0]

    def put_nodes(self, nodes: Iterable[Node], message: str = "put_nodes") -> list[bytes]:
        """Many nodes in one transaction (one roots row)."""
        hasher = Hasher()
        with self.transaction(message):
            return [self.put_node(n, _hasher=hasher) for n in nodes]

    def put_program(self, sequence: Sequence[Node], *, _hasher: Hasher | None = None) -> bytes:
        """Store a program (its Scope as a node, plus a programs row); returns its root."""
        scope = Scope(tuple(sequence))
        hasher = _hasher or Hasher()
        if self._tx is None:
            root = hasher.h2(scope)
            if self.program_v1(root) is not None:
                return root
        with self.transaction("put_program"):
            root, v1 = self._put(scope, hasher)
            if self._x("INSERT OR IGNORE INTO programs VALUES (?,?,?)",
                       (root, be8(program_entry_hash(v1)), now_us())).rowcount:
                self._add_entries([e_prog(root)])
        return root

    def program_v1(self, root: bytes) -> int | None:
        """The v1 program entry hash of a stored program root (None if not a program)."""
        row = self._one("SELECT v1_program_hash FROM programs WHERE root=?", (bytes(root),))
        return None if row is None or row[0] is None else from_be8(row[0])

    def _record_program(self, root: bytes, v1_program_hash: int) -> None:
        self._x("INSERT INTO programs VALUES (?,?,?)", (root, be8(v1_program_hash), now_us()))
        self._add_entries([e_prog(root)])

    def put_module(self, linked: LinkedModule, *, bind: bool = True) -> dict[str, bytes]:
        """Store every def of a linked module (group members in GroupRef form with their group)
        and, with `bind`, bind each def's name to its address. Returns name → address.
        The rows are prepared first, each node hashed once (`store.prepared`)."""
        from nda.store.prepared import prepare, put_strings, write_prepared

        prep = prepare(self, (), linked, linked.hasher or Hasher(), program=False)
        with self.transaction("put_module"):
            write_prepared(self, prep)
            put_strings(self, [d.name for d in linked.defs])
            if bind:
                for d in linked.defs:
                    self.bind_name(d.name, d.address)
        return {d.name: d.address for d in linked.defs}

    def _group_info(self, g: bytes) -> GroupInfo:
        rows = self._all("SELECT hash FROM nodes WHERE group_hash=? ORDER BY group_index", (g,))
        return GroupInfo(g, tuple(r[0] for r in rows))

    def _v1_lookup(self, value: int) -> bytes | None:
        """Address for a v1 u64: node H1 (earliest stored), member alias, program entry hash."""
        for sql, key in (("SELECT hash FROM nodes WHERE v1_hash=?", be8(value)),
                         ("SELECT hash FROM nodes WHERE group_hash IS NOT NULL AND substr(hash, 1, 8)=?",
                          int(value).to_bytes(8, "little")),
                         ("SELECT root FROM programs WHERE v1_program_hash=?", be8(value))):
            row = self._one(sql + " ORDER BY rowid LIMIT 1", (key,))
            if row is not None:
                return row[0]
        return None

    def _address_of(self, key) -> bytes | None:
        if isinstance(key, Hash32):
            return key.digest
        if isinstance(key, (bytes, bytearray, memoryview)) and len(key) == 32:
            return bytes(key)
        if isinstance(key, Legacy64):
            return self._v1_lookup(key.value)
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < 1 << 64:
            return self._v1_lookup(key)
        raise StoreError(f"not a node key: {key!r} (expected a 32-byte digest, Hash32, u64 or Legacy64)")

    def get_record(self, key) -> NodeRecord | None:
        """The stored row of `key` (Hash32 / 32-byte digest / u64 / Legacy64), decoded."""
        addr = self._address_of(key)
        row = None if addr is None else self._one(
            "SELECT hash, v1_hash, opcode, bytes, group_hash, group_index FROM nodes WHERE hash=?", (addr,))
        if row is None:
            return None
        node = decode_node(row[3], DECODE_DEPTH)
        group = None if row[4] is None else self._group_info(row[4])
        is_prog = self._one("SELECT 1 FROM programs WHERE root=?", (addr,)) is not None
        return NodeRecord(row[0], from_be8(row[1]), row[2], node, group, row[5], is_prog)

    def get_node(self, key) -> Node | None:
        """The node stored under a Hash32 / digest, or found through the v1 index for a u64."""
        addr = self._address_of(key)
        row = None if addr is None else self._one("SELECT bytes FROM nodes WHERE hash=?", (addr,))
        return None if row is None else decode_node(row[0], DECODE_DEPTH)

    def has_target(self, target) -> bool:
        """Whether a Hash32 / Legacy64 call target exists in the store."""
        addr = self._address_of(target) if type(target) in (Hash32, Legacy64) else None
        return addr is not None and self._has(addr)

    # -- call resolution (link.Resolver) -------------------------------------------------------

    def _callee(self, addr: bytes) -> Callee | None:
        with self._lock:
            callee = self._callees.get(addr)
            if callee is None:
                row = self._one("SELECT bytes, group_hash FROM nodes WHERE hash=?", (addr,))
                if row is None:
                    return None
                group = None if row[1] is None else self._group_info(row[1])
                callee = self._callees[addr] = Callee(addr, decode_node(row[0], DECODE_DEPTH), group)
                if len(self._callees) > CALLEE_CACHE_SIZE:
                    self._callees.popitem(last=False)
            return callee

    def resolve_call(self, target, group: GroupInfo | None) -> Callee | None:
        """Hash32 → node / program root / member (with its group); Legacy64 → v1 index;
        GroupRef(i) → member i of `group`. Unknown → None."""
        t = type(target)
        if t is Hash32:
            return self._callee(target.digest)
        if t is Legacy64:
            addr = self._v1_lookup(target.value)
            return None if addr is None else self._callee(addr)
        if t is GroupRef:
            if group is None or not 0 <= target.index < len(group.members):
                return None
            return self._callee(group.members[target.index])
        return None

    def resolve_ref(self, ref: str) -> bytes:
        """A stored address for `ref`: 64 hex digits, a bound name, a unique hex prefix of at
        least 8 digits, or `#x:`+16 hex (v1 index). Unknown / ambiguous → `UsageError`."""
        if len(ref) == 64 and _is_hex(ref):
            addr = bytes.fromhex(ref)
            if not self._has(addr):
                raise UsageError(f"{ref}: no stored node with this hash")
            return addr
        addr = self.resolve_name(ref)
        if addr is not None:
            return addr
        if ref.startswith("#x:") and len(ref) == 19 and _is_hex(ref[3:]):
            addr = self._v1_lookup(int(ref[3:], 16))
            if addr is None:
                raise UsageError(f"{ref}: no stored node with this v1 hash")
            return addr
        if len(ref) >= 8 and _is_hex(ref) and len(ref) < 64:
            matches = self.find_prefix(ref, limit=2)
            if len(matches) > 1:
                raise UsageError(f"{ref}: ambiguous hash prefix (matches {matches[0].hex()[:16]}…, "
                                 f"{matches[1].hex()[:16]}…)")
            if matches:
                return matches[0]
        raise UsageError(f"{ref}: no such file and no stored program of that hash or name")

    def find_prefix(self, prefix: str, limit: int = 2) -> list[bytes]:
        """Stored addresses whose hex starts with `prefix` (at most `limit`)."""
        p = prefix.lower()
        lo = bytes.fromhex(p + "0" * (64 - len(p)))
        hi = bytes.fromhex(p + "f" * (64 - len(p)))
        return [r[0] for r in self._all("SELECT hash FROM nodes WHERE hash BETWEEN ? AND ? LIMIT ?",
                                        (lo, hi, limit))]

    # -- names ---------------------------------------------------------------------------------

    def bind_name(self, name: str, target) -> int:
        """Bind `name` to a stored node (history kept); returns the binding's seq. Rebinding
        to the current target is a no-op that returns the current seq."""
        addr = self._address_of(target)
        if not isinstance(name, str) or not name:
            raise StoreError("a name must be a non-empty string")
        if self._tx is None and addr is not None and self.resolve_name(name) == addr:
            return self.name_history(name)[-1][0]
        with self.transaction(f"bind {name}"):
            if addr is None or not self._has(addr):
                raise StoreError(f"cannot bind '{name}': target {target!r} is not stored")
            cur = self._x("SELECT seq, hash FROM names WHERE name=? ORDER BY seq DESC LIMIT 1", (name,)).fetchone()
            if cur is not None and cur[1] == addr:
                return cur[0]
            seq = 1 if cur is None else cur[0] + 1
            self._x("INSERT INTO names VALUES (?,?,?,?)", (name, seq, addr, now_us()))
            self._x("INSERT OR REPLACE INTO name_commits VALUES (?,?,(SELECT coalesce(max(seq), 0) + 1 "
                    "FROM roots))", (name, seq))
            if cur is not None:
                self._del_entries([e_name(name, cur[1])])
            self._add_entries([e_name(name, addr)])
            self.register_strings([name])
        return seq

    def resolve_name(self, name: str) -> bytes | None:
        row = self._one("SELECT hash FROM names WHERE name=? ORDER BY seq DESC LIMIT 1", (name,))
        return None if row is None else row[0]

    def name_history(self, name: str) -> list[tuple[int, bytes, int]]:
        """(seq, hash, created_us) of every binding of `name`, oldest first."""
        return [tuple(r) for r in self._all("SELECT seq, hash, created_us FROM names WHERE name=? "
                                            "ORDER BY seq", (name,))]

    def names(self) -> list[tuple[str, bytes, int, int]]:
        """Current bindings: (name, hash, seq, created_us), sorted by name."""
        return [tuple(r) for r in self._all(
            "SELECT n.name, n.hash, n.seq, n.created_us FROM names n JOIN "
            "(SELECT name, max(seq) AS s FROM names GROUP BY name) m ON n.name=m.name AND n.seq=m.s "
            "ORDER BY n.name")]

    # -- strings -------------------------------------------------------------------------------

    def register_string(self, s: str) -> int:
        """Add `s` to the string dictionary; returns name_hash(s)."""
        return self.register_strings([s])[0]

    def register_strings(self, values: Iterable[str]) -> list[int]:
        values = list(values)
        hs = [name_hash(v) for v in values]
        if self._tx is None and all(self.resolve_string(h) is not None for h in hs):
            return hs
        with self.transaction("register_strings"):
            for h, v in zip(hs, values):
                if self._x("INSERT OR IGNORE INTO strings VALUES (?,?)", (be8(h), v)).rowcount:
                    self._add_entries([e_str(be8(h), v)])
        return hs

    def resolve_string(self, h: int) -> str | None:
        row = self._one("SELECT value FROM strings WHERE hash=?", (be8(h),))
        return None if row is None else row[0]

    def strings_for(self, hashes: Iterable[int]) -> dict[int, str]:
        hs, out = sorted(set(hashes)), {}
        for chunk in (hs[i:i + 500] for i in range(0, len(hs), 500)):
            q = "SELECT hash, value FROM strings WHERE hash IN (%s)" % ",".join("?" * len(chunk))
            out.update((from_be8(h), v) for h, v in self._all(q, [be8(h) for h in chunk]))
        return out

    def names_for(self, sequence: Sequence[Node]) -> dict[int, str]:
        """name_hash → string for every variable name used in `sequence`."""
        hs = {n.name for root in sequence for n in walk(root) if type(n) in (Let, Load, Store)}
        return self.strings_for(hs)

    # -- KV ------------------------------------------------------------------------------------

    def kv_key(self, token: int, layer: int) -> bytes:
        return be8(kv_token_hash(token, layer, self.weight_root))

    def put_kv(self, token: int, layer: int, record: bytes) -> int:
        """Store a KV record (formats.md §6) under kv_token_hash(token, layer, weight_root)."""
        key = self.kv_key(token, layer)
        self._put_kv_row(key, token, layer, bytes(record), f"put_kv {token}/{layer}")
        return from_be8(key)

    def _put_kv_row(self, key: bytes, token, layer, record: bytes, message: str) -> None:
        prob = kv_record_problem(record)
        if prob:
            raise StoreError(prob)
        with self.transaction(message):
            old = self._x("SELECT record FROM kv WHERE key=?", (key,)).fetchone()
            if old is not None:
                if old[0] == record:
                    return
                self._del_entries([e_kv(key, old[0])])
            self._x("INSERT OR REPLACE INTO kv VALUES (?,?,?,?)", (key, token, layer, record))
            self._add_entries([e_kv(key, record)])
            self._cache_kv(key, record)

    def _cache_kv(self, key: bytes, record: bytes) -> None:
        new = key not in self._kv_cache
        self._kv_cache[key] = record
        if new and len(self._kv_cache) > KV_CACHE_SIZE:
            self._kv_cache.popitem(last=False)  # FIFO: the oldest insertion goes first

    def get_kv(self, token: int, layer: int) -> bytes | None:
        return self.get_kv_by_key(from_be8(self.kv_key(token, layer)))

    def get_kv_by_key(self, key: int) -> bytes | None:
        k = be8(key)
        with self._lock:
            hit = self._kv_cache.get(k)
            if hit is not None:
                return hit
            row = self._one("SELECT record FROM kv WHERE key=?", (k,))
            if row is None:
                return None
            self._cache_kv(k, row[0])
            return row[0]

    # -- snapshots and triple queries ----------------------------------------------------------

    def put_file_snapshot(self, path: str, triples: Sequence[Sequence[int]],
                          names: dict[int, str] | None = None) -> int:
        """Replace the live triples of `path` (validated as a batch); returns the snapshot key."""
        key = snapshot_hash(path)
        self._put_snapshot(be8(key), path, triples, names, validate=True)
        return key

    def _put_snapshot(self, key: bytes, path: str | None, triples, names=None, validate=True) -> None:
        recs = [TripleRecord(*t) for t in triples]
        if validate:
            issues = validate_triples(recs)
            if issues:
                raise ValidationError(f"validation: {issues[0]}",
                                      [Diagnostic(VALIDATION_ERROR, m) for m in issues])
        recs = list(dict.fromkeys(recs))
        for s, p, o in recs:
            encode_record((s, p, o))  # range check before writing
        with self.transaction(f"snapshot {path if path is not None else key.hex()}"):
            self._drop_snapshot_triples(key)
            if self._x("SELECT 1 FROM snapshots WHERE key=?", (key,)).fetchone() is None:
                self._add_entries([e_snap(key)])
            self._x("INSERT OR REPLACE INTO snapshots VALUES (?,?,?)", (key, path, now_us()))
            self._conn.executemany("INSERT INTO triples VALUES (?,?,?,'snapshot',?)",
                                   [(be8(s), p, be8(o), key) for s, p, o in recs])
            self._add_entries(e_triple(s, p, o, "snapshot", key) for s, p, o in recs)
            if names:
                self.register_strings(names.values())

    def _drop_snapshot_triples(self, key: bytes) -> None:
        old = self._x("SELECT subject, predicate, object FROM triples WHERE origin_kind='snapshot' "
                      "AND origin=?", (key,)).fetchall()
        self._del_entries(e_triple(from_be8(s), p, from_be8(o), "snapshot", key) for s, p, o in old)
        self._x("DELETE FROM triples WHERE origin_kind='snapshot' AND origin=?", (key,))

    def remove_file_snapshot(self, path: str) -> bool:
        """Drop the live triples of `path`; False when there was no snapshot."""
        key = be8(snapshot_hash(path))
        with self.transaction(f"remove snapshot {path}"):
            if self._x("SELECT 1 FROM snapshots WHERE key=?", (key,)).fetchone() is None:
                return False
            self._drop_snapshot_triples(key)
            self._x("DELETE FROM snapshots WHERE key=?", (key,))
            self._del_entries([e_snap(key)])
        return True

    def snapshots(self) -> list[tuple[int, str | None, int]]:
        return [(from_be8(k), p, t) for k, p, t in self._all("SELECT key, path, updated_us FROM snapshots ORDER BY key")]

    # -- integrity and interchange -------------------------------------------------------------

    def verify(self) -> list[str]:
        """Every integrity problem found (empty = healthy); see `nda.store.verify.verify_store`."""
        return verify_store(self)

    def import_sitemap_dir(self, directory: str):
        """Import the original's directory layout in one transaction → `ImportReport`."""
        from nda.store.sitemap_dir import import_dir

        return import_dir(self, directory)

    def export_sitemap_dir(self, directory: str):
        """Write the original's directory layout → `ExportReport` (incl. non-round-trippable nodes)."""
        from nda.store.sitemap_dir import export_dir

        return export_dir(self, directory)


def remove_store_files(path, remove_dir: bool = False) -> None:
    """Delete a store file and its SQLite side files (used when the call that created the store
    rejected its first commit, so nothing is left behind), and its directory when `remove_dir`
    (the caller created it too) and it is empty."""
    from pathlib import Path

    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    if remove_dir:
        try:
            Path(path).parent.rmdir()
        except OSError:
            pass


def _statements(script: str) -> list[str]:
    """Split a script into complete statements (trigger bodies contain semicolons)."""
    out, cur = [], ""
    for line in script.splitlines(keepends=True):
        cur += line
        if sqlite3.complete_statement(cur):
            out, cur = out + [cur.strip()], ""
    return out


def _is_hex(s: str) -> bool:
    try:
        int(s, 16)
    except ValueError:
        return False
    return all(c in "0123456789abcdefABCDEF" for c in s)


__all__ = [
    "SiteMap", "NodeRecord", "LogEntry", "Transaction", "EMPTY_ROOT", "SCHEMA_VERSION",
    "be8", "from_be8", "state_root_of", "commit_id_of", "e_node", "e_group", "e_prog", "e_name", "e_triple",
    "e_snap", "e_kv", "e_str",
]
