"""Lowering details of the text front end (language.md §4.1, §4.3, §3.4)."""

from __future__ import annotations

import pytest

from nda.core.errors import Span
from nda.core.ir import (
    Add, Bitwise, BitwiseOp, Break, Call, Cast, CmpOp, Compare, Dot, Float, Gemv, If, Int, Let,
    Load, Loop, Math, MathFunc, MathFuncKind, MathOp, Matrix, Module, NamedRef, Norm, Peek, Poke,
    Print, Return, Scope, Store, TypeKind, VecOp, VecOpKind, While, name_hash,
)
from nda.syntax.text import parse_text, parse_text_with_names, tokenize

x, y, z = name_hash("x"), name_hash("y"), name_hash("z")


def body(src: str, fn: str = "main"):
    """Children of `fn`'s Scope for a one-function source."""
    return parse_text(src).get(fn).children


def expr(src: str):
    (node,) = body(f"fn main() {{ {src} }}")
    return node


# -- literals --------------------------------------------------------------------------------

@pytest.mark.parametrize("src, node", [
    ("5", Int(5)), ("-5", Int(-5)), ("- 5", Int(-5)), ("0", Int(0)), ("-0", Int(0)),
    ("2147483647", Int(2147483647)), ("2147483648", Int(-2147483648)),
    ("-2147483648", Int(-2147483648)), ("0xF0000000", Int(-268435456)),
    ("4294967295", Int(-1)), ("-4294967295", Int(1)), ("0xff", Int(255)), ("0X_F_F", Int(255)),
    ("1_000", Int(1000)), ("007", Int(7)),
    ("1.5", Float.of(1.5)), ("-1.5", Float.of(-1.5)), ("2.5e3", Float.of(2500.0)),
    ("1e-5", Float.of(1e-5)), ("3E+2", Float.of(300.0)), ("0.1", Float(0x3DCCCCCD)),
    ("-0.0", Float(0x80000000)), ("0.0", Float(0)), ("1e39", Float(0x7F800000)),
    ("-1e39", Float(0xFF800000)), ("2.7", Float.of(2.7)),
])
def test_literals(src, node):
    assert expr(src) == node


def test_float_literals_are_correctly_rounded_to_f32():
    # 1 + 2^-24 + tiny: the double rounds to the f32 midpoint; the nearest f32 is above it
    assert expr("1.000000059604644775390625000000000001") == Float(0x3F800001)
    assert expr("1.000000059604644775390625") == Float(0x3F800000)  # exact tie → even
    assert expr("340282356779733661637539395458142568447.0") == Float(0x7F7FFFFF)
    assert expr("1.4e-45") == Float(1)


def test_minus_before_non_literal_is_negate_and_tilde_is_not():
    assert expr("-(5)") == VecOp(VecOpKind.Negate, Int(5))
    assert expr("- -5") == VecOp(VecOpKind.Negate, Int(-5))
    assert expr("-x") == VecOp(VecOpKind.Negate, Load(x))
    assert expr("~x") == Bitwise(BitwiseOp.Not, Load(x), None)
    assert expr("~-5") == Bitwise(BitwiseOp.Not, Int(-5), None)
    assert expr("-~x") == VecOp(VecOpKind.Negate, Bitwise(BitwiseOp.Not, Load(x), None))
    assert expr("x - -1") == Math(MathOp.Sub, Load(x), Int(-1))
    assert expr("-5 * x") == Math(MathOp.Mul, Int(-5), Load(x))
    assert expr("-x * y") == Math(MathOp.Mul, VecOp(VecOpKind.Negate, Load(x)), Load(y))


# -- operators -------------------------------------------------------------------------------

def test_operator_mapping():
    a, b = Load(x), Load(y)
    assert expr("x + y") == Add(a, b)
    assert expr("x - y") == Math(MathOp.Sub, a, b)
    assert expr("x * y") == Math(MathOp.Mul, a, b)
    assert expr("x / y") == Math(MathOp.Div, a, b)
    for op, k in [("&", BitwiseOp.And), ("|", BitwiseOp.Or), ("^", BitwiseOp.Xor),
                  ("<<", BitwiseOp.Shl), (">>", BitwiseOp.Shr)]:
        assert expr(f"x {op} y") == Bitwise(k, a, b)
    for op, k in [("==", CmpOp.Eq), ("!=", CmpOp.Ne), ("<", CmpOp.Lt), (">", CmpOp.Gt),
                  ("<=", CmpOp.Le), (">=", CmpOp.Ge)]:
        assert expr(f"x {op} y") == Compare(k, a, b)


def test_precedence_and_left_associativity():
    i = Int
    # comparisons < | < ^ < & < shifts < + - < * / < unary
    got = expr("1 == 2 | 3 ^ 4 & 5 << 6 + 7 * -8")
    want = Compare(CmpOp.Eq, i(1), Bitwise(BitwiseOp.Or, i(2), Bitwise(BitwiseOp.Xor, i(3), Bitwise(
        BitwiseOp.And, i(4), Bitwise(BitwiseOp.Shl, i(5), Add(i(6), Math(MathOp.Mul, i(7), i(-8))))))))
    assert got == want
    assert expr("1 - 2 - 3") == Math(MathOp.Sub, Math(MathOp.Sub, i(1), i(2)), i(3))
    assert expr("1 < 2 < 3") == Compare(CmpOp.Lt, Compare(CmpOp.Lt, i(1), i(2)), i(3))
    assert expr("1 >> 2 << 3") == Bitwise(BitwiseOp.Shl, Bitwise(BitwiseOp.Shr, i(1), i(2)), i(3))
    assert expr("(1 + 2) * 3") == Math(MathOp.Mul, Add(i(1), i(2)), i(3))
    assert expr("1 * 2 + 3 / 4") == Add(Math(MathOp.Mul, i(1), i(2)), Math(MathOp.Div, i(3), i(4)))


def test_builtins():
    a, b = Load(x), Load(y)
    for name, k in [("silu", VecOpKind.SiLU), ("negate", VecOpKind.Negate), ("abs", VecOpKind.Abs),
                    ("reduce_sum", VecOpKind.ReduceSum)]:
        assert expr(f"{name}(x)") == VecOp(k, a)
    for name, k in [("sqrt", MathFuncKind.Sqrt), ("sin", MathFuncKind.Sin),
                    ("cos", MathFuncKind.Cos), ("exp", MathFuncKind.Exp)]:
        assert expr(f"{name}(x)") == MathFunc(k, a)
    assert expr("peek(x)") == Peek(a)
    assert expr("int(x)") == Cast(TypeKind.Float, TypeKind.Int, a)
    assert expr("float(x)") == Cast(TypeKind.Int, TypeKind.Float, a)
    assert expr("add(x, y)") == Add(a, b)
    assert expr("dot(x, y)") == Dot(a, b)
    assert expr("gemv(x, y)") == Gemv(a, b)
    assert expr("poke(x, y)") == Poke(a, b)


# -- synthetic matrices ----------------------------------------------------------------------

def _mat(r, c):
    n = r * ((c + 7) // 8)
    return Matrix(r, c, 0, bytes(0xAA if j % 2 == 0 else 0x55 for j in range(n)),
                  bytes(0x55 if j % 2 == 0 else 0xAA for j in range(n)))


@pytest.mark.parametrize("src, node", [
    ("matrix[2, 3]", _mat(2, 3)), ("matrix(2, 3)", _mat(2, 3)), ("matrix(2; 3)", _mat(2, 3)),
    ("matrix[3, 1]", _mat(3, 1)),  # odd plane: aa 55 aa — by byte index over the whole plane
    ("matrix[2, 9]", _mat(2, 9)), ("matrix[0, 70000]", _mat(1, 65535)),
    ("matrix[4294967295, 5]", _mat(1, 5)),  # the INT token is the i32 −1, clamped to 1
    ("norm[9]", Norm(9, b"\xff\xff", b"\x00\x00")), ("norm(1)", Norm(1, b"\xff", b"\x00")),
    ("norm[0]", Norm(1, b"\xff", b"\x00")), ("norm[100000]", Norm(65535, b"\xff" * 8192, bytes(8192))),
    ("vec[x]", _mat(1, 1)), ("vec[x + 1; 9]", _mat(1, 9)), ("vec[0; 0]", _mat(1, 1)),
    ("vec(5)", _mat(1, 5)), ("vec(x)", _mat(1, 1)), ("vec(-3)", _mat(1, 1)), ("vec((5))", _mat(1, 1)),
    ("vec(0)", _mat(1, 1)), ("vec(70000)", _mat(1, 65535)),
])
def test_synthetic_matrices(src, node):
    assert expr(src) == node


def test_plane_budget_guard():
    from nda.core.errors import ParseError

    with pytest.raises(ParseError) as ei:
        parse_text("fn main() { matrix[65535, 65535] }")
    assert "above the limit" in ei.value.diagnostics[0].message
    m = parse_text("fn main() { matrix[4096, 4096] }", max_plane_bytes=None)
    assert len(m.get("main").children[0].sign) == 4096 * 512


# -- statements --------------------------------------------------------------------------------

def test_statements():
    got = body("fn main() { let x = 1; y = x\n x == 1 print(x) return x break while x { break } }")
    assert got == (
        Let(x, Int(1)), Store(y, Load(x)), Compare(CmpOp.Eq, Load(x), Int(1)), Print(Load(x)),
        Return(Load(x)), Break(), While(Load(x), (Break(),)),
    )


def test_if_else_chains():
    a = Load(x)
    assert expr("if x { }") == If(a, (), None)
    assert expr("if x { } else { }") == If(a, (), ())
    assert expr("if x { 1 } else if y { 2 } else { 3 }") == If(
        a, (Int(1),), (If(Load(y), (Int(2),), (Int(3),)),))
    assert expr("if x {} else if y {} else if z {}") == If(
        a, (), (If(Load(y), (), (If(Load(z), (), None),)),))


def test_static_and_dynamic_loops():
    assert expr("loop 3 { }") == Loop(3, ())
    assert expr("loop 0 { }") == Loop(0, ())
    assert expr("loop 4294967295 { }") == Loop(4294967295, ())
    assert expr("loop 0x80000000 { }") == Loop(2**31, ())

    def dyn(i, count, inner=()):
        k = name_hash(f"_loop_cnt_{i}")
        return Scope((Let(k, count), While(Compare(CmpOp.Gt, Load(k), Int(0)),
                                           (*inner, Store(k, Add(Load(k), Int(-1)))))))

    assert expr("loop (5) { }") == dyn(0, Int(5))
    assert expr("loop -1 { }") == dyn(0, Int(-1))
    assert expr("loop 1.5 { }") == dyn(0, Float.of(1.5))
    assert expr("loop x + 1 { print(x) }") == dyn(0, Add(Load(x), Int(1)), (Print(Load(x)),))
    # numbered in source order per function; nested loops after their outer loop
    src = """fn f() { loop x { loop y { } } loop 2 { } loop z { } }
             fn g() { loop x { } }"""
    m = parse_text(src)
    assert m.get("f").children == (
        dyn(0, Load(x), (dyn(1, Load(y)),)), Loop(2, ()), dyn(2, Load(z)))
    assert m.get("g").children == (dyn(0, Load(x)),)


def test_parameter_prologue_binds_last_first():
    p, q, r = name_hash("p"), name_hash("q"), name_hash("r")
    m = parse_text("fn f(p: int, q: float, r: vec) -> matrix { p } fn main(x: vec) { }")

    def bind(h):
        return (Let(h, Scope(())), If(Scope(()), (), None))

    assert m.get("f") == Scope((*bind(r), *bind(q), *bind(p), Load(p)))
    assert m.get("main") == Scope(bind(x))
    assert parse_text("fn main(x: norm, y: int) { }").get("main") == Scope((*bind(y), *bind(x)))


def test_calls_lower_to_scope_with_named_ref_and_allow_forward_references():
    m = parse_text("fn main() { f() g(1, f()) } fn f() { } fn g(a: int, b: int) { }")
    f = Scope((Call(NamedRef("f")),))
    assert m.get("main").children == (f, Scope((Int(1), f, Call(NamedRef("g")))))
    assert [d.name for d in m.defs] == ["main", "f", "g"]


def test_store_needs_one_token_lookahead():
    assert body("fn main() { x = 1 }") == (Store(x, Int(1)),)
    assert body("fn main() { x == 1 }") == (Compare(CmpOp.Eq, Load(x), Int(1)),)
    assert body("fn main() { x y = 2 }") == (Load(x), Store(y, Int(2)))


def test_empty_and_comment_only_files():
    assert parse_text("") == Module(())
    assert parse_text("// nothing\n   \n") == Module(())
    assert parse_text("fn main() {}").get("main") == Scope(())


def test_bytes_input_and_crlf():
    m = parse_text(b"fn main() {\r\n  let x = 1 // \xff\r\n}\r\n")
    assert m.get("main").children == (Let(x, Int(1)),)


# -- spans and names ---------------------------------------------------------------------------

def test_spans_point_at_source():
    src = "fn main() {\n    let x = 1 + 22\n    print(x)\n}\n"
    m = parse_text(src, file="a.nda")
    let, prn = m.get("main").children
    assert let.span == Span(2, 5, 2, 19, file="a.nda")
    assert let.init.span == Span(2, 13, 2, 19, file="a.nda")
    assert let.init.rhs.span == Span(2, 17, 2, 19, file="a.nda")
    assert prn.span == Span(3, 5, 3, 13, file="a.nda")
    assert m.defs[0].span == Span(1, 1, 4, 2, file="a.nda")


def test_columns_count_code_points():
    # 'é' is one code point (two UTF-8 bytes)
    toks = tokenize('"éé" x\n\ty')
    assert [(t.kind, t.line, t.col) for t in toks] == [
        ("STRING", 1, 1), ("IDENT", 1, 6), ("IDENT", 2, 2), ("EOF", 2, 3)]
    assert toks[0].value == "éé"
    from nda.core.errors import ParseError

    with pytest.raises(ParseError) as ei:
        parse_text("fn main() { x = 'é' }")
    assert ei.value.message == "1:17: Unexpected character '''"
    with pytest.raises(ParseError) as ei:
        parse_text("fn main() { é }")
    assert ei.value.message == "1:13: Unexpected character 'é'"


def test_names_are_reported():
    _, names = parse_text_with_names("fn main(a: int) { let b = a loop b { } }")
    assert {names[name_hash(n)] for n in ("a", "b", "_loop_cnt_0")} == {"a", "b", "_loop_cnt_0"}


def test_every_node_carries_a_span():
    from nda.core.ir import walk

    from text_strategies import EXAMPLES

    for src in EXAMPLES:
        m = parse_text(src, file="e.nda")
        for d in m.defs:
            assert d.span is not None
            for node in walk(d.node):
                assert node.span is not None and node.span.file == "e.nda" and node.span.line >= 1, node
