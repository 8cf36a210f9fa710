"""Binary v2 and v1: layouts, exact error texts, round trips, strictness, fuzzing."""

from __future__ import annotations

import random
import struct
import time

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from nda.core import ir
from nda.syntax.binary_v1 import TAGS, decode_v1, decode_v1_prefix, encode_v1, v1_roundtrips, validate_v1
from nda.core.binary_v2 import (
    EncodeError, decode_container, decode_node, decode_node_prefix, encode_container,
    encode_module, encode_node, encode_program, encode_shallow,
)
from nda.core.errors import DECODE_ERROR, DecodeError
from nda.core.link import decode_file
from nda.core.hashing import call_target_h1, h2
from nda.core.ir import (
    Add, Alloc, Atomic, AtomicOp, Bitwise, BitwiseOp, Break, Call, Cast, CmpOp, Compare, Def,
    Dot, Float, Free, Gemv, GpuDispatch, GroupRef, Hash32, If, Int, Legacy64, Let, Load, Loop,
    Math, MathFunc, MathFuncKind, MathOp, Matrix, Module, NamedRef, Norm, Peek, Poke, Print,
    RegInt, Return, Scope, Spawn, Store, Syscall, Triple, TypeKind, VecOp, VecOpKind, While,
    name_hash,
)
from nda.core.link import link_module, rewrite_calls
from strategies import deep_chain, nodes, programs

X = name_hash("x")
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def one_of_each() -> list[ir.Node]:
    i1, i2 = Int(1), Int(2)
    return [
        Scope((i1, i2)), Matrix(2, 9, -3, b"\x01\x02\x03\x04", b"\x05\x06\x07\x08"),
        Norm(9, b"\x01\x02", b"\x03\x04"), Call(Hash32(bytes(range(32)))), Call(Legacy64(7)),
        Call(GroupRef(1)), Int(-5), Loop(3, (Break(),)), While(i1, (i2,)), If(i1, (i2,), None),
        If(i1, (), (i2,)), Compare(CmpOp.Ge, i1, i2), Let(X, i1), Load(X), Store(X, i2),
        Add(i1, i2), VecOp(VecOpKind.Abs, i1), Print(i1), Return(i2), Break(),
        Bitwise(BitwiseOp.Not, i1), Bitwise(BitwiseOp.Shl, i1, i2), Float.of(-0.0),
        Math(MathOp.Div, i1, i2), MathFunc(MathFuncKind.Exp, i1), Peek(i1), Poke(i1, i2),
        Gemv(i1, i2), Dot(i1, i2), Syscall(1, (i1,)), Spawn(2**64 - 1),
        Atomic(AtomicOp.Cas, i1, i2), Alloc(i1), Free(i2), RegInt(4, 5),
        Cast(TypeKind.Float, TypeKind.Vector, i1), GpuDispatch(9, (i1, i2)), Triple(1, 2, 3),
    ]


def test_one_of_each_covers_all_kinds():
    assert {type(n) for n in one_of_each()} == set(ir.NODE_CLASSES)


# ------------------------------------------------------------------ v2 layout


def test_v2_spec_examples():
    assert encode_program([Int(42)]).hex() == "4e444132020101000000052a000000"
    assert encode_node(Let(X, Int(5))).hex() == "0d2d711642b726b0440505000000"
    assert decode_file(bytes.fromhex("4e444132020101000000052a000000")) == [Int(42)]


def test_v2_layouts_by_hand():
    i1 = encode_node(Int(1))
    assert i1 == b"\x05\x01\x00\x00\x00"
    assert encode_node(Scope((Int(1),))) == b"\x00\x01\x00\x00\x00" + i1
    assert encode_node(If(Int(1), (), None)) == b"\x0b" + i1 + b"\x00\x00\x00\x00\x00"
    assert encode_node(If(Int(1), (), ())) == b"\x0b" + i1 + b"\x00\x00\x00\x00\x01\x00\x00\x00\x00"
    assert encode_node(Bitwise(BitwiseOp.Not, Int(1))) == b"\x15\x03" + i1 + b"\x00"
    assert encode_node(Matrix(1, 9, -1, b"\xaa\x01", b"\x55\x02")) == b"\x02\x01\x00\x09\x00\xff\xaa\x01\x55\x02"
    assert encode_node(Call(GroupRef(5))) == b"\x04\x02\x05\x00\x00\x00"
    assert encode_node(Float(0x7FC00001)) == b"\x16\x01\x00\xc0\x7f"
    assert encode_node(Triple(1, 2, 3)) == b"\x25" + struct.pack("<QHQ", 1, 2, 3)
    assert encode_node(Break()) == b"\x14"


def test_v2_all_kinds_round_trip_and_shallow_matches_h2():
    for n in one_of_each():
        b = encode_node(n)
        assert decode_node(b) == n
        assert b[0] == int(n.OPCODE)
        assert len(encode_shallow(n, h2)) >= 1


def test_encode_rejects_invalid_nodes():
    bad = [Matrix(1, 9, 0, b"\x00", b"\x00\x00"), Norm(8, b"", b""), Int(2**31), Load(-1),
           Compare(6, Int(1), Int(1)), Call(NamedRef("f")), Call("nope"), Scope((1,)),
           Triple(1, 70000, 2), Float(2**32), Add(Int(1), None)]
    for n in bad:
        with pytest.raises(EncodeError):
            encode_node(n)


@FAST
@given(nodes(max_depth=5, group_refs=True))
def test_v2_round_trip(node):
    b = encode_node(node)
    assert decode_node(b) == node
    assert encode_node(decode_node(b)) == b
    assert decode_container(encode_container(0, node)) == node


@FAST
@given(programs(max_len=4, max_depth=3))
def test_v2_program_container_round_trip(seq):
    assert decode_file(encode_program(seq)) == list(seq)


@FAST
@given(nodes(max_depth=4), nodes(max_depth=4))
def test_v2_byte_equality_iff_node_equality(a, b):
    assert (encode_node(a) == encode_node(b)) == (a == b)
    assert (h2(a) == h2(b)) == (a == b)


def test_v2_module_container_round_trip():
    n = ir.name_hash("n")
    body = lambda other, base: Scope((Let(n, Scope()), If(Scope(), (), None), If(
        Compare(CmpOp.Eq, Load(n), Int(0)), (Return(Int(base)),),
        (Return(Scope((Add(Load(n), Int(-1)), Call(NamedRef(other))))),))))
    mod = Module((Def("leaf", Scope((Int(1),))), Def("is_even", body("is_odd", 1)),
                  Def("is_odd", body("is_even", 0)),
                  Def("main", Scope((Int(7), Call(NamedRef("is_even")), Call(NamedRef("leaf")))))))
    lm = link_module(mod)
    data = encode_module(lm)
    assert data[:6] == b"NDA2\x02\x02"
    assert struct.unpack_from("<I", data, 6)[0] == 3  # leaf, {is_even, is_odd}, main
    back = decode_file(data)
    assert back == lm
    assert back.main_sequence() == lm.main_sequence()


# ------------------------------------------------------------------ v2 errors


@pytest.mark.parametrize("data,message,offset", [
    (b"", "v2: unexpected end of data at offset 0", 0),
    (b"\x05\x01\x00", "v2: unexpected end of data at offset 1", 1),
    (b"\x01", "v2: opcode 1 is a stream token, not a node", 0),
    (b"\x06", "v2: opcode 6 is a stream token, not a node", 0),
    (b"\x07", "v2: opcode 7 is a stream token, not a node", 0),
    (b"\x08", "v2: opcode 8 is a stream token, not a node", 0),
    (b"\x26", "v2: unknown opcode 38", 0),
    (b"\xff", "v2: unknown opcode 255", 0),
    (b"\x0c\x06\x14\x14", "v2: invalid op 6 at offset 1", 1),
    (b"\x11\x04\x14", "v2: invalid op 4 at offset 1", 1),
    (b"\x18\x04\x14", "v2: invalid func 4 at offset 1", 1),
    (b"\x1f\x02\x14\x14", "v2: invalid op 2 at offset 1", 1),
    (b"\x23\x00\x03\x14", "v2: invalid to_type 3 at offset 2", 2),
    (b"\x15\x00\x14\x02", "v2: invalid rhs flag 2 at offset 3", 3),
    (b"\x0b\x14\x00\x00\x00\x00\x05", "v2: invalid else_body flag 5 at offset 6", 6),
    (b"\x04\x03", "v2: invalid call target form 3", 1),
    (b"\x04\x00" + b"\x00" * 31, "v2: unexpected end of data at offset 2", 2),
    (b"\x14\x14", "v2: trailing bytes at offset 1", 1),
    (b"\x00\xff\xff\xff\xff\x14", "v2: unexpected end of data at offset 1", 1),
    (b"\x02\xff\xff\xff\xff\x00", "v2: unexpected end of data at offset 6", 6),
])
def test_v2_error_messages(data, message, offset):
    with pytest.raises(DecodeError) as e:
        decode_node(data)
    assert e.value.message == message and e.value.offset == offset and e.value.code == DECODE_ERROR


def test_v2_nesting_limit():
    ok = encode_node(deep_chain(256))
    assert decode_node(ok) == deep_chain(256)
    with pytest.raises(DecodeError) as e:
        decode_node(encode_node(deep_chain(257)))
    assert e.value.message == "node nesting exceeds 256"
    with pytest.raises(DecodeError) as e:
        decode_node(encode_node(deep_chain(11)), max_depth=10)
    assert e.value.message == "node nesting exceeds 10"
    big = encode_node(deep_chain(50000))  # iterative both ways
    assert encode_node(decode_node(big, max_depth=50000)) == big


def test_v2_container_errors():
    cases = [
        (b"NDA1\x02\x00\x14", "v2: invalid magic 4e444131 at offset 0"),
        (b"NDA2\x03\x00\x14", "v2: invalid version 3 at offset 4"),
        (b"NDA2\x02\x03\x14", "v2: invalid kind 3 at offset 5"),
        (b"NDA2\x02\x00\x14\x14", "v2: trailing bytes at offset 7"),
        (b"NDA2\x02\x01\x05\x00\x00\x00\x14", "v2: unexpected end of data at offset 6"),
        (b"NDA2\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00", "v2: invalid group size 0 at offset 10"),
        (b"NDA2\x02\x02\xff\xff\xff\x00", "v2: unexpected end of data at offset 6"),
        (b"NDA2\x02\x02\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\xff\x14", "v2: invalid name at offset 16"),
        (b"NDA2\x02\x02\x02\x00\x00\x00" + (b"\x01\x00\x00\x00\x01\x00f\x14") * 2,
         "v2: duplicate name 'f' at offset 24"),
        (b"ND", "v2: unexpected end of data at offset 0"),
    ]
    for data, msg in cases:
        with pytest.raises(DecodeError) as e:
            decode_container(data)
        assert e.value.message == msg


def test_decode_prefix():
    data = encode_node(Int(3)) + encode_node(Break())
    n, end = decode_node_prefix(data)
    assert n == Int(3) and end == 5
    assert decode_node_prefix(data, 5) == (Break(), 6)


# ------------------------------------------------------------------ v1


def test_v1_layouts_by_hand():
    assert encode_v1(Int(42)) == b"I" + struct.pack("<i", 42)
    assert encode_v1(Call(Legacy64(5))) == b"C" + struct.pack("<Q", 5)
    assert encode_v1(If(Int(1), (), None)) == b"IFI\x01\x00\x00\x00\x00\x00\x00\x00\x00"
    assert encode_v1(Bitwise(BitwiseOp.And, Int(1), Int(2))) == b"BW\x00I\x01\x00\x00\x00\x01I\x02\x00\x00\x00"
    assert encode_v1(Loop(2, (Break(),))) == b"LP\x02\x00\x00\x00\x01\x00\x00\x00BK"
    assert encode_v1(Triple(1, 2, 3)) == b"T" + struct.pack("<QHQ", 1, 2, 3)
    assert encode_v1(Compare(CmpOp.Lt, Break(), Break())) == b"CMP\x02BKBK"
    for n in one_of_each():
        assert encode_v1(n, lambda d: 77, [10, 11]).startswith(TAGS[type(n).__name__])


def test_v1_targets():
    d = bytes(32)
    assert encode_v1(Call(Hash32(d)), lambda dg: 0x1234) == b"C" + struct.pack("<Q", 0x1234)
    assert encode_v1(Call(GroupRef(1)), aliases=[1, 0xABCD]) == b"C" + struct.pack("<Q", 0xABCD)
    from nda.core.hashing import HashTargetError
    with pytest.raises(HashTargetError):
        encode_v1(Call(Hash32(d)))


def test_v1_round_trips_all_unambiguous_kinds():
    for n in one_of_each():
        ok = v1_roundtrips(n, lambda d: 0x1111, [0x2222, 0x3333])
        assert ok == (type(n) not in (Math, MathFunc, Syscall, Spawn)), n


@pytest.mark.parametrize("node,message", [
    (Call(Legacy64(0x4D)), "Invalid Compare tag"),          # C M … : a Compare attempt
    (Call(Legacy64(0x0102030405060753)), "Invalid from_type"),  # C S … : a Cast attempt
    (Int(0x46), "Unknown tag 0"),                            # I F … : an If whose cond is 00
    (Scope(tuple(Break() for _ in range(84))), "Unknown tag 75"),  # S T … : a Store
    (Syscall(0x0102, (Int(5),)), "Unknown tag 0"),           # S C… : a Scope with count 0x00010243
    (Spawn(0x42), "Unknown tag 0"),                          # S W… : a Scope with count 0x4257
    (Math(MathOp.Add, Int(1), Int(2)), "Truncated Matrix bitmaps"),  # M H … : a Matrix
    (MathFunc(MathFuncKind.Sin, Int(1)), "Truncated Matrix bitmaps"),
])
def test_v1_known_ambiguities(node, message):
    assert not v1_roundtrips(node)
    with pytest.raises(DecodeError) as e:
        decode_v1(encode_v1(node))
    assert e.value.message == message


def test_v1_scope_of_84_reads_as_store():
    node = Scope((Int(5),) + tuple(Break() for _ in range(83)))
    back = decode_v1(encode_v1(node))
    assert back == Store(int.from_bytes(b"\x00\x00\x00I\x05\x00\x00\x00", "little"), Break())
    assert not v1_roundtrips(node) and not validate_v1(encode_v1(node))


def test_v1_call_low_byte_S_becomes_cast():
    # 'C' 'S' from=0x07? must be <=2: choose target bytes 53 00 01 + Int
    target = int.from_bytes(b"\x53\x00\x01I\x05\x00\x00\x00", "little")
    back = decode_v1(encode_v1(Call(Legacy64(target))))
    assert back == Cast(TypeKind.Int, TypeKind.Float, Int(5))


def test_v1_if_else_marker_peek():
    base = b"IFBK\x00\x00\x00\x00"
    assert decode_v1(base) == If(Break(), (), None)  # nothing left: no else
    assert decode_v1(base + b"\x00") == If(Break(), (), None)
    assert decode_v1(base + b"\x01\x01\x00\x00\x00BK") == If(Break(), (), (Break(),))
    n, end = decode_v1_prefix(base + b"\x07")
    assert n == If(Break(), (), None) and end == len(base)  # byte left in place
    assert not validate_v1(base + b"\x07") and validate_v1(base + b"\x00")
    # bitwise: any flag other than 01 means no rhs, and it is consumed
    assert decode_v1(b"BW\x03BK\x09") == Bitwise(BitwiseOp.Not, Break())
    assert validate_v1(b"BW\x03BK\x09")


@pytest.mark.parametrize("data,message", [
    (b"", "EOF"), (b"Q", "Unknown tag 81"), (b"\x00", "Unknown tag 0"),
    (b"M\x01\x00", "Truncated Matrix"), (b"M\x01\x00\x08\x00\x00\xaa", "Truncated Matrix bitmaps"),
    (b"N\x01", "Truncated Norm"), (b"N\x09\x00\x00\x00\x00", "Truncated Norm bitmaps"),
    (b"CM", "Invalid Compare tag"), (b"CMQ", "Invalid Compare tag"), (b"CMP\x06", "Invalid CmpOp"),
    (b"CS\x00", "Truncated Cast types"), (b"CS\x03\x00", "Invalid from_type"),
    (b"CS\x00\x03", "Invalid to_type"), (b"C\x00\x00", "Truncated Call"),
    (b"IFBK\x01\x00", "Truncated If then len"), (b"IFBK\x00\x00\x00\x00\x01\x01", "Truncated If else len"),
    (b"I\x00\x00", "Truncated Int"), (b"ST\x00", "Truncated Store name_hash"),
    (b"S\x01\x00", "Truncated Scope"), (b"LP\x00\x00\x00\x00\x00", "Truncated Loop count/len"),
    (b"LT\x00", "Truncated Let name_hash"), (b"LD\x00", "Truncated Load name_hash"),
    (b"LQ", "Unknown subtag L81"), (b"WQ", "Invalid While tag"), (b"W", "Invalid While tag"),
    (b"WHBK\x00", "Truncated While body len"), (b"BW", "Truncated Bitwise op"),
    (b"BW\x06", "Invalid BitwiseOp"), (b"BW\x00BK", "Truncated Bitwise has_rhs"),
    (b"BX", "Unknown subtag B88"), (b"FL\x00", "Truncated Float"), (b"FX", "Unknown subtag F88"),
    (b"GD\x00", "Truncated GpuDispatch"), (b"GX", "Unknown subtag G88"), (b"DX", "Invalid Dot tag"),
    (b"VX", "Invalid VecOp tag"), (b"VO", "Truncated VecOp op"), (b"VO\x04", "Invalid VecOpKind"),
    (b"AT", "Truncated Atomic op"), (b"AT\x02", "Invalid AtomicOp"), (b"AX", "Unknown subtag A88"),
    (b"PX", "Unknown subtag P88"), (b"RI\x00", "Truncated RegInt"), (b"RX", "Unknown subtag R88"),
    (b"T\x00", "Truncated Triple"), (b"L", "Truncated L tag"), (b"B", "Truncated B tag"),
    (b"F", "Truncated F tag"), (b"G", "Truncated G tag"), (b"A", "Truncated A tag"),
    (b"P", "Truncated P tag"), (b"R", "Truncated R tag"), (b"AD", "EOF"), (b"ADBK", "EOF"),
    (b"S\xff\xff\xff\xffBKBK", "EOF"),
])
def test_v1_error_messages(data, message):
    with pytest.raises(DecodeError) as e:
        decode_v1(data)
    assert e.value.message == message and e.value.code == DECODE_ERROR
    assert not validate_v1(data)


def test_v1_nesting_and_strict():
    assert decode_v1(encode_v1(deep_chain(256))) == deep_chain(256)
    with pytest.raises(DecodeError) as e:
        decode_v1(encode_v1(deep_chain(257)))
    assert e.value.message == "node nesting exceeds 256"
    assert decode_v1(b"BKBK") == Break()
    with pytest.raises(DecodeError) as e:
        decode_v1(b"BKBK", strict=True)
    assert e.value.message == "v1: trailing bytes at offset 2"
    assert not validate_v1(b"BKBK") and validate_v1(b"BK")


V1_SAFE = nodes(max_depth=4, exclude=("Math", "MathFunc", "Syscall", "Spawn"), hash32=False)


def _has_trigger(node) -> bool:
    for n in ir.walk(node):
        if type(n) is Int and n.value & 0xFF == 0x46:
            return True
        if type(n) is Call and n.target.value & 0xFF in (0x4D, 0x53):
            return True
    return False


@FAST
@given(V1_SAFE)
def test_v1_round_trip_unambiguous_nodes(node):
    assume(not _has_trigger(node))
    assert v1_roundtrips(node)
    data = encode_v1(node)
    assert decode_v1(data, strict=True) == node and validate_v1(data)


@FAST
@given(nodes(max_depth=4, group_refs=True))
def test_v1_round_trip_filtered(node):
    t = lambda d: int.from_bytes(d[:8], "little")
    aliases = [0x1000 + i for i in range(4)]
    assume(not any(type(n) is Call and type(n.target) is GroupRef and n.target.index >= 4 for n in ir.walk(node)))
    ok = v1_roundtrips(node, t, aliases)
    data = encode_v1(node, t, aliases)
    if ok:
        back = decode_v1(data, strict=True)
        assert encode_v1(back) == data
    else:
        try:
            back, end = decode_v1_prefix(data)
        except DecodeError:
            return
        expected = rewrite_calls(node, lambda tg: Legacy64(call_target_h1(tg, aliases, t)))
        assert end != len(data) or encode_node(back) != encode_node(expected)


# ------------------------------------------------------------------ fuzz (only DecodeError, bounded)


def _only_decode_errors(fn, data):
    try:
        fn(data)
    except DecodeError:
        pass


class _AnyAliases:
    """aliases[i] = i + 1 for every u32 index (so any GroupRef can be written to v1)."""

    def __len__(self):
        return 2**32

    def __getitem__(self, i):
        return i + 1


ANY_ALIASES = _AnyAliases()
DECODERS = [decode_node, decode_container, decode_v1, validate_v1]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data):
    for fn in DECODERS:
        _only_decode_errors(fn, data)
    try:
        n = decode_node(data)
    except DecodeError:
        return
    assert encode_node(n) == data  # exactly one encoding per node


@FAST
@given(nodes(max_depth=4, group_refs=True), st.data())
def test_fuzz_truncations_and_mutations(node, data):
    for enc, dec in ((encode_node(node), decode_node), (encode_v1(node, lambda d: 3, ANY_ALIASES), decode_v1),
                     (encode_container(0, node), decode_container)):
        cut = data.draw(st.integers(0, max(0, len(enc) - 1)))
        if dec is not decode_v1:
            with pytest.raises(DecodeError):
                dec(enc[:cut])
        else:
            _only_decode_errors(dec, enc[:cut])
        b = bytearray(enc)
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(b) - 1))
            b[i] = data.draw(st.integers(0, 255))
        _only_decode_errors(dec, bytes(b))
        if dec is decode_node:
            try:
                m = decode_node(bytes(b))
            except DecodeError:
                pass
            else:
                assert encode_node(m) == bytes(b)


def test_fuzz_huge_length_prefixes_are_fast():
    huge = [
        b"\x00\xff\xff\xff\xff" + b"\x14" * 1000,                       # Scope count 2^32-1
        b"\x09\x00\x00\x00\x00\xff\xff\xff\xff" + b"\x14" * 1000,       # Loop
        b"\x02\xff\xff\xff\xff\x00",                                    # Matrix 65535×65535
        b"\x03\xff\xff",                                                # Norm
        b"NDA2\x02\x01\xff\xff\xff\xff" + b"\x14" * 1000,
        b"NDA2\x02\x02\xff\xff\xff\xff" + b"\x01\x00\x00\x00" * 100,
    ]
    v1 = [b"S\xff\xff\xff\xff" + b"BK" * 5000, b"LP\x00\x00\x00\x00\xff\xff\xff\xff" + b"BK" * 5000,
          b"M\xff\xff\xff\xff\x00", b"GD" + b"\x00" * 8 + b"\xff\xff\xff\xff" + b"BK" * 5000]
    t = time.perf_counter()
    for d in huge:
        with pytest.raises(DecodeError):
            decode_container(d) if d.startswith(b"NDA2") else decode_node(d)
    for d in v1:
        with pytest.raises(DecodeError):
            decode_v1(d)
    assert time.perf_counter() - t < 30  # a hang guard, not a speed test (the machine may be loaded)


def test_fuzz_deep_nesting_never_recursion_error():
    for depth in (257, 1000, 100000):
        for data, dec in ((b"\x13" * depth + b"\x14", decode_node), (b"\x00\x01\x00\x00\x00" * depth, decode_node),
                          (b"RT" * depth + b"BK", decode_v1), (b"S\x01\x00\x00\x00" * depth, decode_v1),
                          (b"NDA2\x02\x00" + b"\x13" * depth + b"\x14", decode_container)):
            with pytest.raises(DecodeError) as e:
                dec(data)
            assert e.value.message == "node nesting exceeds 256"


def test_fuzz_seeded_campaign():
    rng = random.Random(1234)
    seeds = [encode_node(n) for n in one_of_each()]
    v1seeds = [encode_v1(n, lambda d: 9, [1, 2]) for n in one_of_each()]
    t = time.perf_counter()
    for i in range(3000):
        for pool, dec in ((seeds, decode_node), (v1seeds, decode_v1)):
            b = bytearray(rng.choice(pool))
            op = rng.randrange(4)
            if op == 0 and b:
                b[rng.randrange(len(b))] = rng.randrange(256)
            elif op == 1:
                b = b[: rng.randrange(len(b) + 1)]
            elif op == 2:
                b[rng.randrange(len(b) + 1):rng.randrange(len(b) + 1)] = rng.randbytes(rng.randrange(8))
            else:
                b = bytearray(rng.randbytes(rng.randrange(40)))
            _only_decode_errors(dec, bytes(b))
    assert time.perf_counter() - t < 30


def test_strategy_generates_every_kind_and_target_form():
    seen: set = set()

    @settings(max_examples=400, database=None, derandomize=True, deadline=None)
    @given(nodes(max_depth=3, group_refs=True))
    def collect(node):
        for m in ir.walk(node):
            seen.add(type(m))
            if type(m) is Call:
                seen.add(type(m.target))
        encode_node(node)  # well-formed

    collect()
    assert set(ir.NODE_CLASSES) | {Hash32, Legacy64, GroupRef} <= seen
