"""Everything the README says is true: every command of its shell blocks runs with the outcome
documented here, the Python example runs, and the examples table lists every example file.

The test owns the expected outcome of each README command (exit status and text that must
appear). A command added to the README without an expectation here fails the test, and so does
an expectation whose command left the README, so the two cannot drift apart.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

# command (as written in the README, comment stripped) → (exit status, texts in stdout+stderr)
EXPECT: dict[str, tuple[int, list[str]]] = {
    # set-up commands are checked by CI itself; here only that they are the two documented ones
    'nda run examples/counter.sexpr': (0, ["[print] [5.0]", "25 nodes"]),
    'nda run examples/recursion.sexpr --tier interp': (0, ["[print] [10.0]", "tier interp"]),
    'nda run examples/block4.sexpr --json': (0, ['"ok": true', '"output_dim": 896', '"executed_nodes": 8']),
    'nda run examples/counter.sexpr --fuel 10': (1, ["FUEL_EXHAUSTED", "10 nodes"]),
    "echo '(print (int 7))' | nda run -": (0, ["[print] [7.0]"]),
    'nda run examples/counter.nda --input 1,2,-1': (0, ["[print] [5.0]"]),
    'nda fmt examples/recursion.sexpr --to sexpr': (0, ["(def sum"]),
    'nda hash examples/recursion.sexpr': (0, ["sum"]),
    'nda conformance': (0, ["interp", "closure", "passed"]),
    'nda check examples/typo.nda': (1, ["totl", "did you mean 'total'?"]),
    'nda commit examples/fibonacci.nda -m "fib" --namespace \'\' --name main': (0, ["fib", "bound main"]),
    'nda log': (0, ["fib"]),
    'nda verify': (0, ["ok"]),
    'nda bench block4': (0, ["block4"]),
    'nda batch examples -o out.jsonl': (1, ["STACK_UNDERFLOW", "programs/s"]),
    'nda show main --format svg > main.svg': (0, []),
    'nda graph main --format svg > calls.svg': (0, []),
    'nda tokens generate --budget 12 --seed 1': (0, ["ROOT:"]),
    'nda grammar --syntax text --dialect gbnf': (0, ["root ::=", "ident ::="]),
    'nda mcp --help': (0, ["MCP"]),
    'nda check examples/errors.nda': (1, ["errors.nda:", "^"]),
    'nda check examples/block4.sexpr --dim 100': (1, ["DIMENSION_MISMATCH"]),
    'nda check examples/typo.nda --json': (1, ['"ok": false', '"diagnostics"']),
    'nda fmt examples/recursion.nda --to sexpr': (0, ["(def sum"]),
    'nda fmt examples/fibonacci.nda --to binary -o fib.ndab && nda fmt fib.ndab --to sexpr': (0, ["(def fib"]),
}
SETUP = ['pip install -e . && nda run examples/block4.sexpr', 'pip install -e ".[test]" && python -m pytest']


def _shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def _commands() -> list[str]:
    cmds = []
    for block in _shell_blocks():
        for line in block.splitlines():
            line = line.strip()
            if not line:
                continue
            # strip a trailing comment: "  # ..." outside quotes (the README keeps # out of quotes)
            m = re.match(r"^(.*?)\s+#\s.*$", line)
            cmds.append((m.group(1) if m else line).strip())
    return cmds


def test_readme_has_exactly_the_two_setup_commands():
    cmds = _commands()
    setup = [c for c in cmds if c.startswith("pip install")]
    assert setup == SETUP


def test_every_readme_command_has_an_expectation():
    cmds = [c for c in _commands() if not c.startswith("pip install")]
    assert sorted(set(cmds)) == sorted(EXPECT), (
        f"in the README only: {sorted(set(cmds) - set(EXPECT))}; "
        f"expected here only: {sorted(set(EXPECT) - set(cmds))}")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", d / "examples")
    return d


def _shell(cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    nda = f'"{sys.executable}" -m nda'
    line = re.sub(r"(^|\|\s*|&&\s*)nda ", lambda m: m.group(1) + nda + " ", cmd)
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    env.pop("NDA_STORE", None)
    return subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


def test_readme_commands_do_what_the_readme_says(workdir):
    failures = []
    for cmd in [c for c in _commands() if not c.startswith("pip install")]:
        code, texts = EXPECT[cmd]
        out = _shell(cmd, workdir)
        both = out.stdout + out.stderr
        missing = [t for t in texts if t not in both]
        if out.returncode != code or missing:
            failures.append(f"{cmd!r}: exit {out.returncode} (want {code}), missing {missing}\n"
                            f"{both[-800:]}")
    assert not failures, "\n\n".join(failures)


def test_readme_python_example_runs(tmp_path, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "the README has a Python example"
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for block in blocks:
            exec(compile(block, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "['[print] [5.0]'] [5.] 25" in out
    assert "True" in out and "count to five" in out


def test_examples_table_lists_every_example():
    table = README[README.index("## Examples"):]
    table = table[:table.index("```")]
    listed = set(re.findall(r"`([\w.]+\.(?:sexpr|nda|ndab|py))`", table))
    on_disk = {p.name for p in (ROOT / "examples").iterdir() if p.is_file()}
    assert on_disk <= listed, f"examples missing from the README table: {sorted(on_disk - listed)}"
