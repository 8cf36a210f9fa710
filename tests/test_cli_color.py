"""NO_COLOR (https://no-color.org) is honoured by every verb, even on a terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ANSI_COLOR = ("\x1b[3", "\x1b[9", "\x1b[1m", "\x1b[2m")


def _on_a_terminal(args: list[str], cwd: Path, no_color: bool) -> str:
    """Run `nda ARGS` with stdout and stderr on a pseudo-terminal; return what it printed."""
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120")
    env.pop("NO_COLOR", None)
    env.pop("FORCE_COLOR", None)
    if no_color:
        env["NO_COLOR"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "nda", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = b""
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(master)
    return out.decode("utf-8", errors="replace")


VERBS = [
    ["run", str(EXAMPLES / "counter.sexpr"), "--dim", "0"],
    ["run", str(EXAMPLES / "counter.sexpr"), "--dim", "0", "--fuel", "10", "--no-gate"],
    ["check", str(EXAMPLES / "typo.nda")],
    ["check", str(EXAMPLES / "counter.nda")],
    ["commit", str(EXAMPLES / "counter.sexpr"), "-m", "c", "--dim", "0"],
    ["log"],
    ["names"],
    ["verify"],
    ["bench", "block4", "--runs", "1"],
    ["conformance", "--tier", "interp"],
]


@pytest.mark.parametrize("args", VERBS, ids=[" ".join(a[:1] + [Path(x).name for x in a[1:2]]) for a in VERBS])
def test_no_color_on_a_terminal(args, tmp_path):
    out = _on_a_terminal(args, tmp_path, no_color=True)
    assert out.strip(), "the verb printed something"
    assert not any(c in out for c in ANSI_COLOR), repr(out[:400])


def test_colors_without_no_color(tmp_path):
    """The check above can fail: on a terminal, without NO_COLOR, verbs do color."""
    out = _on_a_terminal(["check", str(EXAMPLES / "typo.nda")], tmp_path, no_color=False)
    out += _on_a_terminal(["run", str(EXAMPLES / "counter.sexpr"), "--dim", "0"], tmp_path, no_color=False)
    assert any(c in out for c in ANSI_COLOR), repr(out[:400])
