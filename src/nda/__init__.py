"""nda — the NDA toolchain: front ends, the gate, tiered execution, the sandbox and the store.

The public API (documented in README.md, "From Python"):

    import nda
    prog = nda.parse("(let s (int 0)) (loop 5 (store s (add (load s) (int 1)))) (print (load s))")
    nda.check(prog).ok                       # the gate: every finding, nothing run
    res = nda.run(prog, [], limits=nda.Limits(fuel=1000))
    res.output, res.output_log               # numpy float32 array, prints
    with nda.Store.open("prog.db") as store:
        store.commit(prog, message="count to five")
    for r in nda.run_many(["(int 1)", "(int 2)"], workers=2): ...

Names are resolved on first use, so `import nda` stays cheap.
"""

from __future__ import annotations

_API = {
    "parse": "nda.api", "check": "nda.api", "run": "nda.api", "Program": "nda.api",
    "CheckResult": "nda.api", "Result": "nda.api", "Store": "nda.api", "Limits": "nda.api",
    "Diagnostic": "nda.core.errors", "Span": "nda.core.errors", "NdaError": "nda.core.errors",
    "ParseError": "nda.core.errors",
    "run_many": "nda.batch", "BatchResult": "nda.batch",
    "grammar": "nda.syntax.grammars", "TokenConstraint": "nda.syntax.token_constraint",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    mod = _API.get(name)
    if mod is None:
        raise AttributeError(f"module 'nda' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
