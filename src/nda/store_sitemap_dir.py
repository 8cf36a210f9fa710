"""SiteMap integrity check and the original's directory layout (formats.md §6).

In: an open `store.SiteMap`; a directory in the original's layout (import) or a target
directory (export).
Out: `verify_store(store)` → list of problems (runtime.md §8 `verify()`); `import_dir` →
`ImportReport` (counts, problems, the directory's index root); `export_dir` → `ExportReport`
(counts, the list of nodes that are not v1-round-trippable, the index root).

Import is one store transaction. Each entry's `file_sha` is checked (mismatch or missing file →
reported and skipped). Node → v1-decoded, stored under its H2 with `v1_hash = entry.hash`
(reported when H1 differs). An entry whose file is also the file of a Node entry with
`hash == H1` but whose own hash differs is a **group-member alias** (written by our export): the
aliased nodes are re-linked (their `Legacy64(alias)` calls become named calls, then
`link.link_module`); a group is stored as a group only if every rebuilt member address has the
recorded alias, otherwise its members stay plain nodes and the aliases are reported.
Program → 8-byte LE root H1 resolved through the v1 index. Kv → KV row (token/layer unknown).
Snapshot → live triples keyed by the snapshot hash (path unknown; batch issues are reported, the
triples are kept, duplicates dropped). dictionary → strings (entries whose hash is not the
name_hash of the string are reported and skipped). weight_root from metadata.nda (wins) or
metadata.json.

Export writes every stored node with §1.1 under its H1 (one file per distinct H1), members with
their group's aliases, plus an index entry under each member's alias pointing at the member's
file; programs as 8-byte files, KV, snapshots (live triples of each snapshot), dictionary, both
metadata files and `index.json` sorted by (kind, hash).
"""

from __future__ import annotations

import json
import sqlite3
import struct
from dataclasses import dataclass, field
from pathlib import Path

from .binary_v1 import decode_v1_prefix, encode_v1, v1_roundtrips
from .binary_v2 import decode_node, encode_node
from .errors import NdaError, StoreError
from .hashing import (
    Hasher, alias_of, file_sha, h1, index_root, kv_token_hash, name_hash,
    program_entry_hash,
)
from .ir import Call, Def, GroupRef, Hash32, Legacy64, Module, NamedRef, walk
from .link import build_group, link_module, rewrite_calls
from .store import (
    DECODE_DEPTH, be8, commit_id_of, e_group, e_kv, e_name, e_node, e_prog, e_snap, e_str,
    e_triple, from_be8, state_root_of,
)
from .triples import TripleRecord, node_triples, validate_triples

KINDS = ("Kv", "Node", "Program", "Snapshot")
_SHOWN = 16  # hex digits of a hash in messages


def _hx(b: bytes) -> str:
    return b.hex()[:_SHOWN]


# ---------------------------------------------------------------------------------------------
# KV records (formats.md §6)


def kv_record_size(n: int) -> int:
    return 4 + 4 * ((n + 7) // 8)


def encode_kv_record(length: int, log2_scale: int, k_sign: bytes, k_extra: bytes,
                     v_sign: bytes, v_extra: bytes) -> bytes:
    """`len u16, log2_scale i8, reserved 0, k_sign, k_extra, v_sign, v_extra`."""
    plane = (length + 7) // 8
    if not 0 <= length <= 0xFFFF or not -128 <= log2_scale <= 127:
        raise StoreError(f"kv record: len {length} / log2_scale {log2_scale} out of range")
    if any(len(p) != plane for p in (k_sign, k_extra, v_sign, v_extra)):
        raise StoreError(f"kv record: every plane must be {plane} bytes for len {length}")
    return struct.pack("<Hbx", length, log2_scale) + k_sign + k_extra + v_sign + v_extra


def kv_record_problem(record: bytes) -> str | None:
    """Why `record` is not a valid KV record, or None."""
    if len(record) < 4:
        return f"kv record too short ({len(record)} bytes)"
    n = struct.unpack_from("<H", record)[0]
    if record[3] != 0:
        return f"kv record reserved byte is {record[3]}, not 0"
    if len(record) != kv_record_size(n):
        return f"kv record size {len(record)} does not match len {n} (expected {kv_record_size(n)})"
    return None


def decode_kv_record(record: bytes) -> dict:
    prob = kv_record_problem(record)
    if prob:
        raise StoreError(prob)
    n, scale = struct.unpack_from("<Hb", record)
    p = (n + 7) // 8
    planes = [record[4 + i * p: 4 + (i + 1) * p] for i in range(4)]
    return {"len": n, "log2_scale": scale, "k_sign": planes[0], "k_extra": planes[1],
            "v_sign": planes[2], "v_extra": planes[3]}


# ---------------------------------------------------------------------------------------------
# verify()


def verify_store(store) -> list[str]:
    """Every check of runtime.md §8 `verify()`; problems as text (empty = healthy)."""
    problems: list[str] = []
    with store._lock:
        try:
            _verify(store._conn, store.weight_root, problems)
        except sqlite3.DatabaseError as e:
            problems.append(f"sqlite: {e}")
    return problems


def _verify(c, weight_root: int, problems: list[str]) -> None:
    add = problems.append
    for (msg,) in c.execute("PRAGMA quick_check").fetchall():
        if msg != "ok":
            add(f"sqlite: {msg}")
    meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("schema_version") != "1":
        add(f"meta: schema_version is {meta.get('schema_version')!r}, expected '1'")

    rows = c.execute("SELECT hash, v1_hash, opcode, bytes, group_hash, group_index FROM nodes "
                     "ORDER BY rowid").fetchall()
    info = {r[0]: (from_be8(r[1]), r[4] is not None) for r in rows}

    def callee_h1(d: bytes):
        i = info.get(bytes(d))
        return None if i is None else (alias_of(d) if i[1] else i[0])

    hasher = Hasher()
    decoded: dict[bytes, object] = {}
    members: dict[bytes, list] = {}
    for addr, v1b, opcode, data, g, gi in rows:
        try:
            node = decode_node(data, DECODE_DEPTH)
        except NdaError as e:
            add(f"node {_hx(addr)}: stored bytes do not decode: {e.message}")
            continue
        decoded[addr] = node
        if opcode != int(node.OPCODE):
            add(f"node {_hx(addr)}: opcode column {opcode} but the bytes hold opcode {int(node.OPCODE)}")
        if g is not None:
            members.setdefault(g, []).append((gi, addr, node, from_be8(v1b)))
            continue
        if hasher.h2(node) != addr:
            add(f"node {_hx(addr)}: H2 mismatch (bytes hash to {_hx(hasher.h2(node))})")
        _check_v1(addr, node, None, from_be8(v1b), callee_h1, add)
        _check_targets(addr, node, None, info, add)

    groups = dict(c.execute("SELECT hash, size FROM groups").fetchall())
    for g, block in members.items():
        block.sort(key=lambda x: x[0])
        if g not in groups:
            add(f"group {_hx(g)}: has members but no groups row")
        elif groups[g] != len(block):
            add(f"group {_hx(g)}: size {groups[g]} but {len(block)} members stored")
        if [b[0] for b in block] != list(range(len(block))):
            add(f"group {_hx(g)}: member indexes {[b[0] for b in block]} are not 0..{len(block) - 1}")
            continue
        gi = build_group([b[2] for b in block], hasher)
        if gi.hash != g:
            add(f"group {_hx(g)}: members rebuild group hash {_hx(gi.hash)}")
        for (j, addr, node, v1), m in zip(block, gi.members):
            if m != addr:
                add(f"node {_hx(addr)}: member {j} of group {_hx(g)} rebuilds address {_hx(m)}")
            _check_v1(addr, node, gi.aliases, v1, callee_h1, add)
            _check_targets(addr, node, len(block), info, add)
    for g in groups:
        if g not in members:
            add(f"group {_hx(g)}: no members stored")

    progs = c.execute("SELECT root, v1_program_hash FROM programs").fetchall()
    for root, v1p in progs:
        if root not in info:
            add(f"program {_hx(root)}: root node is missing")
        elif v1p is None or from_be8(v1p) != program_entry_hash(info[root][0]):
            add(f"program {_hx(root)}: v1_program_hash does not match its root's H1")
    current = c.execute("SELECT n.name, n.hash FROM names n JOIN (SELECT name, max(seq) AS s FROM names "
                        "GROUP BY name) m ON n.name=m.name AND n.seq=m.s").fetchall()
    for name, h in current:
        if h not in info:
            add(f"name '{name}': bound to {_hx(h)}, which is not stored")

    trows = c.execute("SELECT subject, predicate, object, origin_kind, origin FROM triples").fetchall()
    by_origin: dict[bytes, list] = {}
    snaps = {k for (k,) in c.execute("SELECT key FROM snapshots")}
    for s, p, o, kind, origin in trows:
        if kind == "node":
            by_origin.setdefault(origin, []).append(TripleRecord(from_be8(s), p, from_be8(o)))
        elif origin not in snaps:
            add(f"triple ({from_be8(s):016x}, {p}, {from_be8(o):016x}): snapshot {origin.hex()} is missing")
    for addr, node in decoded.items():
        want = sorted(node_triples(node))
        have = sorted(by_origin.pop(addr, []))
        if want != have:
            add(f"node {_hx(addr)}: indexed triples {len(have)} differ from the {len(want)} it contains")
    for origin in by_origin:
        if origin not in info:
            add(f"triples of node {_hx(origin)}: the node is not stored")

    for h, v in c.execute("SELECT hash, value FROM strings"):
        if from_be8(h) != name_hash(v):
            add(f"string {h.hex()}: hash is not name_hash({v!r})")
    for key, token, layer, rec in c.execute("SELECT key, token, layer, record FROM kv"):
        prob = kv_record_problem(rec)
        if prob:
            add(f"kv {key.hex()}: {prob}")
        if token is not None and layer is not None and from_be8(key) != kv_token_hash(token, layer, weight_root):
            add(f"kv {key.hex()}: key is not the KV token hash of ({token}, {layer})")

    # state entries and the root log
    want = {e_node(a) for a in info}
    want.update(e_group(g) for g in groups)
    want.update(e_prog(r) for r, _ in progs)
    want.update(e_name(n, h) for n, h in current)
    want.update(e_triple(from_be8(s), p, from_be8(o), k, origin) for s, p, o, k, origin in trows)
    want.update(e_snap(k) for k in snaps)
    want.update(e_kv(k, r) for k, r in c.execute("SELECT key, record FROM kv"))
    want.update(e_str(h, v) for h, v in c.execute("SELECT hash, value FROM strings"))
    have = {d for (d,) in c.execute("SELECT digest FROM state_entries")}
    if want != have:
        add(f"state entries: {len(want - have)} missing, {len(have - want)} unexpected")
    root = state_root_of(sorted(want))
    log = c.execute("SELECT seq, state_root, parent, commit_id, message, time_us, entry_count "
                    "FROM roots ORDER BY seq").fetchall()
    if log:
        last = log[-1]
        if last[1] != root:
            add(f"root log: current state_root {root.hex()} != last entry's {last[1].hex()} (seq {last[0]})")
        if last[6] != len(want):
            add(f"root log: last entry counts {last[6]} entries, the state has {len(want)}")
    elif want:
        add("root log: empty, but the store holds data")
    prev = None
    for i, (seq, sroot, parent, cid, msg, t, _n) in enumerate(log, start=1):
        if seq != i:
            add(f"root log: seq {seq} where {i} was expected")
        if parent != (prev[3] if prev else None):
            add(f"root log: entry {seq} parent does not link to the previous commit_id")
        if cid != commit_id_of(sroot, parent, t or 0, msg or ""):
            add(f"root log: entry {seq} commit_id does not recompute")
        prev = (seq, sroot, parent, cid)


def _check_v1(addr, node, aliases, v1: int, callee_h1, add) -> None:
    try:
        want = h1(node, aliases, callee_h1)
    except NdaError as e:
        add(f"node {_hx(addr)}: H1 cannot be recomputed: {e.message}")
        return
    if want != v1:
        add(f"node {_hx(addr)}: v1_hash {v1:016x} but H1 is {want:016x}")


def _check_targets(addr, node, group_size, info, add) -> None:
    for n in walk(node):
        if type(n) is not Call:
            continue
        t = n.target
        if type(t) is Hash32 and t.digest not in info:
            add(f"node {_hx(addr)}: call target {t.digest.hex()} not found")
        elif type(t) is GroupRef and (group_size is None or t.index >= group_size):
            add(f"node {_hx(addr)}: GroupRef {t.index} outside a group of that size")


# ---------------------------------------------------------------------------------------------
# Export


@dataclass
class ExportReport:
    directory: str
    counts: dict = field(default_factory=dict)
    non_roundtrippable: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    index_root: int = 0

    def to_dict(self) -> dict:
        return {"directory": self.directory, "counts": self.counts,
                "non_roundtrippable": self.non_roundtrippable, "problems": self.problems,
                "index_root": f"{self.index_root:016x}"}


def _write(root: Path, rel: str, data: bytes, kind: str, h: int, entries: dict) -> None:
    (root / rel).write_bytes(data)
    entries[(kind, h)] = {"kind": kind, "hash": h, "file": rel, "file_sha": file_sha(data), "size": len(data)}


def export_dir(store, directory: str) -> ExportReport:
    root = Path(directory)
    rep = ExportReport(str(directory))
    for sub in ("nodes", "programs", "kv", "snapshots"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    entries: dict = {}
    c = store._conn
    with store._lock:
        rows = c.execute("SELECT hash, v1_hash, bytes, group_hash FROM nodes ORDER BY rowid").fetchall()
        info = {r[0]: (from_be8(r[1]), r[3] is not None) for r in rows}

        def callee_h1(d):
            i = info.get(bytes(d))
            return None if i is None else (alias_of(d) if i[1] else i[0])

        groups: dict[bytes, tuple] = {}
        for addr, v1b, data, g in rows:
            v1 = from_be8(v1b)
            node = decode_node(data, DECODE_DEPTH)
            aliases = None
            if g is not None:
                if g not in groups:
                    groups[g] = store._group_info(g).aliases
                aliases = groups[g]
            try:
                raw = encode_v1(node, callee_h1, aliases)
            except NdaError as e:
                rep.problems.append(f"node {_hx(addr)}: cannot be written as v1: {e.message}")
                continue
            if not v1_roundtrips(node, callee_h1, aliases):
                rep.non_roundtrippable.append({"hash": addr.hex(), "v1_hash": f"{v1:016x}",
                                               "kind": type(node).__name__})
            rel = f"nodes/{v1:016x}.nda"
            prev = entries.get(("Node", v1))
            if prev is None:
                _write(root, rel, raw, "Node", v1, entries)
            elif prev["file_sha"] != file_sha(raw):
                rep.problems.append(f"node {_hx(addr)}: v1 hash {v1:016x} collides with another node; not written")
                continue
            if g is not None:
                e = dict(entries[("Node", v1)])
                e["hash"] = alias_of(addr)
                entries.setdefault(("Node", alias_of(addr)), e)
        for r, v1p in c.execute("SELECT root, v1_program_hash FROM programs ORDER BY rowid").fetchall():
            h = from_be8(v1p)
            _write(root, f"programs/{h:016x}.nda", info[r][0].to_bytes(8, "little"), "Program", h, entries)
        for key, rec in c.execute("SELECT key, record FROM kv ORDER BY key").fetchall():
            h = from_be8(key)
            _write(root, f"kv/{h:016x}.kv", rec, "Kv", h, entries)
        for (key,) in c.execute("SELECT key FROM snapshots ORDER BY key").fetchall():
            trips = c.execute("SELECT subject, predicate, object FROM triples WHERE origin_kind='snapshot' "
                              "AND origin=? ORDER BY rowid", (key,)).fetchall()
            arr = [{"subject_hash": from_be8(s), "predicate_id": p, "object_hash": from_be8(o)} for s, p, o in trips]
            h = from_be8(key)
            _write(root, f"snapshots/{h:016x}.json", _json_bytes(arr), "Snapshot", h, entries)
        dictionary = {f"{from_be8(h):016x}": v for h, v in c.execute("SELECT hash, value FROM strings ORDER BY hash")}
    (root / "dictionary.json").write_bytes(_json_bytes(dictionary))
    wr = f"{store.weight_root:016x}"
    (root / "metadata.nda").write_bytes(f"metadata version 2\nfield_count 1\nfield\tweight_root\t{wr}\n".encode())
    (root / "metadata.json").write_bytes(_json_bytes({"weight_root": wr}))
    index = sorted(entries.values(), key=lambda e: (KINDS.index(e["kind"]), e["hash"], e["file"]))
    (root / "index.json").write_bytes(_json_bytes(index))
    rep.counts = {k: sum(1 for e in index if e["kind"] == k) for k in KINDS}
    rep.counts["strings"] = len(dictionary)
    rep.index_root = index_root(e["hash"] for e in index)
    return rep


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Import


@dataclass
class ImportReport:
    directory: str
    counts: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    index_root: int = 0
    weight_root: int | None = None
    commit: object = None

    def to_dict(self) -> dict:
        return {"directory": self.directory, "counts": self.counts, "problems": self.problems,
                "index_root": f"{self.index_root:016x}",
                "weight_root": None if self.weight_root is None else f"{self.weight_root:016x}",
                "commit": None if self.commit is None else self.commit.to_dict()}


def _read_index(root: Path) -> list:
    p = root / "index.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise StoreError(f"{p}: cannot read: {e.strerror or e}") from e
    except ValueError as e:
        raise StoreError(f"{p}: not JSON: {e}") from e
    if not isinstance(data, list):
        raise StoreError(f"{p}: expected a JSON array of entries")
    return data


def _entry_ok(e) -> str | None:
    if not isinstance(e, dict):
        return "not an object"
    if e.get("kind") not in KINDS:
        return f"unknown kind {e.get('kind')!r}"
    h = e.get("hash")
    if not isinstance(h, int) or isinstance(h, bool) or not 0 <= h < 1 << 64:
        return f"bad hash {h!r}"
    if not isinstance(e.get("file"), str) or not isinstance(e.get("file_sha"), str):
        return "missing file or file_sha"
    return None


def _weight_root_of(root: Path, problems: list) -> int | None:
    nda = root / "metadata.nda"
    if nda.exists():
        for line in nda.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[0] == "field" and parts[1] == "weight_root":
                try:
                    return int(parts[2], 16)
                except ValueError:
                    problems.append(f"metadata.nda: bad weight_root {parts[2]!r}")
                    return None
        problems.append("metadata.nda: no weight_root field")
        return None
    js = root / "metadata.json"
    if js.exists():
        try:
            return int(json.loads(js.read_text(encoding="utf-8"))["weight_root"], 16)
        except (ValueError, KeyError, TypeError) as e:
            problems.append(f"metadata.json: bad weight_root ({e})")
    return None


def import_dir(store, directory: str) -> ImportReport:
    root = Path(directory)
    if not root.is_dir():
        raise StoreError(f"{directory}: not a directory")
    rep = ImportReport(str(directory))
    probs = rep.problems
    index = _read_index(root)
    base = root.resolve()
    good: list[tuple[dict, bytes]] = []
    for i, e in enumerate(index):
        why = _entry_ok(e)
        if why:
            probs.append(f"index[{i}]: {why}; skipped")
            continue
        label = f"{e['kind']} {e['hash']:016x}"
        p = (root / e["file"]).resolve()
        if base not in p.parents:
            probs.append(f"{label}: file {e['file']!r} is outside the directory; skipped")
            continue
        try:
            data = p.read_bytes()
        except OSError:
            probs.append(f"{label}: file {e['file']} is missing; skipped")
            continue
        if file_sha(data) != e["file_sha"].lower():
            probs.append(f"{label}: file_sha mismatch for {e['file']}; skipped")
            continue
        if e.get("size") is not None and e.get("size") != len(data):
            probs.append(f"{label}: size {e.get('size')} but the file has {len(data)} bytes")
        good.append((e, data))
    rep.index_root = index_root(e["hash"] for e, _ in good)
    rep.weight_root = _weight_root_of(root, probs)
    counts = {k: 0 for k in ("nodes", "groups", "programs", "kv", "snapshots", "strings")}
    with store.transaction(f"import-sitemap {directory}") as tx:
        if rep.weight_root is not None and rep.weight_root != store.weight_root:
            if store._x("SELECT 1 FROM kv WHERE token IS NOT NULL LIMIT 1").fetchone():
                probs.append(f"weight_root {rep.weight_root:016x} differs from the store's "
                             f"{store.weight_root:016x}, which holds KV records; kept the store's")
            else:
                store._x("UPDATE meta SET value=? WHERE key='weight_root'", (f"{rep.weight_root:016x}",))
                store.weight_root = rep.weight_root
        _import_nodes(store, [(e, d) for e, d in good if e["kind"] == "Node"], probs, counts)
        for e, data in good:
            if e["kind"] == "Program":
                _import_program(store, e, data, probs, counts)
            elif e["kind"] == "Kv":
                prob = kv_record_problem(data)
                if prob:
                    probs.append(f"Kv {e['hash']:016x}: {prob}; skipped")
                    continue
                store._put_kv_row(be8(e["hash"]), None, None, data, "import kv")
                counts["kv"] += 1
            elif e["kind"] == "Snapshot":
                _import_snapshot(store, e, data, probs, counts)
        _import_dictionary(store, root, probs, counts)
    rep.counts = counts
    rep.commit = tx.entry
    return rep


def _import_nodes(store, entries, probs, counts) -> None:
    decoded: dict[str, object] = {}
    for e, data in entries:
        if e["file"] in decoded:
            continue
        try:
            node, end = decode_v1_prefix(data, 0, DECODE_DEPTH)
        except NdaError as err:
            probs.append(f"Node {e['hash']:016x}: does not decode as v1: {err.message}; skipped")
            decoded[e["file"]] = None
            continue
        if end != len(data):
            probs.append(f"Node {e['hash']:016x}: {len(data) - end} trailing bytes after the node")
        decoded[e["file"]] = node
    h1_of = {f: (h1(n) if n is not None else None) for f, n in decoded.items()}
    primary_files = {e["file"] for e, _ in entries if h1_of.get(e["file"]) == e["hash"]}
    aliases: dict[int, object] = {}
    plain: list = []
    for e, _ in entries:
        node = decoded.get(e["file"])
        if node is None:
            continue
        if h1_of[e["file"]] != e["hash"] and e["file"] in primary_files:
            aliases[e["hash"]] = e
        else:
            if h1_of[e["file"]] != e["hash"]:
                probs.append(f"Node {e['hash']:016x}: H1 of the node is {h1_of[e['file']]:016x}")
            plain.append(e)
    member_files = _import_groups(store, aliases, decoded, probs, counts)
    hasher = Hasher()
    for e in plain:
        if e["file"] in member_files:
            continue
        node = decoded[e["file"]]
        addr = hasher.h2(node)
        if store._has(addr):
            continue
        store._insert_node(addr, e["hash"], node, encode_node(node))
        counts["nodes"] += 1


def _import_groups(store, aliases: dict, decoded: dict, probs: list, counts: dict) -> set:
    """Re-link alias entries into groups; returns the files stored as group members."""
    if not aliases:
        return set()
    name = {a: f"a{a:016x}" for a in aliases}

    def named(t):
        return NamedRef(name[t.value]) if type(t) is Legacy64 and t.value in name else None

    defs = tuple(Def(name[a], rewrite_calls(decoded[e["file"]], named)) for a, e in aliases.items())
    try:
        linked = link_module(Module(defs))
    except NdaError as err:
        probs.append(f"group aliases could not be re-linked: {err.message}")
        return set()
    by_name = {v: a for a, v in name.items()}
    stored: set = set()
    ok_addr: set = set()
    blocks: dict = {}
    for d in linked.defs:
        blocks.setdefault(d.group.hash if d.group else d.address, []).append(d)
    for ds in blocks.values():
        g = ds[0].group
        deps_ok = all(type(n.target) is not Hash32 or n.target.digest in ok_addr or store._has(n.target.digest)
                      for d in ds for n in walk(d.node) if type(n) is Call)
        if g is None or not deps_ok or any(alias_of(d.address) != by_name[d.name] for d in ds):
            probs.append("aliases " + ", ".join(f"{by_name[d.name]:016x}" for d in ds)
                         + ": group could not be rebuilt; members stored as plain nodes")
            continue
        if store._one("SELECT 1 FROM groups WHERE hash=?", (g.hash,)) is None:
            store._x("INSERT INTO groups VALUES (?,?)", (g.hash, len(g.members)))
            store._add_entries([e_group(g.hash)])
            counts["groups"] += 1
        for d in ds:
            ok_addr.add(d.address)
            stored.add(aliases[by_name[d.name]]["file"])
            if not store._has(d.address):
                v1 = h1(d.node, g.aliases, store.callee_h1)
                store._insert_node(d.address, v1, d.node, encode_node(d.node), g.hash, d.index)
                counts["nodes"] += 1
    return stored


def _import_program(store, e, data, probs, counts) -> None:
    label = f"Program {e['hash']:016x}"
    if len(data) != 8:
        probs.append(f"{label}: expected 8 bytes, file has {len(data)}; skipped")
        return
    root_h1 = int.from_bytes(data, "little")
    if program_entry_hash(root_h1) != e["hash"]:
        probs.append(f"{label}: not the program entry hash of root {root_h1:016x}")
    row = store._one("SELECT hash FROM nodes WHERE v1_hash=? ORDER BY rowid LIMIT 1", (be8(root_h1),))
    if row is None:
        probs.append(f"{label}: root {root_h1:016x} is not in the v1 index; skipped")
        return
    if store._one("SELECT 1 FROM programs WHERE root=?", (row[0],)) is None:
        store._record_program(row[0], e["hash"])
        counts["programs"] += 1


def _import_snapshot(store, e, data, probs, counts) -> None:
    label = f"Snapshot {e['hash']:016x}"
    try:
        arr = json.loads(data.decode("utf-8"))
        trips = [TripleRecord(int(t["subject_hash"]), int(t["predicate_id"]), int(t["object_hash"])) for t in arr]
        for s, p, o in trips:
            if not (0 <= s < 1 << 64 and 0 <= p <= 0xFFFF and 0 <= o < 1 << 64):
                raise ValueError(f"triple out of range ({s}, {p}, {o})")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        probs.append(f"{label}: not a triple array ({err}); skipped")
        return
    for msg in validate_triples(trips):
        probs.append(f"{label}: {msg}")
    store._put_snapshot(be8(e["hash"]), None, trips, validate=False)
    counts["snapshots"] += 1


def _import_dictionary(store, root: Path, probs, counts) -> None:
    p = root / "dictionary.json"
    if not p.exists():
        return
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        items = [(int(k, 16), v) for k, v in d.items()]
    except (ValueError, AttributeError) as err:
        probs.append(f"dictionary.json: unreadable ({err}); skipped")
        return
    values = []
    for h, v in items:
        if not isinstance(v, str) or name_hash(v) != h:
            probs.append(f"dictionary {h:016x}: not the name hash of {v!r}; skipped")
            continue
        values.append(v)
    store.register_strings(values)
    counts["strings"] = len(values)


__all__ = ["verify_store", "export_dir", "import_dir", "ExportReport", "ImportReport", "encode_kv_record",
           "decode_kv_record", "kv_record_problem", "kv_record_size"]
