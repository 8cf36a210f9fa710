"""`nda fmt` across every source and target format, and --help / --json on every verb."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nda.cli.app import main
from nda.pipeline.load import load_path

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"
EXT = {"text": ".nda", "sexpr": ".sexpr", "binary": ".ndab"}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_json(out):
    lines = [l for l in out.splitlines() if l.strip()]
    assert len(lines) == 1, out
    return json.loads(lines[0])


def h2(path) -> str:
    r = invoke("hash", path, "--json")
    assert r.exit_code == 0, r.output
    return one_json(r.stdout)["program"]["h2"]


def fn_addresses(path) -> dict:
    return {f["name"]: f["address"] for f in one_json(invoke("hash", path, "--json").stdout)["functions"]}


# ---------------------------------------------------------------------------------------------
# conversions


TEXTUAL = ["counter.nda", "recursion.nda", "fibonacci.nda", "factorial.nda", "block4.nda",
           "counter.sexpr", "recursion.sexpr"]


@pytest.mark.parametrize("name", TEXTUAL)
@pytest.mark.parametrize("to", ["text", "sexpr", "binary"])
def test_every_conversion_keeps_the_program(tmp_path, name, to):
    src = EX / name
    out = tmp_path / ("converted" + EXT[to])
    r = invoke("fmt", src, "--to", to, "-o", out)
    assert r.exit_code == 0, r.output
    assert h2(out) == h2(src)
    # a plain sequence becomes `fn main` in text, whose address is the program's hash
    assert fn_addresses(out) == (fn_addresses(src) or ({"main": h2(src)} if to == "text" else {}))
    # and back again to every format from the converted file
    for back in ("text", "sexpr", "binary") if to != "binary" else ("sexpr", "binary"):
        again = tmp_path / ("again" + EXT[back])
        assert invoke("fmt", out, "--to", back, "-o", again).exit_code == 0
        assert h2(again) == h2(src)


def test_text_source_prints_its_own_names():
    r = invoke("fmt", EX / "fibonacci.nda", "--to", "text")
    assert r.exit_code == 0
    assert "fn fib(n: int) -> int {" in r.stdout and "let t = next(a, b)" in r.stdout and "loop n {" in r.stdout
    r = invoke("fmt", EX / "fibonacci.nda", "--to", "sexpr")
    assert "#x:" not in r.stdout and "(let t (scope (load a) (load b) (call @next)))" in r.stdout
    # the loop counter the lowering introduced is named too
    assert "(let _loop_cnt_0 (load n))" in r.stdout


def test_text_to_text_is_a_fixed_point(tmp_path):
    first = invoke("fmt", EX / "recursion.nda", "--to", "text").stdout
    p = tmp_path / "r.nda"
    p.write_text(first)
    assert invoke("fmt", p, "--to", "text").stdout == first
    assert first.startswith("fn sum(n: int) -> int {\n    if n <= 0 {")  # types as written


def test_binary_module_keeps_its_functions(tmp_path):
    b = tmp_path / "fib.ndab"
    assert invoke("fmt", EX / "fibonacci.nda", "--to", "binary", "-o", b).exit_code == 0
    r = invoke("fmt", b, "--to", "sexpr")
    assert r.exit_code == 0
    assert r.stdout.startswith("(module\n") and "(call @next)" in r.stdout and "(call @fib)" in r.stdout
    s = tmp_path / "fib.sexpr"
    s.write_text(r.stdout)
    assert h2(s) == h2(EX / "fibonacci.nda") and fn_addresses(s) == fn_addresses(b)
    loaded = load_path(str(b))
    assert [d.name for d in loaded.raw_module.defs] == [d.name for d in loaded.module.defs]


def test_binary_to_text_needs_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    b = tmp_path / "c.ndab"
    assert invoke("fmt", EX / "counter.nda", "--to", "binary", "-o", b).exit_code == 0
    r = invoke("fmt", b, "--to", "text", "--json")
    d = one_json(r.stdout)
    assert r.exit_code == 1 and not d["ok"] and "no name known" in d["error"]
    # a commit records the names in the store's string dictionary; fmt then finds them
    assert invoke("commit", EX / "counter.nda", "--dim", "0").exit_code == 0
    r = invoke("fmt", b, "--to", "text")
    assert r.exit_code == 0 and r.stdout == invoke("fmt", EX / "counter.nda", "--to", "text").stdout


def test_binary_goes_to_stdout_when_piped_and_hex_with_json(tmp_path):
    r = invoke("fmt", EX / "counter.sexpr", "--to", "binary")  # CliRunner's stdout is not a tty
    assert r.exit_code == 0 and r.stdout_bytes.startswith(b"NDA2")
    p = tmp_path / "piped.ndab"
    p.write_bytes(r.stdout_bytes)
    assert h2(p) == h2(EX / "counter.sexpr")
    d = one_json(invoke("fmt", EX / "counter.sexpr", "--to", "binary", "--json").stdout)
    assert d["ok"] and bytes.fromhex(d["hex"]) == r.stdout_bytes and d["bytes"] == len(r.stdout_bytes)
    out = tmp_path / "o.ndab"
    d = one_json(invoke("fmt", EX / "counter.sexpr", "--to", "binary", "-o", out, "--json").stdout)
    assert d == {"ok": True, "format": "binary", "output": str(out), "bytes": len(r.stdout_bytes)}


def test_text_and_json_outputs(tmp_path):
    d = one_json(invoke("fmt", EX / "counter.sexpr", "--to", "text", "--json").stdout)
    assert d["ok"] and d["format"] == "text" and d["text"].startswith("fn main() {\n    let s = 0\n")
    out = tmp_path / "c.nda"
    d = one_json(invoke("fmt", EX / "counter.sexpr", "--to", "text", "-o", out, "--json").stdout)
    assert d["output"] == str(out) and out.read_text().startswith("fn main()")


def test_inexpressible_in_text_fails_cleanly():
    # block4.sexpr's planes (sign aa, extra 55) are not the synthetic ones text can spell
    r = invoke("fmt", EX / "block4.sexpr", "--to", "text", "--json")
    d = one_json(r.stdout)
    assert r.exit_code == 1 and d["ok"] is False
    assert "only the synthetic planes of matrix[r, c] have a text form" in d["error"]
    r = invoke("fmt", EX / "machine.sexpr", "--to", "text")
    assert r.exit_code == 1 and "Syscall" in r.stderr and "has no text syntax" in r.stderr


def test_fmt_input_errors():
    r = invoke("fmt", EX / "errors.nda", "--to", "sexpr", "--json")
    d = one_json(r.stdout)
    assert r.exit_code == 2 and d["error_code"] == "PARSE_ERROR" and len(d["diagnostics"]) == 3
    assert invoke("fmt", EX / "counter.nda", "--to", "yaml").exit_code == 2


# ---------------------------------------------------------------------------------------------
# every verb: --help, and --json accepted and answered with exactly one JSON object


def _leaves(group, prefix=()):
    import click

    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _leaves(cmd, prefix + (name,))
        else:
            yield prefix + (name,), cmd


def test_every_verb_has_help_and_a_json_option():
    for path, cmd in _leaves(main):
        name = " ".join(path)
        r = invoke(*path, "--help")
        assert r.exit_code == 0 and "Usage:" in r.stdout, name
        if name == "mcp":  # a stdio protocol server: its stdout is JSON-RPC, there is no --json
            assert not any("--json" in p.opts for p in cmd.params)
            continue
        assert "--json" in r.stdout, name
        assert any("--json" in p.opts for p in cmd.params), name


def test_every_verb_answers_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    vec = tmp_path / "v.jsonl"
    from nda.pipeline.conformance import vector_path

    spec_vectors = vector_path("spec")
    vec.write_text("".join(spec_vectors.read_text().splitlines(keepends=True)[:3]))
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"id": 1, "source": "(int 1)"}\n')
    root = {}

    def committed():
        return root["root"]

    calls = [
        ("run", lambda: [EX / "counter.nda", "--dim", "0"], 0),
        ("check", lambda: [EX / "typo.nda"], 1),
        ("fmt", lambda: [EX / "counter.nda"], 0),
        ("hash", lambda: [EX / "fibonacci.nda"], 0),
        ("commit", lambda: [EX / "counter.nda", "--dim", "0", "--name", "counter"], 0),
        ("show", lambda: [committed(), "--format", "text"], 0),
        ("graph", lambda: ["counter"], 0),
        ("log", lambda: [], 0),
        ("verify", lambda: [], 0),
        ("triples", lambda: [], 0),
        ("names", lambda: [], 0),
        ("callers", lambda: ["counter"], 0),
        ("deps", lambda: [committed()[:12]], 0),
        ("export-sitemap", lambda: [tmp_path / "exported"], 0),
        ("import-sitemap", lambda: [tmp_path / "exported", "--store", tmp_path / "imported.db"], 0),
        ("bench", lambda: ["block4", "--runs", "1", "--tier", "interp"], 0),
        ("conformance", lambda: ["--tier", "interp", vec], 0),
        ("grammar", lambda: ["--syntax", "sexpr", "--dialect", "gbnf"], 0),
        ("batch", lambda: [jobs, "--backend", "serial"], 0),
    ]
    assert {c[0] for c in calls} <= set(main.commands)
    # every verb that answers on stdout is called (mcp speaks the protocol there; tokens is a group)
    assert set(main.commands) - {c[0] for c in calls} <= {"mcp", "tokens"}
    for verb, args, want in calls:
        r = invoke(verb, *args(), "--json")
        d = one_json(r.stdout)
        assert r.exit_code == want, (verb, r.output)
        if verb == "commit":
            root["root"] = d["root"]
        assert isinstance(d, dict) and d.get("ok") is (want == 0), (verb, d)
    # usage errors are JSON too
    for verb in main.commands:
        r = invoke(verb, "--no-such-flag", "--json")
        assert r.exit_code == 2 and one_json(r.stdout)["ok"] is False, verb
