"""The six example programs of language.md §6: text → IR equals the given S-expression.

Expected IR is written by hand with nda.core.ir constructors; the S-expression reader is used as a
second, independent witness, and the linked programs are run once end to end.
"""

from __future__ import annotations

import pytest

from nda.core.ir import (
    Add, Bitwise, BitwiseOp, Call, CmpOp, Compare, If, Int, Let, Load, Loop, Math, MathOp, Matrix,
    NamedRef, Norm, Peek, Poke, Print, Return, Scope, Store, While, name_hash,
)
from nda.syntax.text import parse_text, print_text, parse_text_with_names
from text_strategies import EXAMPLES

s, x, n = name_hash("s"), name_hash("x"), name_hash("n")
k0 = name_hash("_loop_cnt_0")

EXPECTED_MAIN = [
    # 1. Counter
    (Let(s, Int(0)), Loop(5, (Store(s, Add(Load(s), Int(1))),)), Print(Load(s))),
    # 2. Branch
    (Let(x, Int(7)),
     If(Compare(CmpOp.Gt, Load(x), Int(5)), (Print(Int(1)),), (Print(Int(0)),))),
    # 3. Dynamic loop
    (Let(n, Int(3)),
     Scope((Let(k0, Load(n)),
            While(Compare(CmpOp.Gt, Load(k0), Int(0)),
                  (Print(Load(n)), Store(k0, Add(Load(k0), Int(-1)))))))),
    # 4. Network block
    (Matrix(128, 896, 0, bytes([0xAA, 0x55]) * (128 * 112 // 2), bytes([0x55, 0xAA]) * (128 * 112 // 2)),
     Norm(128, b"\xff" * 16, b"\x00" * 16)),
    # 5. Recursion (main)
    (Print(Scope((Int(4), Call(NamedRef("sum"))))),),
    # 6. Bits and memory
    (Poke(Int(16), Bitwise(BitwiseOp.Shl, Bitwise(BitwiseOp.And, Int(6), Int(3)), Int(4))),
     Print(Peek(Int(16)))),
]

EXPECTED_SUM = Scope((
    Let(n, Scope(())), If(Scope(()), (), None),
    If(Compare(CmpOp.Le, Load(n), Int(0)), (Return(Int(0)),), None),
    Return(Add(Load(n), Scope((Math(MathOp.Sub, Load(n), Int(1)), Call(NamedRef("sum")))))),
))

SEXPR = [
    "(let s (int 0)) (loop 5 (store s (add (load s) (int 1)))) (print (load s))",
    "(let x (int 7)) (if (cmp gt (load x) (int 5)) (then (print (int 1))) (else (print (int 0))))",
    "(let n (int 3)) (scope (let _loop_cnt_0 (load n)) (while (cmp gt (load _loop_cnt_0) (int 0))"
    " (print (load n)) (store _loop_cnt_0 (add (load _loop_cnt_0) (int -1)))))",
    "(matrix 128 896 :scale 0 :sign aa55 :extra 55aa) (norm 128 :weight ff :bias 00)",
    None,
    "(poke (int 16) (bitwise shl (bitwise and (int 6) (int 3)) (int 4))) (print (peek (int 16)))",
]
SEXPR_MODULE_5 = """(module
  (def main (scope (print (scope (int 4) (call @sum)))))
  (def sum (scope (let n (scope)) (if (scope) (then))
                  (if (cmp le (load n) (int 0)) (then (return (int 0))))
                  (return (add (load n) (scope (math sub (load n) (int 1)) (call @sum)))))))"""


@pytest.mark.parametrize("i", range(6))
def test_example_lowers_to_spec_ir(i):
    m = parse_text(EXAMPLES[i])
    assert m.get("main") == Scope(EXPECTED_MAIN[i])
    if i == 4:
        assert [d.name for d in m.defs] == ["sum", "main"]
        assert m.get("sum") == EXPECTED_SUM
    else:
        assert [d.name for d in m.defs] == ["main"]


@pytest.mark.parametrize("i", range(6))
def test_example_matches_sexpr_reader(i):
    from nda.syntax.sexpr import parse_sexpr

    m = parse_text(EXAMPLES[i])
    if i == 4:
        other = parse_sexpr(SEXPR_MODULE_5).module
        for name in ("sum", "main"):
            assert m.get(name) == other.get(name)
    else:
        assert m.get("main").children == parse_sexpr(SEXPR[i]).sequence


@pytest.mark.parametrize("i", range(len(EXAMPLES)))
def test_example_prints_back(i):
    m, names = parse_text_with_names(EXAMPLES[i])
    text = print_text(m, names)
    assert parse_text(text) == m
    assert print_text(parse_text(text), names) == text


def test_printed_examples_read_naturally():
    m, names = parse_text_with_names(EXAMPLES[4])
    assert print_text(m, names) == (
        "fn sum(n: int) {\n"
        "    if n <= 0 {\n"
        "        return 0\n"
        "    }\n"
        "    return n + sum(n - 1)\n"
        "}\n"
        "\n"
        "fn main() {\n"
        "    print(sum(4))\n"
        "}\n"
    )
    m, names = parse_text_with_names(EXAMPLES[2])
    assert "loop n {" in print_text(m, names)


RUNS = [  # (input, prints, output_vec prefix, output length, executed_nodes)
    ([], ["[print] [5.0]"], [5.0], 1, 25),
    ([], ["[print] [1.0]"], [7.0], 1, 8),
    ([], ["[print] [3.0]"] * 3, [0.0], 1, 36),
    ([1.0] * 896, [], [1.0] * 128, 128, 2),
    ([], ["[print] [10.0]"], [], 0, None),
    ([], ["[print] [32.0]"], [], 0, 10),
]


@pytest.mark.parametrize("i", range(6))
def test_example_runs_as_specified(i):
    from nda.core.link import MemoryResolver, link_module
    from nda.sandbox.runner import run

    linked = link_module(parse_text(EXAMPLES[i]))
    resolver = MemoryResolver()
    resolver.add_linked(linked)
    inp, prints, out, dim, count = RUNS[i]
    r = run(linked.main_sequence(), inp, store=resolver, tier=0)
    assert r.error is None
    assert r.output_log == prints
    assert r.output_vec == out
    assert r.output_dim == dim
    if count is not None:
        assert r.executed_nodes == count
