"""Regression tests for the security review (docs/security.md): hostile programs must never
crash the host, hold unbounded memory, or escape a limit."""

import subprocess
import sys
import textwrap

DEEP_AFTER_CALL = textwrap.dedent("""
    import sys
    from nda import ir, sandbox
    from nda.link import link_module, MemoryResolver
    from nda.sexpr import parse_sexpr
    base = sys.getrecursionlimit()
    u = parse_sexpr("(module (def f (scope (int 1))) (def main (scope (call @f))))")
    linked = link_module(u.module); st = MemoryResolver(); st.add_linked(linked)
    for tier in ("interp", "closure", "native"):
        assert sandbox.run(linked.main_sequence(), [1.0], store=st, tier=tier).output_vec == [1.0]
    assert sys.getrecursionlimit() == base, "recursion limit left raised"
    n = ir.Int(1)
    for _ in range(100000):
        n = ir.Add(n, ir.Int(1))
    for tier in ("interp", "closure", "native"):
        r = sandbox.run((ir.Let(ir.name_hash("x"), n),), [1.0], tier=tier)
        assert r.error_code == "VALIDATION_ERROR" and not r.panicked, (r.error_code, r.error)
        assert r.error == "node nesting exceeds 256"
    assert sys.getrecursionlimit() == base
    print("ok")
""")


def test_deep_program_after_a_call_is_rejected_not_a_crash():
    """Review #1: a Call used to raise the recursion limit for good; a 10^5-deep program then
    overflowed the C stack (SIGSEGV) while its tuple was hashed for a cache key."""
    out = subprocess.run([sys.executable, "-c", DEEP_AFTER_CALL], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_sexpr_plane_expansion_is_budgeted():
    """Review #2: 39 bytes of S-expression used to expand to 1 GiB of planes."""
    import pytest

    from nda.errors import ParseError
    from nda.sexpr import parse_sexpr

    with pytest.raises(ParseError) as e:
        parse_sexpr("(matrix 65535 65535 :sign aa :extra 55)")
    assert "planes exceed" in str(e.value) and e.value.diagnostic().span.col == 27
    small = parse_sexpr("(matrix 4 8 :sign aa :extra 55)", max_plane_bytes=8).sequence[0]
    assert small.sign == b"\xaa" * 4
    with pytest.raises(ParseError):
        parse_sexpr("(matrix 4 8 :sign aa :extra 55)", max_plane_bytes=7)


def test_sexpr_deep_nesting_with_a_raised_max_depth():
    """Review #12: a raised max_depth used to hit Python's recursion limit (uncaught)."""
    import pytest

    from nda.errors import ParseError
    from nda.sexpr import parse_sexpr

    src = "(scope " * 900 + ")" * 900
    node = parse_sexpr(src, max_depth=1000).sequence[0]
    from nda import ir
    assert ir.node_depth(node) == 900
    with pytest.raises(ParseError):
        parse_sexpr(src)


def test_cli_refuses_a_huge_dim_before_allocating():
    """Review #11: --dim 10^9 used to allocate gigabytes before max_input_len was checked."""
    import json
    from pathlib import Path

    from click.testing import CliRunner

    from nda.cli import main

    ex = Path(__file__).resolve().parents[1] / "examples" / "counter.sexpr"
    r = CliRunner().invoke(main, ["run", str(ex), "--dim", "1000000000", "--json"])
    assert r.exit_code == 2
    assert "max_input_len" in json.loads(r.output)["error"]


def test_text_operator_chains_are_bounded_by_node_nesting(tmp_path):
    """Review #8: 10^5-long operator / unary / else-if chains parse without syntactic nesting
    but lower to 10^5-deep trees; they are now a typed parse error at the function."""
    import json

    import pytest
    from click.testing import CliRunner

    from nda.cli import main
    from nda.errors import ParseError
    from nda.text import parse_text

    chains = {
        "binary": "fn main() { let x = 1" + " + 1" * 100000 + " }",
        "unary": "fn main() { let x = " + "-" * 100000 + "1 }",
        "else-if": "fn main() { let x = 1; if x == 1 { x = 2 }" + " else if x == 1 { x = 2 }" * 3000 + " }",
    }
    for what, src in chains.items():
        with pytest.raises(ParseError) as e:
            parse_text(src)
        assert e.value.diagnostics[0].message == "node nesting exceeds 256", what
        f = tmp_path / f"{what}.nda"
        f.write_text(src)
        for verb in (["run"], ["fmt", "--to", "sexpr"], ["check"]):
            r = CliRunner().invoke(main, [*verb, str(f), "--json"])
            d = json.loads(r.output.splitlines()[0])
            assert r.exit_code in (1, 2) and d["ok"] is False, (what, verb, r.output[:300])
            assert "node nesting exceeds 256" in r.output, (what, verb)
    assert parse_text("fn main() { let x = 1" + " + 1" * 200 + " }").defs[0].name == "main"
