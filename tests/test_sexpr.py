"""S-expression form: lossless round trips both ways, canonical printing, typed errors."""

import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nda.core import ir
from nda.core.errors import ParseError
from nda.syntax.sexpr import parse_node, parse_sexpr, print_module, print_node, print_sexpr, print_unit

from strategies import nodes, programs

EXAMPLES = [
    "(let x (int 5))",
    "(loop 3 (store x (add (load x) (int 1))))",
    "(matrix 128 896 :sign aa :extra 55)",
    "(if (cmp gt (load x) (int 5)) (then (print (int 1))) (else))",
    "(bitwise not (int 0))",
    "(float f32:0x7fc00001)",
    "(call #x:0123456789abcdef)",
    "(call #g:2)",
    "(call #" + "ab" * 32 + ")",
    "(triple #x:0000000000000001 2 #x:0000000000000003)",
    "(gpu_dispatch #x:0000000000000005 (int 1) (int 2))",
    "(cast int vector (float -0.0))",
]


@pytest.mark.parametrize("text", EXAMPLES)
def test_canonical_text_round_trips(text):
    node = parse_node(text)
    assert print_node(node, parse_sexpr(text).names) == text
    assert parse_node(print_node(node)) == node


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs(max_len=4, group_refs=True))
def test_ir_round_trip(seq):
    text = print_sexpr(seq)
    assert parse_sexpr(text).sequence == tuple(seq)
    assert print_sexpr(parse_sexpr(text).sequence) == text  # printing is canonical


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(nodes(max_depth=3))
def test_names_print_as_identifiers_when_known(node):
    names = {ir.name_hash(n): n for n in ("x", "y", "n", "a", "b")}
    text = print_node(node, names)
    assert parse_node(text) == node


def test_float_printing_is_exact():
    for bits in (0x3DCCCCCD, 0x80000000, 0x7F800000, 0xFF800000, 0x00000001, 0x7F7FFFFF, 0x7FC00000):
        n = ir.Float(bits)
        assert parse_node(print_node(n)) == n
    assert print_node(ir.Float.of(0.1)) == "(float 0.1)"
    assert print_node(ir.Float.of(1e-5)) == "(float 1e-5)"
    assert print_node(ir.Float(0x7FC00000)) == "(float f32:0x7fc00000)"


def test_plane_shortest_period_and_fill():
    m = parse_node("(matrix 2 12 :sign aa55 :extra _0)".replace("_0", "00"))
    assert m.sign == bytes.fromhex("aa55aa55") and m.extra == b"\x00" * 4
    assert print_node(m) == "(matrix 2 12 :sign aa55 :extra 00)"
    odd = parse_node("(matrix 1 24 :sign aa55 :extra 00)")  # 3 bytes: aa 55 aa (cut)
    assert odd.sign == bytes.fromhex("aa55aa")
    assert print_node(odd) == "(matrix 1 24 :sign aa55 :extra 00)"


def test_module_form_and_named_targets():
    unit = parse_sexpr("(module (def main (scope (call @f))) (def f (scope (int 1))))")
    assert unit.is_module
    assert unit.module.get("main") == ir.Scope((ir.Call(ir.NamedRef("f")),))
    assert parse_sexpr(print_unit(unit)).module == unit.module
    assert "(def f" in print_module(unit.module)


def test_empty_program_and_comments():
    assert parse_sexpr("").sequence == ()
    assert parse_sexpr("; only a comment\n").sequence == ()
    assert parse_sexpr("(int 1) ; trailing\n(int 2)").sequence == (ir.Int(1), ir.Int(2))


@pytest.mark.parametrize("text, where, fragment", [
    ("(int", "1:1", "unclosed"),
    ("(int 1))", "1:8", "unexpected ')'"),
    ("(frob 1)", "1:2", "unknown node form 'frob'"),
    ("(int 2147483648)", "1:6", "out of i32 range"),
    ("(int 0x1FFFFFFFF)", "1:6", "expected an integer"),
    ("(let 9x (int 1))", "1:6", "expected a name"),
    ("(matrix 1 8 :sign a :extra 00)", "1:19", "even number of hex digits"),
    ("(matrix 1 8 :sign aa)", "1:1", "requires :extra"),
    ("(matrix 1 8 :sign aa :extra 00 :sign aa)", "1:32", "duplicate keyword"),
    ("(cmp eqq (int 1) (int 2))", "1:6", "unknown CmpOp 'eqq'"),
    ("(if (int 1) (int 2))", "1:13", "expected (then"),
    ("\n  (break 1)", "2:3", "takes no arguments"),
    ('(print "hi")', "1:8", "strings are not supported"),
    ("(call #12)", "1:7", "expected a call target"),
    ("(module (def main (scope)) (def main (scope)))", "1:33", "duplicate definition"),
    ("(int 1) (module)", "1:10", "unknown node form 'module'"),
    ("(loop -1)", "1:7", "expected a loop count"),
])
def test_errors_name_the_position(text, where, fragment):
    with pytest.raises(ParseError) as ei:
        parse_sexpr(text)
    assert ei.value.message.startswith(where + ":"), ei.value.message
    assert fragment in ei.value.message
    d = ei.value.diagnostics[0]
    assert d.code == "PARSE_ERROR" and f"{d.span.line}:{d.span.col}" == where


def test_nesting_limit_is_an_error_not_a_crash():
    deep = "(vecop abs " * 5000 + "(int 1)" + ")" * 5000
    with pytest.raises(ParseError) as ei:
        parse_sexpr(deep)
    assert "nesting" in ei.value.message
    ok = "(vecop abs " * 200 + "(int 1)" + ")" * 200
    assert ir.node_depth(parse_node(ok)) == 201


ALPHABET = "()abcdefxyz0123456789 :;#@_-.\n\"intloopscopematrixnormcallletadd"


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet=ALPHABET, max_size=80))
def test_fuzz_random_text_only_parse_errors(text):
    try:
        parse_sexpr(text)
    except ParseError:
        pass


def test_fuzz_mutations_of_valid_programs_only_parse_errors():
    rng = random.Random(1234)
    seeds = EXAMPLES + [open(p).read() for p in ("examples/counter.sexpr", "examples/recursion.sexpr")]
    for _ in range(5000):
        s = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            i = rng.randrange(len(s) + 1)
            if op == 0:
                s.insert(i, rng.choice(ALPHABET))
            elif op == 1 and s:
                del s[min(i, len(s) - 1)]
            elif s:
                s[min(i, len(s) - 1)] = rng.choice(ALPHABET)
        try:
            parse_sexpr("".join(s))
        except ParseError:
            pass
