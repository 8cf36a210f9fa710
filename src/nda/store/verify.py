"""Store integrity: recompute every hash and cross-check every table (runtime.md §8 `verify()`).

In: an open `SiteMap`. Out: `verify_store(store)` → the list of problems found (empty = healthy).
"""

from __future__ import annotations

import sqlite3

from nda.core.binary_v2 import decode_node
from nda.core.errors import NdaError
from nda.core.hashing import Hasher, alias_of, h1, kv_token_hash, name_hash, program_entry_hash
from nda.core.ir import Call, GroupRef, Hash32, Scope, walk
from nda.core.link import build_group
from nda.store.records import (
    DECODE_DEPTH, commit_id_of, e_group, e_kv, e_meta, e_name, e_node, e_prog, e_snap, e_str,
    e_triple, from_be8, kv_record_problem, state_root_of,
)
from nda.store.codebase import PROGRAM_SNAPSHOT_PREFIX, parse_signature, program_snapshot_key
from nda.syntax.text.lower import is_prologue_pair
from nda.syntax.triples import TripleRecord, node_triples

_SHOWN = 16  # hex digits of a hash in messages


def _hx(b: bytes) -> str:
    return b.hex()[:_SHOWN]

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

    metas = c.execute("SELECT hash, name, signature FROM fn_meta").fetchall()
    _check_codebase(c, metas, decoded, info, {r for r, _ in progs}, add)

    # state entries and the root log
    want = {e_node(a) for a in info}
    want.update(e_meta(h, n, sig) for h, n, sig in metas)
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


def _check_codebase(c, metas, decoded, info, programs, add) -> None:
    """Function metadata matches the stored function (its parameter prologue), every
    name_commits row names a binding and a commit, every per-program snapshot a program."""
    for h, name, sig in metas:
        if h not in info:
            add(f"metadata '{name}': function {_hx(h)} is not stored")
            continue
        try:
            params = parse_signature(sig)["params"]
        except NdaError as e:
            add(f"metadata '{name}' of {_hx(h)}: {e.message}")
            continue
        node = decoded.get(h)
        if params is None or node is None:
            continue
        ch = node.children if type(node) is Scope else ()
        lets = [ch[i].name for i in range(0, len(ch) - 1, 2) if is_prologue_pair(ch[i], ch[i + 1])][:len(params)]
        want = [name_hash(p[0]) for p in reversed(params)]
        if lets != want:
            add(f"metadata '{name}' of {_hx(h)}: parameters {[p[0] for p in params]} do not match "
                "the function's parameter prologue")
    last = c.execute("SELECT coalesce(max(seq), 0) FROM roots").fetchone()[0]
    bound = set(c.execute("SELECT name, seq FROM names").fetchall())
    for name, seq, root_seq in c.execute("SELECT name, seq, root_seq FROM name_commits"):
        if (name, seq) not in bound:
            add(f"name log: binding {name!r} #{seq} is not in names")
        if not 1 <= root_seq <= last:
            add(f"name log: binding {name!r} #{seq} refers to commit {root_seq}, not in the root log")
    for key, path in c.execute("SELECT key, path FROM snapshots WHERE path LIKE ?",
                               (PROGRAM_SNAPSHOT_PREFIX + "%",)):
        hexroot = path[len(PROGRAM_SNAPSHOT_PREFIX):]
        try:
            root = bytes.fromhex(hexroot)
        except ValueError:
            root = b""
        if len(root) != 32 or root not in programs:
            add(f"snapshot {path}: not a stored program")
        elif program_snapshot_key(root) != key:
            add(f"snapshot {path}: key {key.hex()} is not its program key")


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


