"""The package tree reads as the pipeline: no import cycle between modules, no module over
800 lines, every subpackage opens with a docstring that says what goes in and out, and the
packages form layers (a lower layer never imports a higher one)."""

from __future__ import annotations

import ast
from pathlib import Path

import nda

ROOT = Path(nda.__file__).parent

# Bottom to top; a module may import only from its own layer or lower ones.
LAYERS = ["core", "runtime", "syntax", "analysis", "tiers", "sandbox", "store", "pipeline",
          "batch", "cli", "mcp", "integrations"]
MAX_LINES = 800


def _modules() -> dict[str, Path]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(path: Path, name: str, mods: dict) -> set[str]:
    """Every module `name` imports, at top level or inside functions (lazy imports count),
    except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for c in child.orelse:
                    visit(c)
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    if child.level > 1:
                        base = base[: -(child.level - 1)]
                    mod = ".".join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                # `from pkg import sub` imports the submodule; `from mod import name` the module
                for a in child.names:
                    sub = f"{mod}.{a.name}"
                    if sub in mods:
                        found.add(sub)
                    elif mod in mods:
                        found.add(mod)
            elif isinstance(child, ast.Import):
                for a in child.names:
                    if a.name in mods:
                        found.add(a.name)
            visit(child)

    visit(tree)
    found.discard(name)
    return found


def _graph():
    mods = _modules()
    return mods, {n: _imports(p, n, mods) for n, p in mods.items()}


def test_no_import_cycle_between_modules():
    mods, graph = _graph()
    # Package __init__ files that only re-export are edges too; a cycle through one counts.
    WHITE, GREY, BLACK = 0, 1, 2
    color = {n: WHITE for n in graph}
    cycles = []

    for start in sorted(graph):
        if color[start] != WHITE:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        color[start] = GREY
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = BLACK
                stack.pop()
                path.pop()
                continue
            if color.get(nxt) == GREY:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif color.get(nxt) == WHITE:
                color[nxt] = GREY
                stack.append((nxt, iter(sorted(graph[nxt]))))
                path.append(nxt)
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


def _layer(mod: str) -> int | None:
    parts = mod.split(".")
    if len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


def test_layers_only_import_downwards():
    _, graph = _graph()
    bad = []
    for mod, deps in graph.items():
        lm = _layer(mod)
        if lm is None:
            continue
        for d in deps:
            ld = _layer(d)
            if ld is not None and ld > lm:
                bad.append(f"{mod} → {d}")
    assert not bad, "upward imports: " + ", ".join(sorted(bad))


def test_no_module_over_800_lines():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_every_subpackage_says_what_goes_in_and_out():
    for init in ROOT.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init.relative_to(ROOT)} has no docstring"
    for sub in [p for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()]:
        assert sub.name in LAYERS, f"subpackage {sub.name} is not in the layer list"


def test_the_test_sees_a_cycle_and_an_upward_import(tmp_path):
    """The walker itself works: a lazy import inside a function is an edge."""
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from pkg import b\n")
    mods = {"pkg.a": a, "pkg.b": tmp_path / "b.py"}
    assert _imports(a, "pkg.a", mods) == {"pkg.b"}
    t = tmp_path / "t.py"
    t.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n")
    assert _imports(t, "pkg.t", {"pkg.t": t, "pkg.b": a}) == set()


def test_no_file_names_a_path_outside_the_repository():
    """The repository stands alone: no file refers to the specification's folder beside it or
    to a developer's machine."""
    import subprocess

    repo = ROOT.parents[1]
    try:
        files = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True,
                               check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):  # not a checkout (an installed package)
        files = [str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file()]
    outside = ["../" + "shared", "/" + "work/main", "/" + "work/shared", "/" + "work/wt", "shared/" + "spec"]
    bad = []
    for f in files:
        p = repo / f
        if not p.is_file() or p.suffix in (".db", ".ndab", ".npy", ".png"):
            continue
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        bad += [f"{f}: {o}" for o in outside if o in text]
    assert not bad, bad
