"""The shipped grammars (nda.syntax.grammars) against nda's own parsers and printers, both ways.

- accept: every example that parses, and every program of the random generators printed in
  that syntax, is accepted by the Lark form (lark package) and by the GBNF form (converted to
  Lark by tests/gbnf_lark.py); examples that do not parse are rejected;
- derive: bounded random derivations of each grammar are accepted by nda's parser, or rejected
  only for one of the context-sensitive reasons docs/grammars.md lists.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark import Lark
from lark.exceptions import LarkError

from nda.core.errors import ParseError, UsageError
from nda.syntax.grammars import DIALECTS, SYNTAXES, GrammarError, grammar
from nda.syntax.sexpr import parse_sexpr, print_module, print_sexpr
from nda.syntax.text.lexer import KEYWORDS
from nda.syntax.text.parser import parse_text
from nda.syntax.text.printer import print_text

import progen
import strategies
from gbnf_lark import gbnf_to_lark
from grammar_derive import Deriver, join_tokens
from text_strategies import EXAMPLES as TEXT_EXAMPLES, text_modules

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Why a derivation of a grammar may still be refused (docs/grammars.md, "What the grammars
# cannot express"): message fragments of the parser's diagnostics.
TEXT_ALLOWED = ("unknown function", "duplicate function", "nesting exceeds", "synthetic planes need")
SEXPR_ALLOWED = ("empty plane '_' cannot fill", "duplicate definition", "nesting exceeds",
                 "planes exceed")


@lru_cache(maxsize=None)
def lark_parser(syntax: str) -> Lark:
    if syntax == "text":
        return Lark(grammar("text", "lark"), parser="earley", lexer="basic")
    return Lark(grammar("sexpr", "lark"))


@lru_cache(maxsize=None)
def gbnf_parser(syntax: str) -> Lark:
    return Lark(gbnf_to_lark(grammar(syntax, "gbnf")), parser="earley", lexer="dynamic")


def accepts(p: Lark, text: str) -> bool:
    try:
        p.parse(text)
        return True
    except LarkError:
        return False


def parses(syntax: str, text: str) -> bool:
    try:
        (parse_text if syntax == "text" else parse_sexpr)(text)
        return True
    except ParseError:
        return False


# ---------------------------------------------------------------------------------------------
# the API


def test_grammar_returns_each_shipped_file():
    for s in SYNTAXES:
        for d in DIALECTS:
            g = grammar(s, d)
            assert ("root ::=" in g) if d == "gbnf" else ("\nstart:" in g)
    assert grammar() == grammar("text", "lark")


@pytest.mark.parametrize("args", [("python", "lark"), ("text", "ebnf"), ("", "gbnf")])
def test_bad_syntax_or_dialect_is_a_typed_error(args):
    with pytest.raises(GrammarError) as e:
        grammar(*args)
    assert isinstance(e.value, UsageError) and e.value.code == "INPUT_INVALID"
    assert "expected one of" in str(e.value)


def test_package_data_is_declared():
    import tomllib

    with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as f:
        data = tomllib.load(f)["tool"]["setuptools"]["package-data"]
    assert sorted(data["nda.syntax.grammars"]) == ["*.gbnf", "*.lark"]


# ---------------------------------------------------------------------------------------------
# accept: examples and printed random programs


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.nda")) + sorted(EXAMPLES.glob("*.sexpr")),
                         ids=lambda p: p.name)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_examples_accepted_iff_they_parse(path, dialect):
    syntax = "text" if path.suffix == ".nda" else "sexpr"
    src = path.read_text()
    p = lark_parser(syntax) if dialect == "lark" else gbnf_parser(syntax)
    assert accepts(p, src) == parses(syntax, src)


@pytest.mark.parametrize("src", [s for s in TEXT_EXAMPLES if parses("text", s)])
def test_text_strategy_examples_accepted(src):
    assert accepts(lark_parser("text"), src)
    assert accepts(gbnf_parser("text"), src)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_modules())
def test_printed_text_programs_accepted_by_lark(mn):
    module, names = mn
    src = print_text(module, names)
    assert accepts(lark_parser("text"), src), src


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_modules(max_defs=2, max_depth=2))
def test_printed_text_programs_accepted_by_gbnf(mn):
    module, names = mn
    src = print_text(module, names)
    assert accepts(gbnf_parser("text"), src), src


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(progen.programs())
def test_printed_progen_programs_accepted_by_sexpr_lark(prog):
    module, _inp, _limits = prog
    src = print_module(module, {h: n for h, n in zip(progen.VARS, "xyzi")})
    assert accepts(lark_parser("sexpr"), src), src


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.programs())
def test_printed_node_sequences_accepted_by_sexpr_lark(seq):
    src = print_sexpr(seq)
    assert accepts(lark_parser("sexpr"), src), src


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(progen.programs(max_depth=2).map(lambda p: print_module(p[0])),
                 strategies.programs(max_len=2).map(print_sexpr)))
def test_printed_sexpr_programs_accepted_by_gbnf(src):
    assert accepts(gbnf_parser("sexpr"), src), src


@pytest.mark.parametrize("syntax,src", [
    ("text", "fn let() {}"), ("text", "fn main() { let x = 1 (2) }"),
    ("text", "fn main() { x = 4294967296 }"), ("text", "fn main() { x = 1x }"),
    ("text", "fn main() { x = 1.5e }"), ("text", "fn main() { letx = print }"),
    ("text", 'fn main() { print("hi") }'), ("text", "fn main() { a = b % c }"),
    ("sexpr", "(int5)"), ("sexpr", "(int 2147483648)"), ("sexpr", "(matrix 2 8:sign ff :extra 00)"),
    ("sexpr", "(module (def f (int 1))) (int 1)"), ("sexpr", "(scope (then))"),
    ("sexpr", "(cmp eqq (int 1) (int 2))"), ("sexpr", "(norm 8 :weight f :bias 00)"),
    ("sexpr", "(int 1"), ("sexpr", "(loop -1)"),
])
def test_near_misses_rejected_by_both_dialects(syntax, src):
    assert not accepts(lark_parser(syntax), src)
    assert not accepts(gbnf_parser(syntax), src)


@pytest.mark.parametrize("syntax,src", [
    ("text", "fn main() { let x = 1; (2) }"), ("text", "fn main() { letter = 1 intx = 2 x = int(3) }"),
    ("text", "fn main() { print(0)\n -1\n loop 2 {} (3) }"),
    ("text", "fn main() { x = 4294967295 y = 0xFFFFFFFF z = -2.5e-3 }"),
    ("sexpr", "(int -2147483648) (int 0x80000000) (float -inf) (float .5)"),
    ("sexpr", "(let int (int 1));c\n(loop 5(int 1)) ; end"),
    ("sexpr", "(matrix 2 8 :extra 00 :scale -128 :sign ff)"),
])
def test_corner_cases_accepted_by_both_dialects(syntax, src):
    assert parses(syntax, src)
    assert accepts(lark_parser(syntax), src)
    assert accepts(gbnf_parser(syntax), src)


def test_text_identifiers_exclude_exactly_the_keywords():
    rng = random.Random(7)
    words = sorted(KEYWORDS) + [k + "x" for k in KEYWORDS] + [k[:-1] for k in KEYWORDS if len(k) > 1]
    words += ["".join(rng.choice("abcdefilmnoprstuvwx_") for _ in range(rng.randint(1, 7))) for _ in range(60)]
    for w in words:
        src = f"fn main() {{ {w} = 1 }}"
        expected = w not in KEYWORDS
        assert accepts(lark_parser("text"), src) == expected, w
        assert accepts(gbnf_parser("text"), src) == expected, w


# ---------------------------------------------------------------------------------------------
# derive: random derivations of the grammars


def _int_text(rng: random.Random, lo: int, hi: int) -> str:
    r = rng.random()
    v = rng.randint(max(lo, -3), min(hi, 20)) if r < 0.7 else (rng.choice([lo, hi]) if r < 0.8 else rng.randint(lo, hi))
    return str(v)


def _hex(rng, n):
    return "".join(rng.choice("0123456789abcdefABCDEF") for _ in range(n))


_NAMES = ["x", "y", "n", "f", "g", "main", "letter", "intx", "_t", "a1", "loops", "iff"]

TEXT_SAMPLERS = {
    "NAME": lambda r: r.choice(_NAMES),
    "INT": lambda r: _int_text(r, 0, 2**32 - 1) if r.random() < 0.9 else "0x" + _hex(r, r.randint(1, 8)),
    "FLOAT": lambda r: r.choice(["1.5", "0.25", "2e3", "1.0e-3", "3.25E+2", "1e39", "0.0"]),
}
SEXPR_SAMPLERS = {
    "IDENT": lambda r: r.choice(_NAMES + ["int", "module", "def"]),
    "HEX64": lambda r: "#x:" + _hex(r, 16),
    "TARGET": lambda r: r.choice(["@f", "@g", "@main", "#g:0", "#g:3", "#x:" + _hex(r, 16), "#" + _hex(r, 64)]),
    "PLANE": lambda r: "_" if r.random() < 0.1 else _hex(r, 2 * r.randint(1, 4)),
    "F32": lambda r: r.choice(["1.5", "-0.0", "inf", "-inf", "f32:0x7fc00000", "1e3", ".5", "3.", "+2"]),
    "I8": lambda r: _int_text(r, -128, 127),
    "I32": lambda r: _int_text(r, -2**31, 2**31 - 1) if r.random() < 0.9 else "0x" + _hex(r, r.randint(1, 8)),
    "U16": lambda r: _int_text(r, 0, 2**16 - 1),
    "U32": lambda r: _int_text(r, 0, 2**32 - 1),
    "U64": lambda r: _int_text(r, 0, 2**64 - 1) if r.random() < 0.5 else "#x:" + _hex(r, 16),
    "WS": lambda r: r.choice([" ", "\n", "  ", " ; c\n"]),
    "LAST_COMMENT": lambda r: "; end",
}
for _t, _words in {"CMP_OP": "eq ne lt gt le ge", "VECOP_OP": "silu negate abs reduce_sum",
                   "BITWISE_OP": "and or xor not shl shr", "MATH_OP": "add sub mul div",
                   "MATHFUNC_OP": "sin cos sqrt exp", "ATOMIC_OP": "cas faa",
                   "TYPE_KIND": "int float vector", "BINARY_HEAD": "add poke gemv dot",
                   "UNARY_HEAD": "print return peek alloc free"}.items():
    SEXPR_SAMPLERS[_t] = (lambda ws: lambda r: r.choice(ws))(_words.split())


def _close_calls(src: str) -> str:
    """Give repeated function definitions fresh names and append `fn NAME() {}` for every
    called name the program does not define (still a sentence of the grammar), so that most
    derivations are not refused only for a duplicate or an unknown function."""
    seen: dict[str, int] = {}

    def rename(m):
        n = m.group(2)
        seen[n] = seen.get(n, 0) + 1
        return m.group(1) + (n if seen[n] == 1 else f"{n}_dup{seen[n]}")

    src = re.sub(r"(\bfn\s+)([A-Za-z_]\w*)", rename, src)
    defined = set(re.findall(r"\bfn\s+([A-Za-z_]\w*)", src))
    called = set(re.findall(r"([A-Za-z_]\w*)\s*\(", src)) - KEYWORDS - defined
    return src + "".join(f"\nfn {n}() {{}}" for n in sorted(called))


def _check(syntax: str, src: str, outcomes: dict) -> None:
    try:
        (parse_text if syntax == "text" else parse_sexpr)(src)
        outcomes["ok"] += 1
    except ParseError as e:
        allowed = TEXT_ALLOWED if syntax == "text" else SEXPR_ALLOWED
        msgs = [d.message for d in e.diagnostics]
        assert all(any(a in m for a in allowed) for m in msgs), (src, msgs)
        outcomes["refused"] += 1


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_lark_derivations_are_accepted_by_the_parser(syntax):
    rng = random.Random(20261206)
    p = lark_parser(syntax)
    d = Deriver(p, TEXT_SAMPLERS if syntax == "text" else SEXPR_SAMPLERS)
    outcomes = {"ok": 0, "refused": 0}
    for i in range(300):
        toks = d.derive("start", rng, max_depth=rng.randint(4, 14))
        src = join_tokens(toks, rng) if syntax == "text" else "".join(t for _, t in toks)
        assert accepts(p, src), src  # the derivation is a sentence of the grammar
        if syntax == "text":
            src = _close_calls(src)
        _check(syntax, src, outcomes)
    assert outcomes["ok"] >= 200, outcomes


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_gbnf_derivations_are_accepted_by_the_parser_and_the_lark_form(syntax):
    rng = random.Random(61202026)
    d = Deriver(gbnf_parser(syntax), {})
    outcomes = {"ok": 0, "refused": 0}
    for i in range(120):
        src = "".join(t for _, t in d.derive("start", rng, max_depth=rng.randint(10, 40)))
        if syntax == "text":
            src = _close_calls(src)
        assert accepts(lark_parser(syntax), src), src
        _check(syntax, src, outcomes)
    assert outcomes["ok"] >= 60, outcomes


# ---------------------------------------------------------------------------------------------
# the CLI verb


def test_cli_grammar_prints_and_writes(tmp_path):
    import json

    from click.testing import CliRunner

    from nda.cli.app import main

    r = CliRunner().invoke(main, ["grammar", "--syntax", "text", "--dialect", "gbnf"])
    assert r.exit_code == 0 and r.output == grammar("text", "gbnf")
    r = CliRunner().invoke(main, ["grammar", "--syntax", "sexpr", "--json"])
    obj = json.loads(r.output)
    assert r.exit_code == 0 and obj["ok"] and obj["grammar"] == grammar("sexpr", "lark")
    assert obj["start_rule"] == "start"
    out = tmp_path / "g.gbnf"
    r = CliRunner().invoke(main, ["grammar", "--syntax", "sexpr", "--dialect", "gbnf", "-o", str(out), "--json"])
    assert r.exit_code == 0 and out.read_text() == grammar("sexpr", "gbnf")
    r = CliRunner().invoke(main, ["grammar", "--syntax", "python"])
    assert r.exit_code == 2
    r = CliRunner().invoke(main, ["grammar", "-o", str(tmp_path / "no" / "x"), "--json"])
    assert r.exit_code == 2 and json.loads(r.output)["ok"] is False
