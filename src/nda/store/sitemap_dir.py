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

`codebase.json` (ours; outside `index.json`, so the original ignores it) carries what the
original's layout has no place for: each stored function's source forms (`fn_meta`: H2, name,
canonical signature) and the current name bindings (name → H2). Import applies both inside the
same transaction, for addresses present in the store after the nodes are imported (others are
reported and skipped; a malformed file is reported, never fatal).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from nda.syntax.binary_v1 import decode_v1_prefix, encode_v1, v1_roundtrips
from nda.core.binary_v2 import decode_node, encode_node
from nda.core.errors import NdaError, StoreError
from nda.core.hashing import (
    Hasher, alias_of, file_sha, h1, index_root, name_hash,
    program_entry_hash,
)
from nda.core.ir import Call, Def, Hash32, Legacy64, Module, NamedRef, walk
from nda.core.link import link_module, rewrite_calls
from nda.store.records import (  # noqa: F401  (the KV codec is re-exported with the interchange)
    DECODE_DEPTH, be8, decode_kv_record, e_group, encode_kv_record, from_be8, kv_record_problem,
    kv_record_size,
)
from nda.store.verify import verify_store  # noqa: F401
from nda.syntax.triples import TripleRecord, validate_triples

KINDS = ("Kv", "Node", "Program", "Snapshot")
_SHOWN = 16  # hex digits of a hash in messages


def _hx(b: bytes) -> str:
    return b.hex()[:_SHOWN]


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
        v1_of = {r[0]: bytes(r[1]).hex() for r in rows}
        functions = [{"hash": h.hex(), "v1_hash": v1_of.get(h), "name": n, "signature": sig} for h, n, sig in
                     c.execute("SELECT hash, name, signature FROM fn_meta ORDER BY created_us, rowid")]
        names = [{"name": n, "hash": bytes(h).hex(), "v1_hash": v1_of.get(bytes(h))}
                 for n, h, _seq, _t in store.names()]
    (root / "dictionary.json").write_bytes(_json_bytes(dictionary))
    (root / "codebase.json").write_bytes(_json_bytes({"functions": functions, "names": names}))
    wr = f"{store.weight_root:016x}"
    (root / "metadata.nda").write_bytes(f"metadata version 2\nfield_count 1\nfield\tweight_root\t{wr}\n".encode())
    (root / "metadata.json").write_bytes(_json_bytes({"weight_root": wr}))
    index = sorted(entries.values(), key=lambda e: (KINDS.index(e["kind"]), e["hash"], e["file"]))
    (root / "index.json").write_bytes(_json_bytes(index))
    rep.counts = {k: sum(1 for e in index if e["kind"] == k) for k in KINDS}
    rep.counts["strings"] = len(dictionary)
    rep.counts["functions"] = len(functions)
    rep.counts["names"] = len(names)
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
    counts = {k: 0 for k in ("nodes", "groups", "programs", "kv", "snapshots", "strings", "functions", "names")}
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
        _import_codebase(store, root, probs, counts)
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


def _read_json(root: Path, name: str, probs: list, convert):
    """`convert(json of root/name)`, or None when the file is absent or unreadable (reported)."""
    p = root / name
    if not p.exists():
        return None
    try:
        return convert(json.loads(p.read_text(encoding="utf-8")))
    except (ValueError, AttributeError, KeyError, TypeError) as err:
        probs.append(f"{name}: unreadable ({err}); skipped")
        return None


def _import_dictionary(store, root: Path, probs, counts) -> None:
    items = _read_json(root, "dictionary.json", probs, lambda d: [(int(k, 16), v) for k, v in d.items()])
    if items is None:
        return
    values = []
    for h, v in items:
        if not isinstance(v, str) or name_hash(v) != h:
            probs.append(f"dictionary {h:016x}: not the name hash of {v!r}; skipped")
            continue
        values.append(v)
    store.register_strings(values)
    counts["strings"] = len(values)


def _target(store, entry: dict) -> bytes:
    """The imported address of an exported function/name target: its H2 when the store has it,
    else the one node imported under its H1 (a node calling group members is re-linked on
    import, so its H2 may differ from the exporting store's)."""
    addr = bytes.fromhex(entry["hash"])
    if store._has(addr) or not entry.get("v1_hash"):
        return addr
    found = store._all("SELECT hash FROM nodes WHERE v1_hash=?", (bytes.fromhex(entry["v1_hash"]),))
    return bytes(found[0][0]) if len(found) == 1 else addr


def _import_codebase(store, root: Path, probs, counts) -> None:
    """Function source forms and name bindings from `codebase.json` (see the module docstring)."""
    from nda.store.codebase import bind_names, parse_signature, put_function_meta

    got = _read_json(root, "codebase.json", probs, lambda d: (
        [(_target(store, f), f["name"], f["signature"]) for f in d.get("functions", [])],
        [(x["name"], _target(store, x)) for x in d.get("names", [])]))
    if got is None:
        return
    functions, names = got
    for addr, name, sig in functions:
        if not store._has(addr):
            probs.append(f"function {name} {addr.hex()[:16]}: not in the store; source form skipped")
            continue
        try:
            parsed = parse_signature(sig)
            params = parsed["params"]
            counts["functions"] += put_function_meta(store, addr, name, params and [tuple(q) for q in params],
                                                     parsed["returns"])
        except StoreError as err:
            probs.append(f"function {name!r} {addr.hex()[:16]}: {err.message}; skipped")
    good = {}
    for name, addr in names:
        if not isinstance(name, str) or not name or not store._has(addr):
            probs.append(f"name {name!r}: target {addr.hex()[:16]} not in the store; skipped")
            continue
        good[name] = addr
    if good:
        counts["names"] = len(bind_names(store, good))


__all__ = ["verify_store", "export_dir", "import_dir", "ExportReport", "ImportReport", "encode_kv_record",
           "decode_kv_record", "kv_record_problem", "kv_record_size"]
