"""Guards for constrained decoding: would the commit accept this program?

In: the conditioning (default: ones of length 896), limits, an optional store (CALL targets),
the scope threshold and the tier. Out: `commit_guard(...)` → a predicate over a top-level node
sequence that is True iff `commit` would accept it — the gate finds nothing, the sandbox run
succeeds and the output passes the scope check — without writing anything. Pass it as
`TokenConstraint(..., guard=commit_guard())` so that every finished stream commits.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from nda.core.errors import NdaError
from nda.pipeline.commit import SCOPE_THRESHOLD, scope_validate, static_findings
from nda.runtime.state import Limits


def commit_guard(conditioning: Optional[Sequence[float]] = None, *, limits: Optional[Limits] = None,
                 store=None, scope_threshold: float = SCOPE_THRESHOLD, tier: str = "interp"
                 ) -> Callable[[tuple], bool]:
    """A predicate: gate, sandbox run and scope check of a top-level sequence, as `commit`.
    The default tier is the interpreter (every tier gives the same result bit for bit, and the
    programs checked while decoding are small: no compilation pays off)."""
    from nda.sandbox.runner import run

    cond = [1.0] * 896 if conditioning is None else list(conditioning)
    lim = limits or Limits()

    def ok(seq: tuple) -> bool:
        try:
            if static_findings(seq, None, input_len=len(cond), limits=lim, store=store):
                return False
            res = run(seq, cond, store=store, limits=lim, tier=tier)
        except NdaError:
            return False
        return res.is_success() and scope_validate(res.output_array, cond, scope_threshold)["passed"]

    return ok


__all__ = ["commit_guard"]
