"""The public API in `nda/__init__.py`: parse, check, run, Store, Limits, Result."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import nda
from nda.core import ir
from nda.core.errors import DecodeError, ParseError, UsageError

COUNT = "(let s (int 0)) (loop 5 (store s (add (load s) (int 1)))) (print (load s))"
TEXT = "fn main() {\n    let total = 0;\n    loop 4 { total = total + 2; }\n    print(total);\n}\n"


def test_import_nda_is_cheap_and_lists_the_api():
    code = ("import sys, nda; assert 'nda.sandbox.runner' not in sys.modules; "
            "assert 'numpy' not in sys.modules; print(sorted(nda.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for name in ("parse", "check", "run", "Store", "Limits", "Result", "Program", "CheckResult",
                 "run_many", "grammar", "TokenConstraint"):
        assert name in out.stdout
    with pytest.raises(AttributeError):
        nda.no_such_name  # noqa: B018


def test_parse_guesses_the_kind():
    p = nda.parse(COUNT)
    assert p.kind == "sexpr" and len(p.sequence) == 3 and p.module is None
    t = nda.parse(TEXT)
    assert t.kind == "text" and t.functions == ["main"]
    assert nda.parse(TEXT, "text").hash == t.hash
    assert len(p.hash) == 64 and p.hash == nda.parse(COUNT, "sexpr").hash
    # bytes are binary v2, and round trip
    b = nda.parse(p.to_binary())
    assert b.kind == "binary" and b.sequence == p.sequence
    assert nda.parse(t.to_sexpr()).hash == t.hash


def test_parse_paths_and_file_names(tmp_path):
    f = tmp_path / "prog.nda"
    f.write_text(TEXT)
    assert nda.parse(f).kind == "text"
    g = tmp_path / "prog.txt"
    g.write_text(COUNT)
    assert nda.parse(g, "sexpr").sequence == nda.parse(COUNT).sequence
    # file= decides the kind and names the source in errors
    with pytest.raises(ParseError) as e:
        nda.parse("(let x", file="broken.sexpr")
    assert e.value.span is not None and e.value.span.file == "broken.sexpr"


def test_parse_errors_are_typed():
    with pytest.raises(ParseError) as e:
        nda.parse("fn main() { let = 3; }")
    assert e.value.span is not None and e.value.span.line == 1
    with pytest.raises(DecodeError):
        nda.parse(b"NDA2\x02\x09")
    with pytest.raises(UsageError):
        nda.parse(COUNT, "klingon")
    with pytest.raises(UsageError):
        nda.parse(b"\x00", "sexpr")
    with pytest.raises(UsageError):
        nda.parse(42)


def test_check_reports_findings_with_codes_and_spans():
    ok = nda.check(COUNT, input_len=0)
    assert ok.ok and ok.errors == []
    bad = nda.check("(load zz)", input_len=0)
    assert not bad.ok and bad.stage == "gate"
    d = bad.errors[0]
    assert d.span is not None and d.span.line == 1
    assert bad.to_dict()["ok"] is False
    unparsable = nda.check("(let x")
    assert not unparsable.ok and unparsable.stage == "parse"
    # shapes are checked against the input width when it is known, and only then
    block = (Path(__file__).resolve().parents[1] / "examples" / "block4.sexpr").read_text()
    assert nda.check(block, input_len=896).ok and nda.check(block).ok
    assert not nda.check(block, input_len=100).ok
    assert not nda.check("(loop 100000 (int 1))", input_len=0, limits=nda.Limits(fuel=10)).ok


def test_run_accepts_every_program_form_and_input():
    want = [5.0]
    for prog in (COUNT, nda.parse(COUNT), nda.parse(COUNT).sequence, list(nda.parse(COUNT).sequence)):
        r = nda.run(prog, [])
        assert r.output_vec == want and r.output_log == ["[print] [5.0]"]
        assert isinstance(r, nda.Result) and r.ok
        assert isinstance(r.output, np.ndarray) and r.output.dtype == np.float32
        assert r.output.tolist() == r.output_vec
    assert nda.run(ir.Int(7), []).output_vec == [7.0]
    r = nda.run("(load x)", np.arange(3, dtype=np.float64))
    assert not r.ok and r.error_code == "UNDEFINED_VARIABLE" and r.output.shape == (0,)
    # the input is the conditioning vector (default 896 ones)
    assert nda.run("(int 1)").output_vec == [1.0]
    with pytest.raises(UsageError):
        nda.run(COUNT, [[1, 2], [3, 4]])


def test_run_limits_and_tiers_agree():
    res = {t: nda.run(COUNT, [], tier=t, limits=nda.Limits(fuel=10)) for t in ("interp", "closure", "auto")}
    assert {r.error_code for r in res.values()} == {"FUEL_EXHAUSTED"}
    assert {r.executed_nodes for r in res.values()} == {10}
    assert nda.run(TEXT, [], tier="interp").output_log == ["[print] [8.0]"]


def test_store_commit_get_log(tmp_path):
    path = tmp_path / "s.db"
    with nda.Store.open(str(path)) as store:
        c = store.commit(COUNT, message="five", input=[])
        assert c.ok and len(c.root) == 32
        assert store.log()[-1].message == "five"
        back = store.get(c.root.hex())
        assert back.sequence == nda.parse(COUNT).sequence
        assert nda.run(back, []).output_vec == [5.0]
        rejected = store.commit("(load nope)", message="bad", input=[])
        assert not rejected.ok and rejected.stage == "gate"
        assert len(store.log()) == 1
        assert store.verify() == []
    # the context manager closed it; reopening sees the commit
    with nda.Store.open(str(path)) as store:
        assert [e.message for e in store.log()] == ["five"]


def test_programs_and_results_draw_themselves(monkeypatch, tmp_path):
    prog = nda.parse(TEXT)
    assert "Loop" in prog.to_dot() and "total" in prog.to_dot()
    html = nda.run(prog, [])._repr_html_()
    ET.fromstring(html)  # well-formed
    assert "[print] [8.0]" in html
    if shutil.which("dot") is not None:
        svg = prog._repr_svg_()
        assert ET.fromstring(svg).tag.endswith("svg") and "Loop" in svg
    monkeypatch.setenv("PATH", str(tmp_path))  # no Graphviz: the notebook falls back to text
    assert prog._repr_svg_() is None


def test_store_functions_are_called_by_name(tmp_path):
    lib = "fn sq(x: int) -> int {\n    return x * x;\n}\nfn main() {\n    print(sq(3));\n}\n"
    with nda.Store.open(str(tmp_path / "s.db")) as store:
        c = store.commit(lib, message="lib", input=[], namespace="")
        assert c.ok and store.resolve_name("sq") is not None and store.resolve_name("main") is None
        user = "fn main() {\n    print(sq(4));\n}\n"
        assert nda.run(user, [], store=store).output_log == ["[print] [16.0]"]
        assert nda.check(user, input_len=0, store=store).ok
        assert nda.parse(user, store=store).hash == nda.parse(user, store=store).hash
        bad = nda.check("fn main() {\n    print(sqq(4));\n}\n", input_len=0, store=store)
        assert not bad.ok and "sq" in " ".join(d.hint or "" for d in bad.diagnostics)
        again = store.commit(user, message="user", input=[], name="user")
        assert again.ok and store.resolve_name("user") == again.root
        with pytest.raises(ParseError, match="unknown function 'sq'"):
            nda.parse(user)  # without the store, `sq` is unknown


def test_run_many_is_the_public_batch_entry():
    from nda.batch import run_many

    assert nda.run_many is run_many
    out = list(nda.run_many([COUNT, "(load x)", "(let"], [[]] * 3, backend="serial"))
    assert [r.index for r in out] == [0, 1, 2]
    assert out[0].ok and out[0].output_log == ["[print] [5.0]"]
    assert out[0].program_hash == nda.parse(COUNT).hash
    assert out[1].error_code == "UNDEFINED_VARIABLE" and out[2].error_code == "PARSE_ERROR"
