"""Triples (formats.md §4): records, text form, validation, extraction, derived triples."""

import pytest
from hypothesis import given, strategies as st

from nda.core import ir
from nda.core.errors import DecodeError, ParseError
from nda.core.hashing import alias_of, h1
from nda.core.ir import name_hash
from nda.core.link import MemoryResolver, link_module
from nda.syntax.sexpr import parse_sexpr
from nda.syntax.triples import (
    CALLS, DEFINES, IMPORTS, TripleRecord, decode_record, decode_records, derived_triples,
    encode_record, format_triples_text, node_triples, parse_triples_text, validate_triples,
)

u64 = st.integers(0, (1 << 64) - 1)
u16 = st.integers(0, 0xFFFF)


def test_record_layout_is_the_v1_triple_payload():
    rec = encode_record((1, 2, 0x0102030405060708))
    assert len(rec) == 18
    assert rec == bytes.fromhex("0100000000000000" "0200" "0807060504030201")
    assert decode_record(rec) == TripleRecord(1, 2, 0x0102030405060708)


@given(u64, u16, u64)
def test_record_roundtrip(s, p, o):
    assert decode_record(encode_record((s, p, o))) == (s, p, o)
    assert decode_records(encode_record((s, p, o)) * 3) == [(s, p, o)] * 3


def test_record_errors():
    with pytest.raises(DecodeError, match="unexpected end"):
        decode_record(b"\x00" * 17)
    with pytest.raises(DecodeError, match="multiple of 18"):
        decode_records(b"\x00" * 19)
    with pytest.raises(ValueError):
        encode_record((1, 70000, 2))


def test_text_form_terms_and_predicates():
    text = """// comment
    user:alice DEFINES #x:00000000000000ff

    42 calls user:bob
    #x:ffffffffffffffff 7 18446744073709551615
    a imports b
    """
    recs, names = parse_triples_text(text)
    assert recs == [
        (name_hash("user:alice"), DEFINES, 0xFF),
        (42, CALLS, name_hash("user:bob")),
        ((1 << 64) - 1, 7, (1 << 64) - 1),
        (name_hash("a"), IMPORTS, name_hash("b")),
    ]
    assert names == {name_hash("user:alice"): "user:alice", name_hash("user:bob"): "user:bob",
                     name_hash("a"): "a", name_hash("b"): "b"}


@pytest.mark.parametrize("line, msg", [
    ("a OWNS b", "line 2: unknown predicate 'OWNS'"),
    ("a 65536 b", "line 2: unknown predicate '65536'"),
    ("a -1 b", "line 2: unknown predicate '-1'"),
    ("#x:12 1 b", "line 2: bad term '#x:12'"),
    ("a 1 18446744073709551616", "line 2: bad term '18446744073709551616'"),
    ("a 1", "line 2: expected 'subject predicate object', got 2 terms"),
    ("a 1 b c", "line 2: expected 'subject predicate object', got 4 terms"),
])
def test_text_form_errors_have_line_numbers(line, msg):
    with pytest.raises(ParseError) as e:
        parse_triples_text("x 1 y\n" + line + "\n")
    assert e.value.message.startswith(msg)
    assert e.value.span.line == 2


@given(st.lists(st.tuples(u64, u16, u64), max_size=20))
def test_text_form_roundtrip(triples):
    text = format_triples_text(triples, {name_hash("alice"): "alice"})
    back, _ = parse_triples_text(text)
    assert back == [tuple(t) for t in triples]


def test_validation_messages_in_the_original_order():
    issues = validate_triples([(0, 1, 5), (3, 1, 0), (4, 2, 4), (0, 1, 5), (1, 2, 3)])
    assert issues == [
        "triple[0]: subject_hash is zero (null reference)",
        "triple[1]: object_hash is zero (null reference)",
        "triple[2]: subject and object have same hash (self-reference)",
        "triple[3]: subject_hash is zero (null reference)",
        "triple[3] is a duplicate",
    ]
    assert validate_triples([(1, 2, 3), (1, 2, 4)]) == []


def test_validation_agrees_with_the_gate():
    from nda.analysis.gate import validate_triples as gate_validate

    batch = [(0, 0, 0), (1, 1, 1), (2, 3, 4), (2, 3, 4)]
    assert validate_triples(batch) == gate_validate(batch)


def test_node_triples_walks_every_child_field_including_noop_children():
    node = parse_sexpr("""(scope (triple 1 2 3)
        (alloc (scope (triple 4 5 6)))
        (gpu_dispatch 9 (triple 7 8 9) (triple 1 2 3))
        (if (int 1) (then (triple 10 1 11)) (else (spawn 3))))""").sequence[0]
    assert node_triples(node) == [(1, 2, 3), (4, 5, 6), (7, 8, 9), (10, 1, 11)]


def test_derived_defines_and_calls():
    m = parse_sexpr("""(module
        (def leaf (scope (int 1)))
        (def even (scope (call @odd) (call @leaf)))
        (def odd (scope (call @even)))
        (def main (scope (call @even) (call @leaf) (call #x:0000000000000077))))""").module
    linked = link_module(m)
    mem = MemoryResolver()
    mem.add_linked(linked)

    def def_v1(d):
        return alias_of(d.address) if d.group else h1(d.node, None, mem.callee_h1)

    trips, names = derived_triples(linked, None, (), mem.callee_h1, def_v1)
    v = {d.name: def_v1(d) for d in linked.defs}
    assert set(trips) == {
        (name_hash("leaf"), DEFINES, v["leaf"]), (name_hash("even"), DEFINES, v["even"]),
        (name_hash("odd"), DEFINES, v["odd"]), (name_hash("main"), DEFINES, v["main"]),
        (v["even"], CALLS, v["odd"]), (v["even"], CALLS, v["leaf"]), (v["odd"], CALLS, v["even"]),
        (v["main"], CALLS, v["even"]), (v["main"], CALLS, v["leaf"]), (v["main"], CALLS, 0x77),
    }
    assert names[name_hash("even")] == "even"
    assert validate_triples(trips) == []


def test_derived_program_calls_skip_self_reference():
    seq = (ir.Call(ir.Legacy64(5)), ir.Call(ir.Legacy64(9)), ir.Call(ir.Legacy64(5)))
    trips, _ = derived_triples(None, 5, seq)
    assert trips == [(5, CALLS, 9)]
