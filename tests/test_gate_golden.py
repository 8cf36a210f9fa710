"""The gate's findings are unchanged by its linear-time rewrite (persistent stacks and
environments, running memory totals, the bound-names set with an undo log).

tests/data/gate_golden.jsonl holds programs as S-expression text — 400 random programs of
tests/progen.py (hypothesis, derandomized), generated scalar/mixed programs and programs with
many variables bound and loaded in branches and loops — with the findings the previous
(quadratic) gate gave for them: unit, kind, message, hint, span. Every one must come out the
same, in the same order.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nda.core.link import link_module
from nda.pipeline.commit import static_findings
from nda.runtime.state import Limits
from nda.syntax.sexpr import parse_sexpr

GOLDEN = Path(__file__).parent / "data" / "gate_golden.jsonl"
CASES = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line]


def findings_of(case: dict) -> list:
    unit = parse_sexpr(case["src"])
    if unit.module is not None:
        linked = link_module(unit.module)
        seq = tuple(linked.main_sequence())
    else:
        linked, seq = None, unit.sequence
    kw = {} if case["limits"] is None else {"limits": Limits(**case["limits"], deadline_ms=60_000)}
    fs = static_findings(seq, linked, input_len=case["input_len"], **kw)
    return [[f.unit, f.kind, f.diagnostic.message, f.diagnostic.hint,
             str(f.diagnostic.span) if f.diagnostic.span else None] for f in fs]


def test_golden_file_covers_findings():
    assert len(CASES) >= 400
    kinds = {f[1] for c in CASES for f in c["findings"]}
    assert {"runtime", "fuel"} <= kinds
    assert sum(1 for c in CASES if c["findings"]) >= 200


@pytest.mark.parametrize("i", range(0, len(CASES), 20))
def test_gate_findings_unchanged(i):
    for case in CASES[i:i + 20]:
        assert findings_of(case) == case["findings"], case["src"][:200]
