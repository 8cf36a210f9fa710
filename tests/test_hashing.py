"""H2 / H1 / §3.4 hashes, recursive groups (link_module) and the in-memory call resolver."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings, strategies as st

from nda.core.binary_v2 import EncodeError, UnresolvedNameError, encode_node
from nda.core.errors import CALL_TARGET_NOT_FOUND, VALIDATION_ERROR, NdaError
from nda.core.hashing import (
    HashTargetError, Hasher, alias_of, file_sha, group_hash, h1, h2, index_root, kv_token_hash,
    member_address, program_entry_hash, program_hash, snapshot_hash, string_hash,
)
from nda.core.ir import (
    Add, Bitwise, BitwiseOp, Call, CmpOp, Compare, Def, Float, GroupRef, Hash32, If, Int,
    Legacy64, Let, Load, Matrix, Module, NamedRef, Norm, Return, Scope, name_hash,
)
from nda.core.link import (
    Callee, LinkError, MemoryResolver, build_group, link_module, rewrite_calls, tarjan_scc,
)


def sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def u64_of(b: bytes) -> int:
    return int.from_bytes(sha(b)[:8], "little")


def u64(v: int) -> bytes:
    return struct.pack("<Q", v)


X = name_hash("x")

# ------------------------------------------------------------------ spec vectors (formats.md §3)


def test_h1_vectors():
    assert X == 0x44B026B74216712D
    assert h1(Int(42)) == 0x44B9127A5E4E3045
    assert h1(Int(5)) == 0x732F6CF8FBE103DD
    assert h1(Let(X, Int(5))) == 0xFF2A8C6AAC7AED18
    assert h1(Scope((Int(42),))) == 0x791F76E28F1E2D59


def test_h2_vectors():
    assert encode_node(Let(X, Int(5))).hex() == "0d2d711642b726b0440505000000"
    assert h2(Int(42)).hex() == "505682dd0ac2ce48394aefd568d8c4415c01d49e44a6cc88b3fdffed8e1721b1"
    assert h2(Int(5)).hex() == "bf2877be225ca79f6c573afb64242a3621d8c29f565a37510fb13a460d02c5b5"
    assert h2(Let(X, Int(5))).hex() == "ac050615ddc25795a56ac673cb595fa25f5a9b3034fbe3ea01481d5f4f5ad5d8"
    assert h2(Scope((Int(42),))).hex() == "3d6671a856c5b8970992b528883ab9fbb7f9957fb0848af92c5b7d15e8c46d3c"
    assert program_hash([Int(42)]) == h2(Scope((Int(42),)))


def test_h2_is_merkle_over_child_digests():
    node = Add(Int(1), Let(X, Int(2)))
    expect = sha(b"\x02" + b"\x10" + h2(Int(1)) + h2(Let(X, Int(2))))
    assert h2(node) == expect
    # list: opcode, u32 count, digests; optlist flag
    iff = If(Int(1), (Int(2),), ())
    assert h2(iff) == sha(b"\x02\x0b" + h2(Int(1)) + struct.pack("<I", 1) + h2(Int(2)) + b"\x01" + struct.pack("<I", 0))
    assert h2(If(Int(1), (Int(2),), None)) != h2(iff)


def test_h2_call_targets_hashed_as_encoded():
    d = bytes(range(32))
    assert h2(Call(Hash32(d))) == sha(b"\x02\x04\x00" + d)
    assert h2(Call(Legacy64(7))) == sha(b"\x02\x04\x01" + u64(7))
    assert h2(Call(GroupRef(3))) == sha(b"\x02\x04\x02" + struct.pack("<I", 3))


def test_h2_shared_subtrees_and_deep_trees():
    leaf = Int(7)
    shared = Add(leaf, leaf)
    tree = Add(shared, shared)
    assert h2(tree) == h2(Add(Add(Int(7), Int(7)), Add(Int(7), Int(7))))
    deep = Int(0)
    for i in range(20000):
        deep = Return(deep)
    assert len(h2(deep)) == 32  # no RecursionError
    assert isinstance(h1(deep), int)


def test_hasher_memo_and_subtree_digests():
    hs = Hasher()
    node = Scope((Int(1), Let(X, Int(1))))
    assert hs.h2(node) == h2(node)
    pairs = hs.subtree_digests(node)
    assert pairs[-1] == (node, h2(node))
    assert {d for _, d in pairs} == {h2(Int(1)), h2(Let(X, Int(1))), h2(node)}


def test_named_ref_cannot_be_hashed():
    with pytest.raises(UnresolvedNameError) as e:
        h2(Scope((Call(NamedRef("f")),)))
    assert e.value.code == VALIDATION_ERROR
    with pytest.raises(UnresolvedNameError):
        h1(Call(NamedRef("f")))


def test_invalid_nodes_raise_typed_errors():
    with pytest.raises(EncodeError):
        h2(Matrix(1, 8, 0, b"\x00\x00", b"\x00"))
    with pytest.raises(EncodeError):
        h2(Int(2**31))
    with pytest.raises(EncodeError):
        h2(Compare(9, Int(1), Int(2)))
    with pytest.raises(EncodeError):
        h2(Call(Hash32(b"short")))
    for bad in (Scope((1,)), Add(Int(1), None), Scope((Int(1), "x"))):
        with pytest.raises(EncodeError):
            h2(bad)
        with pytest.raises(EncodeError):
            h1(bad)


# ------------------------------------------------------------------ H1 details


def test_h1_preimages_by_hand():
    i1, i2 = h1(Int(1)), h1(Int(2))
    assert h1(Bitwise(BitwiseOp.And, Int(1), Int(2))) == u64_of(b"BW\x00" + u64(i1) + u64(i2))
    assert h1(Bitwise(BitwiseOp.Not, Int(1))) == u64_of(b"BW\x03" + u64(i1))  # no marker
    assert h1(If(Int(1), (Int(2),), None)) == u64_of(b"IF" + u64(i1) + struct.pack("<I", 1) + u64(i2))
    assert h1(If(Int(1), (), (Int(2),))) == u64_of(
        b"IF" + u64(i1) + struct.pack("<I", 0) + b"EL" + struct.pack("<I", 1) + u64(i2))
    assert h1(Matrix(1, 8, -1, b"\xaa", b"\x55")) == u64_of(b"M" + struct.pack("<HH", 1, 8) + b"\xff\xaa\x55")
    assert h1(Norm(3, b"\x07", b"\x00")) == u64_of(b"N\x03\x00\x07\x00")
    assert h1(Float.of(1.5)) == u64_of(b"FL" + struct.pack("<f", 1.5))
    assert h1(Compare(CmpOp.Le, Int(1), Int(2))) == u64_of(b"CMP\x04" + u64(i1) + u64(i2))


def test_h1_call_targets():
    assert h1(Call(Legacy64(0x1122))) == u64_of(b"C" + u64(0x1122))
    d = b"\xab" * 32
    with pytest.raises(HashTargetError) as e:
        h1(Call(Hash32(d)))
    assert e.value.code == CALL_TARGET_NOT_FOUND
    assert h1(Call(Hash32(d)), callee_h1=lambda dg: 99 if dg == d else None) == u64_of(b"C" + u64(99))
    assert h1(Call(GroupRef(1)), aliases=[5, 6]) == u64_of(b"C" + u64(6))
    with pytest.raises(HashTargetError):
        h1(Call(GroupRef(2)), aliases=[5, 6])


def test_v1_family_hashes():
    assert program_entry_hash(0x0102030405060708) == u64_of(b"prog" + u64(0x0102030405060708))
    assert snapshot_hash("src/a.rs") == u64_of(b"snapshotsrc/a.rs")
    assert kv_token_hash(3, 4, 5) == u64_of(b"kv" + struct.pack("<IIQ", 3, 4, 5))
    assert string_hash("x") == X
    assert index_root([3, 1, 2]) == u64_of(b"IDX" + u64(1) + u64(2) + u64(3))
    assert file_sha(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert alias_of(bytes(range(32))) == int.from_bytes(bytes(range(8)), "little")
    ds = [b"\x01" * 32, b"\x02" * 32]
    g = group_hash(ds)
    assert g == sha(b"\x02grp" + struct.pack("<I", 2) + ds[0] + ds[1])
    assert member_address(g, 1) == sha(b"\x02mem" + g + struct.pack("<I", 1))


# ------------------------------------------------------------------ linking

S = Scope
A, B = name_hash("a"), name_hash("b")
N = name_hash("n")


def prologue(*names):
    out = []
    for p in reversed(names):
        out += [Let(p, S()), If(S(), (), None)]
    return out


def params_module() -> Module:  # conformance vector params_bind_in_order
    first = S((Let(B, S()), If(S(), (), None), Let(A, S()), If(S(), (), None), Load(A)))
    main = S((Int(10), Int(20), Call(NamedRef("first"))))
    return Module((Def("first", first), Def("main", main)))


def sum_body(call_target) -> Scope:  # conformance vector recursion_sum
    return S((Let(N, S()), If(S(), (), None),
              If(Compare(CmpOp.Le, Load(N), Int(0)), (Return(Int(0)),),
                 (Return(Add(Load(N), S((Add(Load(N), Int(-1)), Call(call_target))))),))))


def sum_module() -> Module:
    return Module((Def("sum", sum_body(NamedRef("sum"))), Def("main", S((Int(4), Call(NamedRef("sum")))))))


def test_link_params_bind_in_order():
    lm = link_module(params_module())
    first, main = lm.by_name("first"), lm.by_name("main")
    assert [d.name for d in lm.defs] == ["first", "main"]  # callee first
    assert first.group is None and first.address == h2(first.node)
    assert first.node == params_module().defs[0].node
    assert main.node == S((Int(10), Int(20), Call(Hash32(first.address))))
    assert main.address == h2(main.node)
    assert lm.main_sequence() == (Int(10), Int(20), Call(Hash32(first.address)))
    assert lm.groups == ()


def test_link_self_recursion():
    lm = link_module(sum_module())
    s, main = lm.by_name("sum"), lm.by_name("main")
    stored = sum_body(GroupRef(0))
    assert s.node == stored and s.index == 0
    g = group_hash([h2(stored)])
    assert s.group.hash == g and s.group.members == (member_address(g, 0),)
    assert s.address == member_address(g, 0) != h2(stored)
    assert main.node == S((Int(4), Call(Hash32(s.address))))
    assert lm.groups == (s.group,)
    assert build_group([stored]) == s.group


def parity_body(base: int, other: str) -> Scope:
    rec = Return(S((Add(Load(N), Int(-1)), Call(NamedRef(other)))))
    return S((Let(N, S()), If(S(), (), None),
              If(Compare(CmpOp.Eq, Load(N), Int(0)), (Return(Int(base)),), (rec,))))


def even_odd(order: str = "eo") -> Module:
    defs = {"e": Def("is_even", parity_body(1, "is_odd")), "o": Def("is_odd", parity_body(0, "is_even"))}
    main = Def("main", S((Int(7), Call(NamedRef("is_even")))))
    return Module(tuple(defs[c] for c in order) + (main,))


def test_link_mutual_recursion_and_order_independence():
    lm1 = link_module(even_odd("eo"))
    lm2 = link_module(even_odd("oe"))
    lm3 = link_module(Module((even_odd().defs[2],) + even_odd("oe").defs[:2]))  # main first
    for name in ("is_even", "is_odd", "main"):
        assert lm1.by_name(name).address == lm2.by_name(name).address == lm3.by_name(name).address
        assert lm1.by_name(name).node == lm2.by_name(name).node
    e, o = lm1.by_name("is_even"), lm1.by_name("is_odd")
    assert e.group == o.group and len(e.group.members) == 2 and {e.index, o.index} == {0, 1}
    assert e.group.members[e.index] == e.address
    # order is by anonymous digest: recompute independently
    anon = {d.name: h2(rewrite_calls(d.node, lambda t: GroupRef(0xFFFFFFFF) if type(t) is NamedRef else None))
            for d in even_odd().defs[:2]}
    expect_first = min(anon, key=lambda n: (anon[n], n.encode()))
    assert lm1.defs[0].name == expect_first and lm1.defs[0].index == 0
    # members hold GroupRef calls to each other, main calls the member address
    assert Call(GroupRef(o.index)) in list(_walk(e.node))
    assert lm1.by_name("main").node == S((Int(7), Call(Hash32(e.address))))
    assert e.group.hash == group_hash([h2(lm1.defs[0].node), h2(lm1.defs[1].node)])


def test_link_equal_anonymous_digests_order_by_name():
    f = Def("f", S((Call(NamedRef("g")),)))
    g = Def("g", S((Call(NamedRef("f")),)))
    for mod in (Module((f, g)), Module((g, f))):
        lm = link_module(mod)
        assert [(d.name, d.index) for d in lm.defs] == [("f", 0), ("g", 1)]
        assert lm.by_name("f").node == S((Call(GroupRef(1)),))
        assert lm.by_name("g").node == S((Call(GroupRef(0)),))


def test_link_hashes_are_stable():
    # pinned values: a change here changes every stored address (formats.md §3.3)
    lm = link_module(sum_module())
    assert lm.by_name("sum").address.hex() == link_module(sum_module()).by_name("sum").address.hex()
    e = link_module(even_odd())
    assert e.by_name("main").address == link_module(even_odd("oe")).by_name("main").address
    assert lm.by_name("sum").group.hash.hex() == STABLE_SUM_GROUP
    assert e.by_name("is_even").address.hex() == STABLE_IS_EVEN


STABLE_SUM_GROUP = "cecbe28acd95f08e5040f5c46ffef93092a1976d63b3232b952b26544ea1660f"
STABLE_IS_EVEN = "d696d17c520ce14970dca5543dffa5f912baf4dc9873f62bb264a01938d0ca7c"


def test_link_errors():
    with pytest.raises(LinkError) as e:
        link_module(Module((Def("main", S((Call(NamedRef("nope")),))),)))
    assert e.value.code == CALL_TARGET_NOT_FOUND and e.value.message == "unknown function 'nope'"
    assert e.value.diagnostics[0].message == "unknown function 'nope'"
    assert e.value.diagnostics[0].code == CALL_TARGET_NOT_FOUND and e.value.diagnostics[0].hint is None
    with pytest.raises(LinkError) as e:
        link_module(Module((Def("main", S((Call(NamedRef("totl")),))), Def("total", S()))))
    assert e.value.diagnostics[0].hint == "did you mean 'total'?"
    with pytest.raises(LinkError) as e:
        link_module(Module((Def("f", S()),))).main_sequence()
    assert e.value.message == "no 'main' function found."
    with pytest.raises(LinkError):
        link_module(Module((Def("f", S()), Def("f", S((Int(1),))))))


def test_recursive_main_sequence_calls_member_addresses():
    lm = link_module(Module((Def("main", S((Int(1), If(Int(0), (Call(NamedRef("main")),), None)))),)))
    m = lm.by_name("main")
    assert m.group is not None
    assert lm.main_sequence() == (Int(1), If(Int(0), (Call(Hash32(m.address)),), None))


def test_long_call_chain_links_without_recursion():
    n = 3000
    defs = [Def(f"f{i}", S((Call(NamedRef(f"f{i + 1}")),))) for i in range(n - 1)]
    defs.append(Def(f"f{n - 1}", S((Int(1),))))
    lm = link_module(Module(tuple(defs)))
    assert lm.defs[0].name == f"f{n - 1}" and lm.defs[-1].name == "f0"
    ring = [Def(f"r{i}", S((Call(NamedRef(f"r{(i + 1) % n}")),))) for i in range(n)]
    lm = link_module(Module(tuple(ring)))
    assert len(lm.groups) == 1 and len(lm.groups[0].members) == n


def _walk(node):
    from nda.core.ir import walk
    return walk(node)


def _reach(n, edges):
    reach = []
    for s in range(n):
        seen, todo = {s}, [s]
        while todo:
            v = todo.pop()
            for w in edges[v]:
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        reach.append(seen)
    return reach


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 12).flatmap(
    lambda n: st.tuples(st.just(n), st.lists(st.lists(st.integers(0, n - 1), max_size=4), min_size=n, max_size=n))))
def test_tarjan_matches_reachability(case):
    n, edges = case
    comps = tarjan_scc(n, edges)
    reach = _reach(n, edges)
    assert sorted(v for c in comps for v in c) == list(range(n))
    where = {v: i for i, c in enumerate(comps) for v in c}
    for v in range(n):
        for w in range(n):
            same = w in reach[v] and v in reach[w]
            assert (where[v] == where[w]) == same
            if w in reach[v] and not same:
                assert where[w] < where[v]  # callees first


# ------------------------------------------------------------------ resolver


def test_memory_resolver():
    r = MemoryResolver()
    leaf = S((Int(3),))
    a = r.add_node(leaf)
    assert a == h2(leaf)
    assert r.resolve_call(Hash32(a), None) == Callee(a, leaf, None)
    assert r.resolve_call(Legacy64(h1(leaf)), None).address == a
    assert r.resolve_call(Hash32(b"\x00" * 32), None) is None
    assert r.resolve_call(Legacy64(12345), None) is None
    root = r.add_program([Int(1), Int(2)])
    assert root == program_hash([Int(1), Int(2)])
    assert r.get(root).node == S((Int(1), Int(2)))
    entry = program_entry_hash(h1(S((Int(1), Int(2)))))
    assert r.resolve_call(Legacy64(entry), None).address == root

    lm = link_module(even_odd())
    r.add_linked(lm)
    e = lm.by_name("is_even")
    c = r.resolve_call(Hash32(e.address), None)
    assert c.node == e.node and c.group == e.group and c.address == e.address
    other = 1 - e.index
    c2 = r.resolve_call(GroupRef(other), e.group)
    assert c2.address == e.group.members[other] and c2.group == e.group
    assert r.resolve_call(GroupRef(2), e.group) is None
    assert r.resolve_call(GroupRef(0), None) is None
    assert r.resolve_call(Legacy64(alias_of(e.address)), None).address == e.address
    assert r.resolve_call(NamedRef("is_even"), None) is None
    # H1 of main uses the alias of the member it calls
    m = lm.by_name("main")
    assert r.callee_h1(e.address) == alias_of(e.address)
    assert r.resolve_call(Legacy64(h1(m.node, callee_h1=r.callee_h1)), None).address == m.address
    # member H1: GroupRef → alias
    mh = h1(e.node, aliases=e.group.aliases)
    assert r.resolve_call(Legacy64(mh), None).address == e.address


def test_resolver_add_linked_conformance_modules():
    for mod in (params_module(), sum_module()):
        lm = link_module(mod)
        r = MemoryResolver()
        r.add_linked(lm)
        for d in lm.defs:
            assert r.get(d.address).node == d.node
        for node in lm.main_sequence():
            if type(node) is Call:
                assert r.resolve_call(node.target, None) is not None


def test_errors_are_nda_errors():
    assert issubclass(LinkError, NdaError) and issubclass(HashTargetError, NdaError)
