"""Where a run failed: the failing node's span, as a diagnostic shaped like a gate finding.

In: a `SandboxResult` with an error, and what produced it (the sequence, the conditioning
vector, the resolver, the limits).
Out: `error_diagnostic(...)` → a `Diagnostic` `{code, message, span, hint}` (None for a run
that did not fail). Tier 0 records the failing node itself; for a failure on another tier the
program is run again on tier 0 — every tier fails at the same node with the same error
(the differential tests hold them to it) — and its node is used when the error is the same.
A deadline failure depends on the clock and a panic on the host, so neither is re-run.
"""

from __future__ import annotations

from nda.core import errors as E
from nda.core.errors import Diagnostic

_NOT_RERUN = (E.DEADLINE_EXCEEDED, E.INTERNAL)


def failing_node(result, sequence, conditioning, store=None, limits=None):
    """The node `result`'s error came from, or None when it cannot be known."""
    if result.error is None:
        return None
    if result.error_node is not None or result.tier == 0 or result.error_code in _NOT_RERUN:
        return result.error_node
    from nda.sandbox.runner import run

    again = run(sequence, conditioning, store=store, limits=limits, tier="interp")
    if again.error == result.error and again.error_code == result.error_code:
        return again.error_node
    return None


def error_diagnostic(result, sequence, conditioning, store=None, limits=None,
                     names: dict | None = None) -> Diagnostic | None:
    """The run's error as a diagnostic with the failing node's span (and, for a variable the
    source named, a hint naming it as spelt)."""
    if result.error is None:
        return None
    node = failing_node(result, sequence, conditioning, store, limits)
    span = getattr(node, "span", None) if node is not None else None
    hint = None
    if node is not None and names:
        from nda.core import ir

        if type(node) in (ir.Load, ir.Store, ir.Let) and node.name in names:
            hint = f"variable '{names[node.name]}'"
    return Diagnostic(result.error_code or E.INTERNAL, result.error, span, "error", hint)


__all__ = ["failing_node", "error_diagnostic"]
