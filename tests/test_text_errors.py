"""Diagnostics of the text front end: every message form, positions, hints, recovery."""

from __future__ import annotations

import re

import pytest

from nda.core.errors import PARSE_ERROR, ParseError, Span
from nda.syntax.text import MAX_NESTING, parse_text


def errors(src: str):
    with pytest.raises(ParseError) as ei:
        parse_text(src, file="t.nda")
    e = ei.value
    assert e.code == PARSE_ERROR
    for d in e.diagnostics:
        assert d.code == PARSE_ERROR and d.span.file == "t.nda"
    first = e.diagnostics[0]
    assert e.message == f"{first.span.line}:{first.span.col}: {first.message}"
    assert e.span == first.span
    return [(d.span.line, d.span.col, d.message) for d in e.diagnostics], [d.hint for d in e.diagnostics]


# -- lexer: the first error aborts ------------------------------------------------------------

@pytest.mark.parametrize("src, line, col, message", [
    ("fn main() { let x = 1 @ }", 1, 23, "Unexpected character '@'"),
    ("fn main() { x = 'a' }", 1, 17, "Unexpected character '''"),
    ("fn main() {\n  \x00 }", 2, 3, "Unexpected character '\\x00'"),
    ("fn main() { x != !y }", 1, 18, "Unexpected '!'"),
    ("fn main() { \n\n   let s = \"abc }", 3, 12, "Unterminated string literal"),
    ('fn main() { "abc\\', 1, 13, "Unterminated string literal"),
    ('fn main() { let x = "a\\q" }', 1, 23, "Unknown escape sequence '\\q'"),
    ('fn main() { "ok\n\\z" }', 2, 1, "Unknown escape sequence '\\z'"),
    ("fn main() { 4294967296 }", 1, 13, "Invalid integer literal"),
    ("fn main() { 0x100000000 }", 1, 13, "Invalid integer literal"),
    ("fn main() { 0x }", 1, 13, "Invalid integer literal"),
    ("fn main() { 0x_ }", 1, 13, "Invalid integer literal"),
    ("fn main() { 0xfg }", 1, 13, "Invalid integer literal"),
    ("fn main() { 12ab }", 1, 13, "Invalid integer literal"),
    ("fn main() { 0b101 }", 1, 13, "Invalid integer literal"),
    ("fn main() { " + "9" * 5000 + " }", 1, 13, "Invalid integer literal"),
    ("fn main() { 1e }", 1, 13, "Invalid float literal"),
    ("fn main() { 1.5e+ }", 1, 13, "Invalid float literal"),
    ("fn main() { 2.5x }", 1, 13, "Invalid float literal"),
])
def test_lexer_errors(src, line, col, message):
    diags, _ = errors(src)
    assert diags == [(line, col, message)]


def test_lexer_error_aborts_before_parsing():
    diags, _ = errors("fn main() { ) }\n fn g() { @ # }")
    assert diags == [(2, 11, "Unexpected character '@'")]


# -- parser messages ----------------------------------------------------------------------------

@pytest.mark.parametrize("src, expected", [
    ("let x = 1", [(1, 1, "Expected 'fn' keyword at top level")]),
    ("fn () {}", [(1, 4, "Expected function name, found '('")]),
    ("fn main {}", [(1, 9, "Expected '(', found '{'")]),
    ("fn main(x) {}", [(1, 10, "Expected ':', found ')'")]),
    ("fn main(x: int y: int) {}", [(1, 16, "Expected ',' or ')', found identifier 'y'")]),
    ("fn main() -> {}", [(1, 14, "Expected type, found '{'")]),
    ("fn main()", [(1, 10, "Expected '{', found end of input")]),
    ("fn main() { let x = 1", [(1, 22, "Expected '}', found end of input")]),
    ("fn main() { let x = ) }", [(1, 21, "Unexpected ')' in expression")]),
    ("fn main() { 1 + }", [(1, 17, "Unexpected '}' in expression")]),
    ("fn main() { ; }", [(1, 13, "Unexpected ';' in expression")]),
    ("fn main() { else }", [(1, 13, "Unexpected keyword 'else' in expression")]),
    ("fn main() { foo(1) }", [(1, 13, "unknown function 'foo'")]),
    ('fn main() { print("hi") }', [(1, 19, "strings are not supported")]),
    ('fn main() { let "x" = 1 }', [(1, 17, "strings are not supported")]),
    ("fn main() { let = 5 }", [(1, 17, "Expected variable name, found '='")]),
    ("fn main() { let loop = 1 }", [(1, 17, "Expected variable name, found keyword 'loop'")]),
    ("fn main() { print 5 }", [(1, 19, "Expected '(', found integer literal 5")]),
    ("fn main() { print(1, 2) }", [(1, 20, "Expected ')', found ','")]),
    ("fn main() { (1 + 2 }", [(1, 20, "Expected ')', found '}'")]),
    ("fn main() { matrix[x, 2] }", [(1, 20, "Expected integer literal, found identifier 'x'")]),
    ("fn main() { matrix[-1, 2] }", [(1, 20, "Expected integer literal, found '-'")]),
    ("fn main() { matrix(1 2) }", [(1, 22, "Expected ',' or ';', found integer literal 2")]),
    ("fn main() { matrix 1 }", [(1, 20, "Expected '[' or '(', found integer literal 1")]),
    ("fn main() { norm 5 }", [(1, 18, "Expected '[' or '(', found integer literal 5")]),
    ("fn main() { norm[1.5] }", [(1, 18, "Expected integer literal, found float literal 1.5")]),
    ("fn main() { vec[1, 2] }", [(1, 18, "Expected ';' or ']', found ','")]),
    ("fn main() { vec 2 }", [(1, 17, "Expected '[' or '(', found integer literal 2")]),
    ("fn main() { dot(1) }", [(1, 18, "Expected ',', found ')'")]),
    ("fn main() { while x print(x) }", [(1, 21, "Expected '{', found keyword 'print'")]),
    ("fn f() {} fn f() {}", [(1, 14, "duplicate function 'f'")]),
    ("fn main() { x % 2 }", [(1, 15, "Unexpected '%' in expression")]),
])
def test_parser_messages(src, expected):
    diags, _ = errors(src)
    assert diags == expected


def test_messages_describe_tokens_for_people():
    diags, _ = errors("fn main() { let x = 1 +\n}\nfn g(a: int, ) { }\nfn h() { vec[x 3] }")
    msgs = [m for _, _, m in diags]
    assert msgs == ["Unexpected '}' in expression", "Expected parameter name, found ')'",
                    "Expected ';' or ']', found integer literal 3"]
    long_name = "a" * 100
    diags, _ = errors(f"fn main(x: {long_name}) {{}}")
    assert diags[0][2] == f"Expected type, found identifier '{'a' * 39}…'"
    for m in msgs:
        assert not re.search(r"\b(IDENT|INT|FLOAT|EOF|STRING|RParen|LBrace|Token)\b", m)


def test_nesting_limit_is_a_diagnostic_not_a_crash():
    deep = "fn main() { " + "(" * 1000 + "1" + ")" * 1000 + " }"
    diags, _ = errors(deep)
    assert diags[-1][2] == f"nesting exceeds {MAX_NESTING} levels"
    deep_blocks = "fn main() { " + "if 1 { " * 300 + "}" * 301
    diags, _ = errors(deep_blocks)
    # main's block + 255 if-blocks = 256 levels; the condition of the 256th `if` is the 257th
    assert diags == [(1, 13 + 7 * 255 + 3, "nesting exceeds 256 levels")]
    ok = "fn main() { " + "(" * 250 + "1" + ")" * 250 + " }"
    parse_text(ok)


def test_long_flat_inputs_parse_without_recursion():
    m = parse_text("fn main() { x = " + " + ".join(["1"] * 200) + " }")
    assert m.get("main").children[0].value.rhs.value == 1
    # chains nest in the IR without syntactic nesting: parsed iteratively, then refused with
    # the node-nesting limit of every front end (no RecursionError anywhere)
    for src in ("fn main() { x = " + " + ".join(["1"] * 20000) + " }",
                "fn main() { x = " + "-" * 20000 + "x }",
                "fn main() { if 1 {} " + "else if 1 {} " * 3000 + " }"):
        with pytest.raises(ParseError) as e:
            parse_text(src)
        assert e.value.diagnostics[0].message == "node nesting exceeds 256"


# -- hints ---------------------------------------------------------------------------------------

def test_hints_for_misspelt_keywords_and_functions():
    cases = {
        "fnn main() {}": "did you mean 'fn'? functions are declared with 'fn'",
        "function main() {}": "did you mean 'fn'? functions are declared with 'fn'",
        "fn main() { whlie x > 0 { x = x - 1 } }": "'whlie' at 1:13 is not a keyword; did you mean 'while'?",
        "fn main() { if x { } esle { } }": "'esle' at 1:22 is not a keyword; did you mean 'else'?",
        "fn main() { pirnt(1) }": "did you mean 'print'?",
        "fn main() { whlie (1) {} }": "did you mean 'while'?",
        "fn compute() {} fn main() { compte() }": "did you mean 'compute'?",
        "fn main(x: itn) {}": "did you mean 'int'?",
        "fn main() { let loop = 1 }": "'loop' is a keyword and cannot be used as a name",
        "fn main() { if x = 1 { } }": "use '==' to compare",
        'fn main() { print("hi") }': "the language has no string values",
        "fn main() { let x = 1": "the block opened at 1:11 is not closed",
        "fn f() {} fn f() {}": "first defined at 1:4",
    }
    for src, hint in cases.items():
        _, hints = errors(src)
        assert hints[0] == hint, src
    # whlie only suspected for errors on its own line
    diags, hints = errors("fn main() { whlie\n x > 0 { } }")
    assert hints[0] is None


def test_hint_search_is_bounded():
    src = "fn main() { " + " ".join(f"g{i}x()" for i in range(300)) + " }"
    diags, hints = errors(src)
    assert len(diags) == 300
    assert all(m.startswith("unknown function 'g") for _, _, m in diags)


# -- recovery: every error of the file --------------------------------------------------------

def test_recovery_reports_all_errors_in_order():
    src = """fn main() {
  let a = (1 +
  let b = 2
  c = * 3
  print(b)
}
fn g() { q( }
fn h() { ok() }
let z = 1
fn ok() {}
fn bad( { let y = ) }
fn last() { while 1 { break ) } return 0 }
"""
    diags, _ = errors(src)
    assert diags == [
        (3, 3, "Unexpected keyword 'let' in expression"),
        (4, 7, "Unexpected '*' in expression"),
        (7, 10, "unknown function 'q'"),
        (7, 13, "Unexpected '}' in expression"),
        (9, 1, "Expected 'fn' keyword at top level"),
        (11, 9, "Expected parameter name, found '{'"),
        (11, 19, "Unexpected ')' in expression"),
        (12, 29, "Unexpected ')' in expression"),
    ]


def test_recovery_inside_nested_blocks():
    diags, _ = errors("fn main() { if x { let y = } else { let z = ) } print(1 }")
    assert diags == [(1, 28, "Unexpected '}' in expression"), (1, 45, "Unexpected ')' in expression"),
                     (1, 57, "Expected ')', found '}'")]


def test_unclosed_block_before_next_function_is_one_error():
    diags, _ = errors("fn main() { if x { loop 3 {\nfn g() { foo() }")
    assert diags == [(2, 1, "Expected '}', found keyword 'fn'"), (2, 10, "unknown function 'foo'")]


def test_spans_carry_file_and_width():
    with pytest.raises(ParseError) as ei:
        parse_text("fn main() { wobble(1) }", file="w.nda")
    assert ei.value.diagnostics[0].span == Span(1, 13, 1, 19, file="w.nda")
    assert str(ei.value) == "1:13: unknown function 'wobble'"


def test_non_text_source_is_a_parse_error():
    for bad in (None, 42, ["fn"]):
        with pytest.raises(ParseError) as ei:
            parse_text(bad)
        assert ei.value.message.startswith("1:1: source must be text")
