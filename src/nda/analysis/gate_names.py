"""Gate findings in the source's own words: run-time error codes, spelt names, did-you-mean hints.

In: a gate finding (its node, message, kind, hint), the name dictionary of the source (hash →
identifier, from the S-expression or text parser or the store's string dictionary; may be
empty) and, lazily, the names bound in the finding's unit.
Out: `code_for(message, kind)` — the error code the run gives for the same failure
(UNDEFINED_VARIABLE, STACK_UNDERFLOW, DIMENSION_MISMATCH, TYPE_ERROR, OUT_OF_BOUNDS,
CALL_TARGET_NOT_FOUND, FUEL_EXHAUSTED, MEMORY_LIMIT, WHILE_LIMIT; VALIDATION_ERROR for rule
findings — structure, nesting, triples — as the sandbox's own nesting check);
`named(diagnostic, node, names, bound)` — the diagnostic with the variable or call target named
as the source spelt it (the hash only when no name is known) and, for an unbound variable, a
hint naming it with "did you mean 'x'?" when a bound name (or a keyword) is close.
This is the one place those texts are made: `nda check`, `nda run`, `commit`, `--json` and the
MCP server all show the same finding.
"""

from __future__ import annotations

import difflib
from dataclasses import replace

from nda.core import errors as E
from nda.core import ir

KEYWORD_HINTS = ("let", "loop", "while", "if", "else", "return", "break", "print", "fn")
MAX_SUGGESTIONS = 50  # did-you-mean searches per analysis (bounded work on error-heavy files)

# message prefix → the code the run raises with that message (tier 0, kernels, state)
_PREFIX_CODES = (
    ("Stack underflow", E.STACK_UNDERFLOW),
    ("undefined variable", E.UNDEFINED_VARIABLE),
    ("Matrix GEMV dimension mismatch", E.DIMENSION_MISMATCH),
    ("Norm dimension mismatch", E.DIMENSION_MISMATCH),
    ("Add dimension mismatch", E.DIMENSION_MISMATCH),
    ("Dot vector length mismatch", E.DIMENSION_MISMATCH),
    ("Gemv cols cannot be zero", E.DIMENSION_MISMATCH),
    ("Out of bounds", E.OUT_OF_BOUNDS),
    ("fuel exhausted", E.FUEL_EXHAUSTED),
    ("memory limit exceeded", E.MEMORY_LIMIT),
    ("while loop exceeded", E.WHILE_LIMIT),
    ("call target", E.CALL_TARGET_NOT_FOUND),
    ("node nesting exceeds", E.VALIDATION_ERROR),
)
_TYPE_ERRORS = ("Missing rhs for binary Bitwise op", "Unsupported type mismatch in Math",
                "MathFunc operand must be scalar", "Cannot cast Vector to", "Peek address must be scalar",
                "Poke address must be scalar", "Poke value must be scalar", "Gemv vector operand",
                "Gemv matrix operand", "Dot rhs operand", "Dot lhs operand")
_RULE_KINDS = ("structure", "triple", "nesting", "size")


def code_for(message: str, kind: str) -> str:
    """The run's error code for a finding (rule findings keep VALIDATION_ERROR)."""
    if kind in _RULE_KINDS:
        return E.VALIDATION_ERROR
    for prefix, code in _PREFIX_CODES:
        if message.startswith(prefix):
            if code == E.CALL_TARGET_NOT_FOUND and not message.endswith("not found"):
                break
            return code
    if message.startswith(_TYPE_ERRORS):
        return E.TYPE_ERROR
    return E.VALIDATION_ERROR


def suggestion(name: str, candidates) -> str | None:
    """"did you mean 'x'?" for the closest candidate (or keyword), or None."""
    if len(name) > 64:
        return None
    pool = sorted({c for c in candidates if c != name and abs(len(c) - len(name)) <= 3})[:500]
    got = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if got:
        return f"did you mean '{got[0]}'?"
    kw = difflib.get_close_matches(name, KEYWORD_HINTS, n=1, cutoff=0.6)
    if kw:
        return f"'{name}' is not a keyword; did you mean '{kw[0]}'?"
    return None


def evaluated_nodes(roots):
    """Pre-order over `roots`, not entering the children of no-op nodes (never evaluated)."""
    stack = list(reversed(roots))
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, ir.NOOP_KINDS):
            continue
        stack.extend(reversed(list(ir.children(n))))


def bound_names(roots) -> set:
    """Hashes of every name a Let/Store in `roots` writes (no-op children excluded)."""
    return {n.name for n in evaluated_nodes(roots) if type(n) in (ir.Let, ir.Store)}


def spelt(h: int, names) -> str | None:
    """The identifier the source spelt for hash `h`, when the dictionary has a true one."""
    n = names.get(h) if names else None
    return n if isinstance(n, str) and n and ir.name_hash(n) == h else None


class Namer:
    """Names and hints for the findings of one analysis (`bound(unit)` computed on demand)."""

    def __init__(self, names, roots_of):
        self.names = names or {}
        self.roots_of = roots_of  # unit name → its roots
        self._bound: dict = {}
        self.budget = MAX_SUGGESTIONS

    def bound(self, unit: str) -> set:
        b = self._bound.get(unit)
        if b is None:
            b = self._bound[unit] = bound_names(self.roots_of(unit))
        return b

    def suggest(self, h: int, unit: str) -> str | None:
        """"did you mean 'y'?" for variable `h` among the names bound in `unit`, or None."""
        name = spelt(h, self.names)
        if name is None or self.budget <= 0:
            return None
        self.budget -= 1
        cands = (spelt(b, self.names) for b in self.bound(unit))
        return suggestion(name, [c for c in cands if c])

    def hint_for_variable(self, h: int, unit: str, base: str | None) -> str | None:
        """`variable 'x': {base}; did you mean 'y'?` (the name and the suggestion when known)."""
        name = spelt(h, self.names)
        if name is None:
            return base
        text = f"variable '{name}': {base}" if base else f"variable '{name}'"
        s = self.suggest(h, unit)
        return text if s is None else f"{text}; {s}"

    def named(self, d: E.Diagnostic, node, unit: str) -> E.Diagnostic:
        """`d` with its variable or call target spelt as in the source."""
        t = type(node)
        if t is ir.Load and d.message.startswith("undefined variable"):
            name = spelt(node.name, self.names)
            msg = d.message if name is None else f"undefined variable '{name}'"
            return replace(d, message=msg, hint=self.hint_for_variable(node.name, unit, d.hint))
        if t is ir.Call and type(node.target) is ir.Legacy64 and d.message.startswith("call target"):
            name = spelt(node.target.value, self.names)
            if name is not None:
                return replace(d, message=f"call target '{name}' ({node.target}) not found")
        return d
