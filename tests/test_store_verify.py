"""SiteMap.verify(): every tampering is reported, a healthy store has no problems."""

import sqlite3
import uuid

import pytest

from nda.core import ir
from nda.core.link import link_module
from nda.syntax.sexpr import parse_sexpr
from nda.store.sitemap import SiteMap, be8

from test_store import SUM_MODULE, kv_rec


def build(path):
    s = SiteMap.open(str(path))
    linked = link_module(parse_sexpr(SUM_MODULE).module)
    s.put_module(linked)
    callee = s.put_program(parse_sexpr("(int 7) (triple 1 2 3)").sequence)
    caller = s.put_program((ir.Call(ir.Hash32(callee)),))
    s.bind_name("caller", caller)
    s.put_kv(1, 2, kv_rec())
    s.put_file_snapshot("x", [(4, 2, 5)])
    s.register_string("hello")
    assert s.verify() == []
    return s, callee, caller, linked


def raw(path):
    """A raw connection that may break every rule (no triggers, no foreign keys)."""
    c = sqlite3.connect(str(path), isolation_level=None)
    c.execute("PRAGMA foreign_keys=OFF")
    return c


def problems_after(tmp_path, sql, args=()):
    p = tmp_path / f"v{uuid.uuid4().hex}.db"
    s, callee, caller, linked = build(p)
    c = raw(p)
    if "roots" in sql:
        c.execute("DROP TRIGGER roots_no_update")
        c.execute("DROP TRIGGER roots_no_delete")
    c.execute(sql, args(callee, caller, linked) if callable(args) else args)
    c.close()
    out = s.verify()
    s.close()
    return out


def flip(b: bytes, i: int) -> bytes:
    return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1:]


@pytest.mark.parametrize("col", ["bytes", "hash", "v1_hash"])
def test_flipped_byte_in_a_node_row(tmp_path, col):
    p = tmp_path / "v.db"
    s, callee, *_ = build(p)
    c = raw(p)
    val = c.execute(f"SELECT {col} FROM nodes WHERE hash=?", (callee,)).fetchone()[0]
    for i in (0, len(val) // 2, len(val) - 1):
        c.execute(f"UPDATE nodes SET {col}=? WHERE hash=?", (flip(val, i), callee))
        probs = s.verify()
        assert probs, (col, i)
        c.execute(f"UPDATE nodes SET {col}=? WHERE {col}=?", (val, flip(val, i)))
        assert s.verify() == [], (col, i)
    c.close()
    s.close()


def test_flipped_byte_in_a_member_row(tmp_path):
    p = tmp_path / "v.db"
    s, _, _, linked = build(p)
    addr = linked.by_name("sum").address
    c = raw(p)
    data = c.execute("SELECT bytes FROM nodes WHERE hash=?", (addr,)).fetchone()[0]
    c.execute("UPDATE nodes SET bytes=? WHERE hash=?", (flip(data, len(data) - 2), addr))
    assert any("group" in x or "decode" in x for x in s.verify())
    c.execute("UPDATE nodes SET bytes=?, group_index=3 WHERE hash=?", (data, addr))
    assert any("indexes" in x for x in s.verify())
    s.close()


def test_flipped_byte_in_the_database_file(tmp_path):
    p = tmp_path / "v.db"
    s, callee, *_ = build(p)
    data = s._conn.execute("SELECT bytes FROM nodes WHERE hash=?", (callee,)).fetchone()[0]
    s.close()  # checkpoints the WAL into the main file
    blob = bytearray(p.read_bytes())
    i = blob.find(data)
    assert i > 0
    blob[i + len(data) - 3] ^= 0x40  # inside the Float/Int payload of the stored node
    p.write_bytes(bytes(blob))
    with SiteMap.open(str(p)) as s2:
        probs = s2.verify()
    assert any("H2 mismatch" in x or "decode" in x for x in probs), probs


def test_missing_program_root(tmp_path):
    out = problems_after(tmp_path, "DELETE FROM nodes WHERE hash=?", lambda a, b, m: (b,))
    assert any("root node is missing" in x for x in out)
    assert any("name 'caller'" in x for x in out)
    assert any("state entries" in x for x in out)


def test_missing_call_target(tmp_path):
    out = problems_after(tmp_path, "DELETE FROM nodes WHERE hash=?", lambda a, b, m: (a,))
    assert any("call target" in x and "not found" in x for x in out)
    assert any("root node is missing" in x for x in out)


def test_broken_root_chain(tmp_path):
    out = problems_after(tmp_path, "UPDATE roots SET message='rewritten history' WHERE seq=2")
    assert any("entry 2 commit_id does not recompute" in x for x in out)
    out = problems_after(tmp_path, "UPDATE roots SET parent=? WHERE seq=3", (b"\x00" * 32,))
    assert any("entry 3 parent does not link" in x for x in out)
    out = problems_after(tmp_path, "DELETE FROM roots WHERE seq=(SELECT max(seq) FROM roots)")
    assert any("current state_root" in x for x in out)


@pytest.mark.parametrize("sql, needle", [
    ("DELETE FROM state_entries WHERE digest=(SELECT min(digest) FROM state_entries)", "state entries"),
    ("DELETE FROM triples WHERE origin_kind='node'", "indexed triples"),
    ("UPDATE triples SET origin=x'0000000000000001' WHERE origin_kind='snapshot'", "snapshot"),
    ("UPDATE strings SET value='other' WHERE value='hello'", "name_hash"),
    ("UPDATE kv SET record=substr(record, 1, 10)", "kv"),
    ("UPDATE groups SET size=5", "size 5"),
    ("UPDATE programs SET v1_program_hash=x'0102030405060708'", "v1_program_hash"),
    ("UPDATE nodes SET opcode=9 WHERE group_hash IS NULL AND opcode=0", "opcode"),
    ("UPDATE meta SET value='7' WHERE key='schema_version'", "schema_version"),
    ("INSERT INTO names VALUES ('caller', 99, x'00', 0)", "name 'caller'"),
])
def test_tampering_is_reported(tmp_path, sql, needle):
    out = problems_after(tmp_path, sql)
    assert any(needle in x for x in out), out


def test_kv_key_not_matching_token(tmp_path):
    out = problems_after(tmp_path, "UPDATE kv SET key=?", (be8(1),))
    assert any("not the KV token hash" in x for x in out)
