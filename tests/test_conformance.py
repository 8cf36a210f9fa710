"""Every conformance vector (the spec's and ours) on every registered tier, with and without
the optimizer. Per-tier known-failure lists must stay empty for tier 0 (the oracle)."""

from pathlib import Path

import pytest

from nda.pipeline.conformance import check_vector, load_vectors, spec_dir
from nda.sandbox.runner import available_tiers

SPEC_VECTORS = spec_dir() / "conformance" / "vectors.jsonl"
OWN_DIR = Path(__file__).parent / "conformance"

# Vectors a tier is known to fail, by id. Tier 0 is the oracle: its list must be empty.
KNOWN_FAILURES: dict[str, set[str]] = {"interp": set(), "closure": set(), "native": set()}


def _all_vectors():
    assert SPEC_VECTORS.exists(), f"spec vectors not found at {SPEC_VECTORS}"
    vecs = load_vectors(SPEC_VECTORS)
    for p in sorted(OWN_DIR.glob("*.jsonl")):
        vecs += load_vectors(p)
    return vecs


VECTORS = _all_vectors()


def test_vector_ids_unique():
    ids = [v.id for v in VECTORS]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]


def test_known_failures_empty_for_oracle():
    assert KNOWN_FAILURES["interp"] == set()


@pytest.mark.parametrize("tier", available_tiers())
@pytest.mark.parametrize("optimize", [True, False], ids=["opt", "noopt"])
@pytest.mark.parametrize("vec", VECTORS, ids=[v.id for v in VECTORS])
def test_vector(vec, tier, optimize):
    res, problems = check_vector(vec, tier, optimize=optimize)
    if vec.id in KNOWN_FAILURES[tier]:
        assert problems, f"{vec.id} passes on {tier}: remove it from KNOWN_FAILURES"
        return
    assert not problems, f"{vec.id} ({vec.origin}) on {tier}: " + "; ".join(problems)
