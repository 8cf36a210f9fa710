"""The store as a codebase: names, function metadata, per-program triples, callers, dependencies.

In: an open `SiteMap`; refs — a bound name, 64 hex digits (H2), a unique hex prefix of at
least 8 digits, or `#x:` + 16 hex (a v1 hash) — and triple terms.
Out: plain dicts / lists ready for JSON (every address as 64 hex digits, every u64 term as
`#x:` + 16 hex), and the write helpers the commit path uses.

What lives here (everything takes the store as its first argument):
- names: `list_names`, `search_names`, `suggest_names`, `name_history`, `bindings_by_commit`,
  `names_of` (current and former names of an address), `bind_names` (several bindings in the
  caller's transaction, each reporting the target it replaced);
- function metadata: `put_function_meta` / `function_meta` — the source name, parameter names
  and types and return type a function was written with (table `fn_meta`, part of the state:
  entry `e_meta`); the node and its hash are unchanged by it;
- per-program triples: `record_program_triples(store, root, triples)` adds the DEFINES / CALLS
  facts of one committed program to that program's own triple set (a snapshot whose key is
  `snapshot_hash("program:" + root hex)`). Sets are only ever added to, so no commit — from
  any surface — removes a triple another commit recorded;
- queries by name or H2: `identities` (the u64 terms an address is known by in triples),
  `term_values` (a query token → its u64 terms), `describe_term` (u64 → address, bound name,
  dictionary string), `query_triples`, `callers`, `dependencies`.
"""

from __future__ import annotations

import difflib
import json
from typing import Iterable, Sequence

from nda.core.errors import StoreError, UsageError
from nda.core.hashing import snapshot_hash
from nda.core.ir import name_hash
from nda.store.records import be8, e_meta, e_snap, e_triple, from_be8, now_us
from nda.syntax.triples import CALLS, PREDICATE_NAMES, TripleRecord, encode_record, parse_term

PROGRAM_SNAPSHOT_PREFIX = "program:"
TYPES = ("vec", "matrix", "norm", "int", "float")


# ---------------------------------------------------------------------------------------------
# Per-program triples


def program_snapshot_path(root: bytes) -> str:
    """The snapshot path under which a committed program's triples are kept."""
    return PROGRAM_SNAPSHOT_PREFIX + bytes(root).hex()


def program_snapshot_key(root: bytes) -> bytes:
    return be8(snapshot_hash(program_snapshot_path(root)))


def record_program_triples(store, root: bytes, triples: Iterable[Sequence[int]],
                           names: dict[int, str] | None = None) -> int:
    """Add `triples` to the triple set of the committed program `root` (one transaction, or
    the caller's). Nothing is removed: recommitting the same program (even with other defs
    around it) only adds facts. Zero terms and self-references are left out.
    → the number of triples added."""
    recs = [TripleRecord(*t) for t in dict.fromkeys(tuple(t) for t in triples)]
    recs = [r for r in recs if r.subject and r.object and r.subject != r.object]
    for r in recs:
        encode_record(r)  # range check before writing
    key, path = program_snapshot_key(root), program_snapshot_path(root)
    with store.transaction(f"triples {path}"):
        have = {(from_be8(s), p, from_be8(o)) for s, p, o in store._x(
            "SELECT subject, predicate, object FROM triples WHERE origin_kind='snapshot' AND origin=?",
            (key,)).fetchall()}
        new = [r for r in recs if tuple(r) not in have]
        if store._x("SELECT 1 FROM snapshots WHERE key=?", (key,)).fetchone() is None:
            store._x("INSERT INTO snapshots VALUES (?,?,?)", (key, path, now_us()))
            store._add_entries([e_snap(key)])
        if new:
            store._conn.executemany("INSERT INTO triples VALUES (?,?,?,'snapshot',?)",
                                    [(be8(s), p, be8(o), key) for s, p, o in new])
            store._add_entries(e_triple(s, p, o, "snapshot", key) for s, p, o in new)
        if names:
            store.register_strings(sorted(set(names.values())))
    return len(new)


# ---------------------------------------------------------------------------------------------
# Function metadata


def signature_json(params: Sequence[Sequence[str]] | None, returns: str | None) -> str:
    """The canonical JSON of a signature: params [[name, type], …] (None = not written in the
    source, e.g. an S-expression def) and the return type (None = none written)."""
    return json.dumps({"params": None if params is None else [list(p) for p in params],
                       "returns": returns}, sort_keys=True, separators=(",", ":"))


def parse_signature(text: str) -> dict:
    """A stored signature → {"params": [[name, type], …] | None, "returns": str | None};
    StoreError when malformed."""
    try:
        d = json.loads(text)
    except ValueError as e:
        raise StoreError(f"signature is not JSON: {e}") from e
    ok = isinstance(d, dict) and set(d) == {"params", "returns"}
    params = d.get("params") if ok else None
    ok = ok and (params is None or (isinstance(params, list) and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) and p[1] in TYPES
        for p in params)))
    ok = ok and (d["returns"] is None or d["returns"] in TYPES)
    if not ok or signature_json(params, d["returns"]) != text:
        raise StoreError(f"signature {text!r} is not a canonical signature")
    return {"params": params, "returns": d["returns"]}


def put_function_meta(store, addr: bytes, name: str, params=None, returns: str | None = None) -> bool:
    """Record that the stored function `addr` was written as `name(params) -> returns`
    (params: [(name, type), …] or None). Idempotent; several source names per address are
    kept. The node itself is unchanged. → True when a new row was written."""
    sig = signature_json(params, returns)
    parse_signature(sig)
    if not isinstance(name, str) or not name:
        raise StoreError("a function's source name must be a non-empty string")
    with store.transaction(f"meta {name}"):
        if not store._has(bytes(addr)):
            raise StoreError(f"cannot record metadata of {bytes(addr).hex()}: not stored")
        added = store._x("INSERT OR IGNORE INTO fn_meta VALUES (?,?,?,?)",
                         (bytes(addr), name, sig, now_us())).rowcount
        if added:
            store._add_entries([e_meta(bytes(addr), name, sig)])
            if params:
                store.register_strings([p[0] for p in params])
    return bool(added)


def function_meta(store, addr: bytes) -> list[dict]:
    """Every recorded source form of `addr`, newest first: {name, params, returns}."""
    rows = store._all("SELECT name, signature FROM fn_meta WHERE hash=? ORDER BY created_us DESC, rowid DESC",
                      (bytes(addr),))
    return [{"name": n, **parse_signature(s)} for n, s in rows]


# ---------------------------------------------------------------------------------------------
# Names


def _binding(name, h, seq, t, previous=None, commit_seq=None) -> dict:
    return {"name": name, "hash": h.hex(), "seq": seq, "time_us": t,
            "previous": None if previous is None else previous.hex(), "commit_seq": commit_seq}


def list_names(store, prefix: str | None = None) -> list[dict]:
    """Current bindings (sorted by name), optionally only names starting with `prefix`:
    {name, hash, seq, time_us, previous, commit_seq, source}."""
    out = []
    for n, h, seq, t in store.names():
        if prefix and not n.startswith(prefix):
            continue
        d = _binding(n, h, seq, t, *_prev_and_commit(store, n, seq))
        meta = function_meta(store, h)
        d["source"] = meta[0] if meta else None
        out.append(d)
    return out


def _prev_and_commit(store, name: str, seq: int):
    prev = store._one("SELECT hash FROM names WHERE name=? AND seq=?", (name, seq - 1))
    c = store._one("SELECT root_seq FROM name_commits WHERE name=? AND seq=?", (name, seq))
    return (None if prev is None else prev[0]), (None if c is None else c[0])


def search_names(store, query: str, limit: int = 20) -> list[dict]:
    """Current bindings matching `query`: names containing it (case-insensitive) first, then
    close spellings (difflib). At most `limit`."""
    current = list_names(store)
    q = query.lower()
    hits = [d for d in current if q in d["name"].lower()]
    close = difflib.get_close_matches(query, [d["name"] for d in current], n=limit, cutoff=0.6)
    seen = {d["name"] for d in hits}
    hits += [d for n in close for d in current if d["name"] == n and n not in seen]
    return hits[:limit]


def suggest_names(store, name: str, n: int = 3, extra: Iterable[str] = ()) -> list[str]:
    """Close spellings of `name` among the store's current names and `extra`."""
    pool = list(dict.fromkeys([*extra, *(r[0] for r in store.names())]))
    return difflib.get_close_matches(name, pool, n=n, cutoff=0.6)


def name_history(store, name: str) -> list[dict]:
    """Every binding of `name`, oldest first: {name, hash, seq, time_us, previous, commit_seq}."""
    rows = store.name_history(name)
    out, prev = [], None
    for seq, h, t in rows:
        c = store._one("SELECT root_seq FROM name_commits WHERE name=? AND seq=?", (name, seq))
        out.append(_binding(name, h, seq, t, prev, None if c is None else c[0]))
        prev = h
    return out


def bindings_by_commit(store) -> dict[int, list[dict]]:
    """commit seq → the bindings made in that commit (with the target each replaced)."""
    out: dict[int, list[dict]] = {}
    for name, seq, root_seq, h, t in store._all(
            "SELECT c.name, c.seq, c.root_seq, n.hash, n.created_us FROM name_commits c JOIN names n "
            "ON n.name=c.name AND n.seq=c.seq ORDER BY c.root_seq, c.name"):
        prev = store._one("SELECT hash FROM names WHERE name=? AND seq=?", (name, seq - 1))
        out.setdefault(root_seq, []).append(_binding(name, h, seq, t, None if prev is None else prev[0],
                                                     root_seq))
    return out


def bind_names(store, bindings: dict[str, bytes]) -> list[dict]:
    """Bind each name to its address (inside the caller's transaction, or one of its own).
    → one {name, hash, previous} per name whose target changed (previous None = new name);
    a name already bound to that address is left alone and not reported."""
    out = []
    with store.transaction("bind " + ", ".join(bindings)):
        for name, addr in bindings.items():
            prev = store.resolve_name(name)
            if prev == bytes(addr):
                continue
            store.bind_name(name, bytes(addr))
            out.append({"name": name, "hash": bytes(addr).hex(),
                        "previous": None if prev is None else prev.hex()})
    return out


def names_of(store, addr: bytes) -> dict:
    """{"current": names bound to `addr` now, "former": names once bound to it and since moved,
    "source": source names from its metadata}."""
    addr = bytes(addr)
    current = [n for (n,) in store._all(
        "SELECT n.name FROM names n JOIN (SELECT name, max(seq) AS s FROM names GROUP BY name) m "
        "ON n.name=m.name AND n.seq=m.s WHERE n.hash=? ORDER BY n.name", (addr,))]
    ever = [n for (n,) in store._all("SELECT DISTINCT name FROM names WHERE hash=? ORDER BY name", (addr,))]
    source = list(dict.fromkeys(m["name"] for m in function_meta(store, addr)))
    return {"current": current, "former": [n for n in ever if n not in current], "source": source}


# ---------------------------------------------------------------------------------------------
# Triples by name or address


def identities(store, addr: bytes) -> set[int]:
    """The u64 terms `addr` stands for in triples: its H1 (its alias for a group member, and
    the member's own H1) and, for a program root, its v1 program entry hash."""
    addr = bytes(addr)
    out = set()
    row = store._one("SELECT v1_hash FROM nodes WHERE hash=?", (addr,))
    if row is not None:
        out.add(from_be8(row[0]))
    h = store.callee_h1(addr)
    if h is not None:
        out.add(h)
    p = store.program_v1(addr)
    if p is not None:
        out.add(p)
    return out


def term_values(store, token: str) -> set[int] | None:
    """A triple query token → the u64 terms it matches (None = any: `*`, `_`, `?`).
    A bound name or an H2 address (64 hex, `#` + 64 hex, or a unique prefix of ≥ 8 hex)
    matches its `identities`, and a name also its dictionary term name_hash(name);
    `#x:` + 16 hex and decimals are raw u64; any other word is name_hash(word).
    Malformed `#x:` / decimals: UsageError."""
    if token in ("*", "_", "?"):
        return None
    ref = token[1:] if token.startswith("#") and not token.startswith("#x:") else token
    addr = None
    if store.resolve_name(token) is not None:
        addr = store.resolve_name(token)
    elif len(ref) >= 8 and all(c in "0123456789abcdefABCDEF" for c in ref) and (
            len(ref) == 64 or not ref.isdigit()):
        try:
            addr = store.resolve_ref(ref)
        except UsageError:
            addr = None
    out: set[int] = set()
    if addr is not None:
        out |= identities(store, addr)
        if store.resolve_name(token) is not None:
            out.add(name_hash(token))
        return out
    try:
        return {parse_term(token)}
    except ValueError as e:
        raise UsageError(str(e)) from e


class TermNamer:
    """u64 term → {"term", "address", "name", "string", "display"} with caches (one query)."""

    def __init__(self, store):
        self.store = store
        self._cache: dict[int, dict] = {}

    def __call__(self, v: int) -> dict:
        got = self._cache.get(v)
        if got is None:
            got = self._cache[v] = describe_term(self.store, v)
        return got


def describe_term(store, v: int) -> dict:
    """What the u64 term `v` is: the stored address it identifies (through the v1 index:
    node H1, member alias, program entry hash), that address's current name, the string it
    is the name_hash of. `display` is the name, else `#` + address, else the string, else
    `#x:` + 16 hex."""
    addr = store._v1_lookup(v) if v else None
    name = None
    if addr is not None:
        now = names_of(store, addr)["current"]
        name = now[0] if now else None
    string = store.resolve_string(v)
    display = name or (f"#{addr.hex()}" if addr is not None else None) or \
        (string if string and string.split() == [string] else None) or f"#x:{v:016x}"
    return {"term": f"#x:{v:016x}", "address": None if addr is None else addr.hex(), "name": name,
            "string": string, "display": display}


def query_triples(store, s=None, p: int | None = None, o=None, live: bool = False) -> list[dict]:
    """Triples matching S P O, where S and O are query tokens (see `term_values`), sets of
    u64 or None (any). Historical (all) or, with `live`, snapshot triples only. → one dict per
    distinct triple: subject_hash, predicate_id, object_hash (u64, as formats.md §4) plus
    `subject` / `object` (`describe_term`) and `predicate`."""
    ss = term_values(store, s) if isinstance(s, str) else s
    os_ = term_values(store, o) if isinstance(o, str) else o
    find = store.find_live_triples if live else store.find_triples
    found: dict[TripleRecord, None] = {}
    for a in (None,) if ss is None else sorted(ss):
        for b in (None,) if os_ is None else sorted(os_):
            for t in find(a, p, b):
                found.setdefault(t, None)
    namer = TermNamer(store)
    return [{**t.to_dict(), "predicate": PREDICATE_NAMES.get(t.predicate, str(t.predicate)),
             "subject": namer(t.subject), "object": namer(t.object)} for t in sorted(found)]


def _resolve(store, ref) -> bytes:
    if isinstance(ref, (bytes, bytearray)) and len(ref) == 32:
        return bytes(ref)
    if isinstance(ref, str) and ref.startswith("#") and not ref.startswith("#x:"):
        ref = ref[1:]
    return store.resolve_ref(ref)


def _one_per_address(described) -> list:
    """Described terms sorted by display, one per stored address (a program's terms — its
    v1 program hash and its root's — name the same code); terms without an address stay."""
    seen, out = set(), []
    for d in sorted(described, key=lambda d: (d["display"], d["term"])):
        key = d.get("address") or d["term"]
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def callers(store, ref) -> dict:
    """Who calls `ref` (a name, H2 hex / prefix, `#x:` v1 hash, or a 32-byte address):
    {"target": {address, names}, "callers": [describe_term of each caller, sorted by display]}.
    Unknown ref: UsageError."""
    addr = _resolve(store, ref)
    subjects = {t.subject for i in identities(store, addr) for t in store.find_triples(None, CALLS, i)}
    namer = TermNamer(store)
    return {"target": {"address": addr.hex(), **names_of(store, addr)},
            "callers": _one_per_address(namer(s) for s in subjects)}


def dependencies(store, ref) -> dict:
    """What `ref` calls (CALLS objects of its identities):
    {"target": {address, names}, "dependencies": [describe_term …]}. Unknown ref: UsageError."""
    addr = _resolve(store, ref)
    objects = {t.object for i in identities(store, addr) for t in store.find_triples(i, CALLS, None)}
    namer = TermNamer(store)
    return {"target": {"address": addr.hex(), **names_of(store, addr)},
            "dependencies": _one_per_address(namer(x) for x in objects)}


__all__ = [
    "PROGRAM_SNAPSHOT_PREFIX", "program_snapshot_path", "program_snapshot_key", "record_program_triples",
    "signature_json", "parse_signature", "put_function_meta", "function_meta", "list_names",
    "search_names", "suggest_names", "name_history", "bindings_by_commit", "bind_names", "names_of",
    "identities", "term_values", "TermNamer", "describe_term", "query_triples", "callers", "dependencies",
]
