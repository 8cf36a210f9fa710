"""Every conformance vector (the spec's and ours) on every registered tier, with and without
the optimizer. Per-tier known-failure lists must stay empty for tier 0 (the oracle)."""

import pytest

from nda.pipeline.conformance import VECTOR_SETS, builtin_vectors, load_vectors, vector_path, check_vector
from nda.sandbox.runner import available_tiers

# Vectors a tier is known to fail, by id. Tier 0 is the oracle: its list must be empty.
KNOWN_FAILURES: dict[str, set[str]] = {"interp": set(), "closure": set(), "native": set()}


VECTORS = builtin_vectors()


def test_shipped_vector_sets():
    """Both sets ship with the package: the specification's 54 vectors (ids kept) and ours."""
    spec = load_vectors(vector_path("spec"))
    own = load_vectors(vector_path("own"))
    assert len(spec) == 54 and len(own) >= 100
    assert len(VECTORS) == len(spec) + len(own)
    assert {v.id for v in spec}.isdisjoint({v.id for v in own})
    with pytest.raises(ValueError):
        vector_path("nope")
    assert set(VECTOR_SETS) == {"spec", "own"}


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
