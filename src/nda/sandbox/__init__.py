"""Sandbox: run a program under limits and return a structured result; never raises.

In: an IR sequence, an input vector, `Limits`, a tier name and a call resolver.
Out: `SandboxResult` (output vector, prints, error code and message, executed_nodes, counters).
`runner` holds the entry point `run`; its names are re-exported here.
"""

from nda.sandbox.runner import ChainResolver, SandboxResult, run  # noqa: F401
