"""Differential testing: random well-formed programs must behave identically on every tier
(output vector bits, prints, error code and message, every counter, kind counts)."""

import os

from hypothesis import HealthCheck, given, settings

from nda.core.link import MemoryResolver, link_module
from nda.sandbox.runner import available_tiers, run

from progen import programs

EXAMPLES = int(os.environ.get("NDA_DIFF_EXAMPLES", "2000"))


def _observe(linked, inp, limits, tier, optimize, kinds):
    store = MemoryResolver()
    store.add_linked(linked)
    res = run(linked.main_sequence(), inp, store=store, limits=limits, tier=tier,
              optimize=optimize, collect_kind_counts=kinds)
    assert not res.panicked, res.error
    return res.observable()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs())
def test_tiers_agree(case):
    module, inp, limits = case
    linked = link_module(module)
    oracle = _observe(linked, inp, limits, "interp", False, False)
    for tier in available_tiers() + ["auto"]:
        for optimize in (False, True):
            if tier == "interp" and not optimize:
                continue
            got = _observe(linked, inp, limits, tier, optimize, False)
            assert got == oracle, f"{tier} optimize={optimize} differs"


@settings(max_examples=max(50, EXAMPLES // 10), deadline=None, suppress_health_check=list(HealthCheck))
@given(programs(max_depth=2))
def test_kind_counts_agree(case):
    module, inp, limits = case
    linked = link_module(module)
    oracle = _observe(linked, inp, limits, "interp", False, True)
    for tier in available_tiers() + ["auto"]:
        assert _observe(linked, inp, limits, tier, True, True) == oracle


@settings(max_examples=max(100, EXAMPLES // 8), deadline=None, suppress_health_check=list(HealthCheck))
@given(programs())
def test_auto_cold_then_hot_agrees(case):
    """Tier `auto` interprets a cold program within a budget of tier 0 work, abandons the run
    that exhausts it and runs the program again compiled, then keeps it compiled
    (docs/decisions.md T2.11). Under budgets from none to generous, every run — interpreted,
    abandoned and re-run, or compiled — gives the oracle's results and counters."""
    from nda.sandbox import runner

    module, inp, limits = case
    linked = link_module(module)
    oracle = _observe(linked, inp, limits, "interp", False, False)
    saved = runner.COLD_WORK_PER_NODE, runner.COLD_WORK_BASE
    try:
        for per, base in ((0, 0), (0, 1), (0, 7), (1, 0), (4, 64)):
            runner.COLD_WORK_PER_NODE, runner.COLD_WORK_BASE = per, base
            runner._PROGRAM_INFO.clear()
            for _ in range(3):
                assert _observe(linked, inp, limits, "auto", True, False) == oracle, (per, base)
    finally:
        runner.COLD_WORK_PER_NODE, runner.COLD_WORK_BASE = saved
