"""Printer: print → parse is the identity on text-expressible IR; inexpressible IR is refused."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from nda.core.ir import (
    Add, Alloc, Atomic, AtomicOp, Bitwise, BitwiseOp, Call, Cast, Def, Float,
    GpuDispatch, GroupRef, Hash32, If, Int, Legacy64, Let, Load, Loop, Math, MathOp, Matrix,
    Module, NamedRef, Norm, Print, RegInt, Return, Scope, Spawn, Store, Syscall, Triple, TypeKind,
    VecOp, VecOpKind, name_hash, walk,
)
from nda.syntax.text import (
    InexpressibleError, UnknownNameError, check_text_expressible, is_text_expressible, parse_text,
    parse_text_with_names, print_text, print_text_nodes,
)
from nda.syntax.text import lower as L
from text_strategies import text_modules

x, y = name_hash("x"), name_hash("y")
NAMES = {x: "x", y: "y"}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_modules())
def test_print_then_parse_is_identity(mn):
    module, names = mn
    assert is_text_expressible(module, names)
    text = print_text(module, names)
    again, seen = parse_text_with_names(text)
    assert again == module
    assert print_text(again, seen) == text  # printing is canonical


def main(*stmts):
    return Module((Def("main", Scope(tuple(stmts))),))


def flat(module):
    """Pre-order (kind, fields) list: equal iff the modules are equal; no recursion."""
    out = []
    for d in module.defs:
        out.append(("def", d.name))
        for n in walk(d.node):
            fields = tuple((k, getattr(n, k) if kind not in ("node", "nodes", "optnode", "optnodes")
                            else None if getattr(n, k) is None else len(getattr(n, k))
                            if isinstance(getattr(n, k), tuple) else -1) for k, kind in n.FIELDS)
            out.append((type(n).__name__, fields))
    return out


def roundtrip(module, names=NAMES):
    text = print_text(module, names)
    assert flat(parse_text(text)) == flat(module), text
    return text


def test_special_floats_roundtrip():
    for bits in [0, 0x80000000, 0x7F800000, 0xFF800000, 1, 0x80000001, 0x7F7FFFFF, 0x00800000,
                 0x3DCCCCCD, 0x38D1B717, 0x5A0E1BCA, 0x4B800001]:
        roundtrip(main(Float(bits)))
    assert roundtrip(main(Float.of(-2.5), Float(0x7F800000), Float.of(1e-5))) == \
        "fn main() {\n    -2.5\n    1e39\n    1e-05\n}\n"


def test_statement_separators_when_juxtaposition_would_merge():
    neg = VecOp(VecOpKind.Negate, Load(y))
    m = main(Load(x), Int(-5), Load(x), Math(MathOp.Mul, Add(Load(x), Load(y)), Load(y)),
             Let(x, Load(y)), neg, Return(Load(x)), Float.of(-1.0), Print(Load(x)), Int(-1))
    text = roundtrip(m)
    assert "    x;\n    -5\n" in text and "    x;\n    (x + y) * y\n" in text
    assert "print(x)\n    -1\n" in text


def test_unary_forms():
    for node in [VecOp(VecOpKind.Negate, Int(5)), VecOp(VecOpKind.Negate, Int(-5)),
                 VecOp(VecOpKind.Negate, Float.of(2.0)),
                 VecOp(VecOpKind.Negate, VecOp(VecOpKind.Negate, Load(x))),
                 VecOp(VecOpKind.Negate, Add(Load(x), Int(1))),
                 Bitwise(BitwiseOp.Not, Int(-5)), Bitwise(BitwiseOp.Not, Bitwise(BitwiseOp.Not, Load(x))),
                 Math(MathOp.Sub, Load(x), Int(-1)), Math(MathOp.Sub, Int(-1), Int(-1)),
                 Math(MathOp.Sub, Load(x), Math(MathOp.Sub, Load(y), Int(1)))]:
        roundtrip(main(node))
    assert roundtrip(main(VecOp(VecOpKind.Negate, Load(x)))) == "fn main() {\n    -x\n}\n"


def test_loop_shapes():
    k0, k1 = name_hash("_loop_cnt_0"), name_hash("_loop_cnt_1")
    m = main(L.dynamic_loop(k0, Int(5), (L.dynamic_loop(k1, Int(-2), (), None),), None),
             Loop(4294967295, ()))
    text = roundtrip(m, {})
    assert "loop (5) {" in text and "loop -2 {}" in text and "loop 4294967295 {}" in text


def test_prologue_and_params():
    p, q = name_hash("p"), name_hash("q")
    node = Scope((*L.prologue([(p, None), (q, None)]), Add(Load(p), Load(q))))
    m = Module((Def("f", node), Def("main", Scope((*L.prologue([(x, None)]),
                                                    Scope((Int(1), Int(2), Call(NamedRef("f")))))))))
    text = roundtrip(m, {p: "p", q: "q", x: "x"})
    assert text.startswith("fn f(p: int, q: int) {") and "fn main(x: vec) {\n    f(1, 2)\n}" in text


def test_print_text_nodes_wraps_a_sequence_in_main():
    text = print_text_nodes([Let(x, Int(1)), Print(Load(x))], NAMES)
    assert text == "fn main() {\n    let x = 1\n    print(x)\n}\n"
    assert parse_text(text).get("main").children == (Let(x, Int(1)), Print(Load(x)))


def test_depth_limit_is_exact():
    def nest(levels):  # a Def whose node_depth is `levels`
        node = Int(1)
        for _ in range(levels - 2):
            node = VecOp(VecOpKind.Abs, node)
        return Module((Def("main", Scope((node,))),))

    roundtrip(nest(256))
    with pytest.raises(InexpressibleError, match="exceeds 256"):
        print_text(nest(257))

    def nest_ifs(levels):
        stmt = Int(1)
        for _ in range(levels - 2):
            stmt = If(Int(1), (stmt,), None)
        return main(stmt)

    roundtrip(nest_ifs(256))


INEXPRESSIBLE = [
    (Math(MathOp.Add, Int(1), Int(2)), "Math"),
    (Syscall(1, ()), "Syscall"),
    (Spawn(5), "Spawn"), (Atomic(AtomicOp.Cas, Int(1), Int(2)), "Atomic"), (Alloc(Int(1)), "Alloc"),
    (RegInt(1, 2), "RegInt"), (GpuDispatch(1, ()), "GpuDispatch"), (Triple(1, 2, 3), "Triple"),
    (Matrix(1, 8, 0, b"\xaa", b"\x56"), "Matrix"), (Matrix(1, 8, 1, b"\xaa", b"\x55"), "Matrix"),
    (Norm(8, b"\xfe", b"\x00"), "Norm"), (Float(0x7FC00000), "Float"),
    (Scope((Call(Hash32(b"\x00" * 32)),)), "Call"), (Scope((Call(GroupRef(0)),)), "Call"),
    (Scope((Call(Legacy64(7)),)), "Call"), (Scope((Call(NamedRef("nope")),)), "Call"),
    (Call(NamedRef("main")), "Call"), (Scope(()), "Scope"), (Scope((Int(1),)), "Scope"),
    (Add(Let(x, Int(1)), Int(2)), "Let"), (Print(Return(Int(1))), "Return"),
    (Cast(TypeKind.Int, TypeKind.Vector, Int(1)), "Cast"), (Cast(TypeKind.Int, TypeKind.Int, Int(1)), "Cast"),
    (Bitwise(BitwiseOp.Not, Int(1), Int(2)), "Bitwise"), (Bitwise(BitwiseOp.And, Int(1), None), "Bitwise"),
    (If(Scope(()), (), None), "If"), (Let(x, Scope(())), "Scope"),
    (L.dynamic_loop(name_hash("_loop_cnt_1"), Int(1), (), None), "Scope"),
    (Store(name_hash("nobody"), Int(1)), "Store"),
]


@pytest.mark.parametrize("node, kind", INEXPRESSIBLE)
def test_inexpressible_ir_is_refused_with_the_node_kind(node, kind):
    m = main(Int(0), node)
    with pytest.raises(InexpressibleError) as ei:
        print_text(m, NAMES)
    assert ei.value.kind == kind
    assert ei.value.path.startswith("def main")
    assert not is_text_expressible(m, NAMES)


def test_unknown_and_invalid_names():
    h = name_hash("mystery")
    with pytest.raises(UnknownNameError) as ei:
        print_text(main(Load(h)), NAMES)
    assert ei.value.name_hash == h and ei.value.kind == "Load"
    assert is_text_expressible(main(Load(h)))  # structure only when names are not given
    check_text_expressible(main(Load(h)))
    with pytest.raises(UnknownNameError):
        print_text(main(Load(h)), {h: "other"})  # the name does not hash to h
    with pytest.raises(UnknownNameError):
        print_text(main(Load(name_hash("loop"))), {name_hash("loop"): "loop"})  # keyword
    assert print_text(main(Load(h)), {h: "mystery"}) == "fn main() {\n    mystery\n}\n"


def test_module_level_inexpressibility():
    with pytest.raises(InexpressibleError, match="duplicate"):
        print_text(Module((Def("f", Scope(())), Def("f", Scope(())))))
    with pytest.raises(InexpressibleError) as ei:
        print_text(Module((Def("while", Scope(())),)))
    assert ei.value.kind == "Def"
    with pytest.raises(InexpressibleError) as ei:
        print_text(Module((Def("main", Int(1)),)))
    assert ei.value.kind == "Int"
    assert print_text(Module(())) == ""
    assert parse_text("") == Module(())
