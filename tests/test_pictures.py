"""Pictures (issue 13 part 3): programs and call graphs as DOT and SVG, results as HTML, the
benchmark plot, and the CLI verbs that draw them (`nda show --format dot|svg`, `nda graph`,
`nda bench --plot`)."""

import json
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from nda.cli.app import main
from nda.core import ir
from nda.core.link import MemoryResolver, link_module
from nda.sandbox.runner import SandboxResult, run
from nda.syntax import draw
from nda.syntax.sexpr import parse_sexpr

from test_sandbox import ONE_OF_EACH

SVG = "{http://www.w3.org/2000/svg}"

# SVG needs Graphviz's `dot`, a system program pip cannot install. Without it these tests are
# skipped with the install step; CI installs it and sets NDA_REQUIRE_DOT=1, so there they run.
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None and not os.environ.get("NDA_REQUIRE_DOT"),
    reason="Graphviz's `dot` is not installed: apt-get install graphviz")
KIND_NAMES = sorted(c.__name__ for c in ir.NODE_CLASSES)
MODULE = """(module
  (def main (scope (print (scope (int 4) (call @sum))) (call @helper)))
  (def helper (scope (int 2)))
  (def sum (scope (let n (scope)) (if (scope) (then))
                  (if (cmp le (load n) (int 0)) (then (return (int 0))))
                  (return (add (load n) (scope (math sub (load n) (int 1)) (call @sum)))))))"""
LOOPS = ("(let s (int 0)) (let j (int 0)) (while (cmp lt (load j) (int 9))"
         " (if (cmp gt (load s) (int 5)) (then (break))) (store j (add (load j) (int 1)))) (load s)")


def dot_nodes(dot: str) -> dict[str, str]:
    """id → label of every node statement of DOT text."""
    return {m.group(1): m.group(2) for m in re.finditer(r'^\s*(\w+) \[label="((?:[^"\\]|\\.)*)"', dot, re.M)}


def dot_edges(dot: str) -> list[tuple[str, str, str]]:
    """(tail, head, attributes) of every edge statement."""
    return [(m.group(1), m.group(2), m.group(3) or "")
            for m in re.finditer(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?;$", dot, re.M)]


def svg_texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [t.text or "" for t in root.iter(SVG + "text")]


# ---------------------------------------------------------------------------------------------
# DOT


def test_dot_draws_every_kind_once_with_its_group():
    dot = draw.program_dot(ONE_OF_EACH)
    labels = dot_nodes(dot)
    kinds = [lab.split("\\n")[0] for nid, lab in labels.items() if nid.startswith("n")]
    assert set(kinds) == set(KIND_NAMES)
    assert sum(1 for _ in (n for root in ONE_OF_EACH for n in ir.walk(root))) == len(kinds)
    for kind in KIND_NAMES:
        assert f'class="nda-{kind}"' in dot
    # the top-level statements hang off the program box, in order, linked by `next`
    top = [t for t, h, _ in dot_edges(dot) if t == "program"]
    assert len(top) == len(ONE_OF_EACH)
    nexts = [(t, h) for t, h, a in dot_edges(dot) if 'label="next"' in a]
    assert len(nexts) >= len(ONE_OF_EACH) - 1
    assert dot == draw.program_dot(ONE_OF_EACH)  # deterministic


def test_dot_fields_and_control_edges():
    unit = parse_sexpr(LOOPS)
    dot = draw.program_dot(unit.sequence, unit.names)
    labels = dot_nodes(dot)
    edges = dot_edges(dot)
    by_label = {}
    for nid, lab in labels.items():
        by_label.setdefault(lab, []).append(nid)
    (while_id,) = by_label["While"]
    (break_id,) = by_label["Break"]
    assert "Let\\ns" in by_label and "Compare\\nlt" in by_label and "Int\\n9" in by_label
    assert any(t == break_id and h == while_id and 'label="break"' in a for t, h, a in edges)
    (store_id,) = by_label["Store\\nj"]  # last statement of the while body
    assert any(t == store_id and h == while_id and 'label="repeat"' in a for t, h, a in edges)
    assert any(t == while_id and 'label="cond"' in a for t, h, a in edges)
    assert sum(1 for t, h, a in edges if t == while_id and 'label="body"' in a) == 2


def test_dot_module_calls_go_into_def_clusters_and_store_calls_are_named():
    unit = parse_sexpr(MODULE)
    for program in (unit.module, link_module(unit.module)):
        dot = draw.program_dot(program, unit.names)
        assert {"fn main", "fn helper", "fn sum"} <= set(re.findall(r'label="(fn \w+)"', dot))
        calls = [a for t, h, a in dot_edges(dot) if 'label="calls"' in a]
        assert len(calls) == 3  # main → sum, main → helper, sum → sum
        assert sum("lhead=" in a for a in calls) == 2  # the recursive call stays in its cluster
        assert "(store)" not in dot
    stored = (ir.Call(ir.Hash32(b"\x11" * 32)), ir.Call(ir.Legacy64(5)), ir.Call(ir.Hash32(b"\x11" * 32)))
    dot = draw.program_dot(stored, call_label=lambda t: "@lib" if type(t) is ir.Hash32 else None)
    labels = dot_nodes(dot)
    assert sorted(lab for nid, lab in labels.items() if nid.startswith("s")) == \
        ["#x:0000000000000005\\n(store)", "lib\\n(store)"]
    assert [lab for lab in labels.values() if lab.startswith("Call")].count("Call\\n@lib") == 2


def test_dot_escapes_names_and_cuts_big_programs():
    unit = parse_sexpr("(let x (int 1)) (load x)")
    weird = {ir.name_hash("x"): 'we"ird\\na\nme'}
    dot = draw.program_dot(unit.sequence, weird, title='t"itle')
    assert 'Let\\nwe\\"ird\\\\na\\nme' in dot and 'label="t\\"itle"' in dot
    texts = svg_texts(draw.svg_from_dot(dot))
    assert 'we"ird\\na' in texts and "me" in texts
    big = parse_sexpr(" ".join("(add (int 1) (int 2))" for _ in range(10))).sequence
    dot = draw.program_dot(big, max_nodes=7)
    assert len([n for n in dot_nodes(dot) if n.startswith("n")]) == 7
    assert "… 23 more nodes not drawn (max_nodes=7)" in dot


def test_graph_dot_from_plain_edges():
    edges = [(1, 2), (2, 3), (1, 2), (4, 2)]
    dot = draw.graph_dot(edges, {1: "main", 2: "sum"}, focus=[2], nodes=[9], title="g")
    labels = dot_nodes(dot)
    assert sorted(labels.values()) == sorted(["main\\n#x:0000000000000001", "sum\\n#x:0000000000000002",
                                              "#x:0000000000000003", "#x:0000000000000004",
                                              "#x:0000000000000009"])
    assert len(dot_edges(dot)) == 3  # the duplicate is drawn once
    focus = [line for line in dot.splitlines() if "sum" in line and "[label" in line][0]
    assert "penwidth=2" in focus
    texts = svg_texts(draw.graph_svg(edges, {1: "main"}, focus=[2]))
    assert "main" in texts and "#x:0000000000000004" in texts


# ---------------------------------------------------------------------------------------------
# SVG


@needs_dot
def test_svg_parses_and_names_every_node_kind():
    svg = draw.program_svg(ONE_OF_EACH)
    root = ET.fromstring(svg)
    assert root.tag == SVG + "svg"
    texts = set(svg_texts(svg))
    assert set(KIND_NAMES) <= texts
    classes = {g.get("class") for g in root.iter(SVG + "g")}
    assert {f"node nda-{k}" for k in KIND_NAMES} <= classes


def test_missing_dot_program_is_a_typed_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(draw.PictureToolMissing) as e:
        draw.program_svg(ONE_OF_EACH)
    assert e.value.code == "TOOL_MISSING"
    assert "Graphviz's `dot` program is not installed: apt-get install graphviz" in str(e.value)
    assert draw.program_dot(ONE_OF_EACH)  # DOT needs no Graphviz


def test_missing_graphviz_package_is_a_typed_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(draw.PictureToolMissing, match=r"pip install 'nda-toolchain\[pictures\]'"):
        draw.svg_from_dot("digraph { a }")


@needs_dot
def test_dot_refusing_its_input_is_a_typed_error():
    with pytest.raises(draw.NdaError, match="dot failed"):
        draw.svg_from_dot("digraph { a -> }")


# ---------------------------------------------------------------------------------------------
# Results as HTML


def test_result_html_table_and_bar_strip():
    res = run(parse_sexpr("(scope)").sequence, [2.0, -4.0, 2.0], store=MemoryResolver())
    assert res.output_vec == [2.0, -4.0, 2.0]
    html = res._repr_html_()
    assert html == draw.result_html(res)
    root = ET.fromstring(html)  # an XHTML fragment
    cells = {tr.find("th").text: tr.find("td") for tr in root.iter("tr")}
    assert cells["status"].text == "ok"
    assert cells["output_vec"].text.startswith("[2, -4, 2]")
    assert cells["tier"].text in ("interp", "closure", "native")
    rects = list(cells["output_vec"].iter(SVG + "rect"))
    assert len(rects) == 3
    heights = [float(r.get("height")) for r in rects]
    assert heights[1] == max(heights) and heights[0] == pytest.approx(heights[1] / 2)
    assert rects[1].get("fill") != rects[0].get("fill")  # negative bars look different
    assert "executed_nodes" in cells and "kind_counts" in cells


def test_result_html_escapes_and_reports_errors():
    res = SandboxResult()
    res.error, res.error_code = "<script>alert('x')</script> & more", "TYPE_ERROR"
    res.output_vec = [float("nan"), 1.0] + [0.5] * 998
    html = draw.result_html(res)
    assert "<script>" not in html and "&lt;script&gt;" in html
    root = ET.fromstring(html)
    cells = {tr.find("th").text: tr.find("td") for tr in root.iter("tr")}
    assert cells["status"].text == "error: TYPE_ERROR"
    assert cells["error"].text == "<script>alert('x')</script> & more"
    rects = list(cells["output_vec"].iter(SVG + "rect"))
    assert len(rects) <= 400 and rects[0].find(SVG + "title").text.startswith("[0–2] nan")
    assert draw.result_html({"output_vec": [], "panicked": True}).count("panicked") == 2


@needs_dot
def test_every_svg_is_well_formed_for_each_kind_alone():
    for node in ONE_OF_EACH:
        texts = svg_texts(draw.program_svg((ir.Scope((node,)),)))
        assert type(node).__name__ in texts


# ---------------------------------------------------------------------------------------------
# CLI


@pytest.fixture
def stored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.sexpr").write_text(MODULE)
    # names are explicit (issue 12): the functions under bare names, the program as main
    r = CliRunner().invoke(main, ["commit", "m.sexpr", "--dim", "4", "--namespace", "", "--name", "main", "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def nda(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@needs_dot
def test_show_dot_and_svg(stored):
    r = nda("show", "main", "--format", "dot")
    assert r.exit_code == 0, r.output
    labels = dot_nodes(r.stdout)
    assert "Call\\n@sum" in labels.values() and "Call\\n@helper" in labels.values()
    assert {"sum\\n(store)", "helper\\n(store)"} <= set(labels.values())
    assert 'label="program main"' in r.stdout
    r = nda("show", stored["root"], "--format", "svg", "--depth", "1")
    assert r.exit_code == 0, r.output
    texts = svg_texts(r.stdout)
    assert {"fn main", "fn sum", "fn helper", "Call", "@sum"} <= set(texts)
    r = nda("show", "sum", "--format", "svg", "--json")
    d = json.loads(r.stdout)
    assert r.exit_code == 0 and d["ok"] and d["format"] == "svg" and d["callees"] == []
    assert "Return" in svg_texts(d["svg"])
    r = nda("show", "main", "--format", "dot", "--depth", "2", "--json")
    d = json.loads(r.stdout)
    assert len(d["callees"]) == 2 and d["hash"] == stored["root"]
    assert nda("show", "nosuch", "--format", "dot").exit_code == 2


def test_show_svg_without_dot_names_the_install_step(stored, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    r = nda("show", "main", "--format", "svg", "--json")
    d = json.loads(r.stdout)
    assert r.exit_code == 2 and d["error_code"] == "TOOL_MISSING" and "apt-get install graphviz" in d["error"]
    r = nda("show", "main", "--format", "svg")
    assert r.exit_code == 2 and "apt-get install graphviz" in r.stderr


@needs_dot
def test_graph_callers_and_dependencies(stored):
    r = nda("graph", "sum")
    assert r.exit_code == 0, r.output
    labels = dot_nodes(r.stdout)
    ids = {lab.split("\\n")[0]: nid for nid, lab in labels.items()}
    assert set(ids) == {"sum", "main"}
    assert [(t, h) for t, h, _ in dot_edges(r.stdout)] == [(ids["main"], ids["sum"])]
    r = nda("graph", "main", "--json")
    d = json.loads(r.stdout)
    assert r.exit_code == 0 and d["ok"]
    names = {n["term"]: n["name"] for n in d["nodes"]}
    assert sorted((names[e["caller"]], names[e["callee"]]) for e in d["edges"]) == \
        [("main", "helper"), ("main", "sum")]
    r = nda("graph", "helper", "--format", "svg", "--depth", "2")
    texts = set(svg_texts(r.stdout))  # callers go upward only: main's other callee is not drawn
    assert r.exit_code == 0 and {"helper", "main"} <= texts and "sum" not in texts
    r = nda("graph", "nosuch", "--json")
    assert r.exit_code == 2 and json.loads(r.stdout)["ok"] is False


def test_graph_without_a_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = nda("graph", "x")
    assert r.exit_code == 2 and "no store" in r.stderr


def test_bench_plot_svg(tmp_path):
    out = tmp_path / "ratios.svg"
    r = nda("bench", "calls10k", "--runs", "1", "--tier", "interp", "--tier", "closure",
            "--plot", out, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["plot"] == str(out)
    texts = " ".join(t.text or "" for t in ET.parse(out).getroot().iter(SVG + "text"))
    assert len(d["rows"]) == 2
    for row in d["rows"]:
        assert f"{row['bench']} · {row['tier']}" in texts and f"{row['ratio']:.2f}× vs interp" in texts


def test_bench_plot_refusals(tmp_path, monkeypatch):
    r = nda("bench", "calls10k", "--plot", tmp_path / "x.pdf", "--json")
    assert r.exit_code == 2 and ".svg or .png" in json.loads(r.stdout)["error"]
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    r = nda("bench", "calls10k", "--plot", tmp_path / "x.svg", "--json")
    d = json.loads(r.stdout)
    assert r.exit_code == 2 and d["error_code"] == "TOOL_MISSING" and "nda-toolchain[pictures]" in d["error"]
    assert not (tmp_path / "x.svg").exists()
