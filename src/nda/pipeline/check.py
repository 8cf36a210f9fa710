"""The gate step every surface shares: a loaded program in, its findings out.

In: a `pipeline.load.Loaded` program (or a path / stored ref for `check_file`), the input
width when known, `Limits`, the store call targets resolve in.
Out: `gate_diagnostics` — the gate's findings (`pipeline.commit.static_findings`, named and
hinted by `analysis.gate_names`) completed with warnings for Loads of never-assigned
variables, in source order; `check_file` → `CheckReport` (what `nda check` prints). Used by
`nda check`, `nda run`'s gate, the MCP tools and `nda.check`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nda.core import ir
from nda.core.errors import UNDEFINED_VARIABLE, Diagnostic, NdaError
from nda.runtime.state import Limits


@dataclass
class CheckReport:
    """The outcome of checking one program."""

    file: str
    kind: str | None = None
    input_len: int | None = None
    diagnostics: list = field(default_factory=list)
    source: str | None = None
    stage: str = "gate"              # parse | gate (where checking stopped)
    functions: list = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(d.severity == "error" for d in self.diagnostics)

    @property
    def warnings(self) -> int:
        return sum(d.severity == "warning" for d in self.diagnostics)

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def to_dict(self) -> dict:
        return {"ok": self.ok, "file": self.file, "kind": self.kind, "stage": self.stage,
                "input_len": self.input_len, "errors": self.errors, "warnings": self.warnings,
                "functions": self.functions, "diagnostics": [d.to_dict() for d in self.diagnostics]}


# ---------------------------------------------------------------------------------------------
# Library entry point


def check_file(ref: str, *, input_len: int | None = None, limits: Limits = Limits(),
               store=None) -> CheckReport:
    """Parse `ref` and run the gate; raises `pipeline.UsageError` for unreadable input."""
    from nda.pipeline.load import load_any

    report = CheckReport(ref, input_len=input_len)
    try:
        report.source = Path(ref).read_bytes().decode("utf-8", errors="replace")
    except OSError:
        report.source = None
    try:
        loaded = load_any(ref, store)
    except NdaError as e:
        from nda.pipeline.load import UsageError

        if isinstance(e, UsageError):
            raise
        from nda.core.link import UnboundNameError

        report.stage = "gate" if isinstance(e, UnboundNameError) else "parse"
        report.diagnostics = list(getattr(e, "diagnostics", None) or (e.diagnostic(),))
        return report
    report.kind = loaded.kind
    if loaded.source is not None:
        report.source = loaded.source
    report.functions = [] if loaded.module is None else [d.name for d in loaded.module.defs]
    report.diagnostics = gate_diagnostics(loaded, input_len=input_len, limits=limits, store=store)
    return report


def gate_diagnostics(loaded, *, input_len: int | None, limits: Limits = Limits(), store=None) -> list:
    """The gate's findings for a loaded program (named, with hints: `analysis.gate_names`, the
    same texts every surface shows), completed with warnings."""
    from nda.analysis.gate import PROGRAM, SIZE
    from nda.analysis.gate_names import Namer, evaluated_nodes
    from nda.pipeline.commit import static_findings

    linked = loaded.module
    units: dict[str, tuple] = {PROGRAM: tuple(loaded.sequence)}
    if linked is not None:
        units.update((d.name, (d.node,)) for d in linked.defs if d.name != "main")
    names = dict(loaded.names)
    findings = static_findings(loaded.sequence, linked, input_len=input_len, limits=limits, store=store,
                               names=names)
    if any(f.kind == SIZE for f in findings):  # too big to walk per occurrence (a DAG)
        return [f.diagnostic for f in findings]
    reported = {id(f.node) for f in findings if type(f.node) is ir.Load}
    out: list[Diagnostic] = [f.diagnostic for f in findings]
    namer = Namer(names, units.__getitem__)
    for unit, roots in units.items():
        where = (f"function '{unit}'" if unit != PROGRAM else
                 "function 'main'" if linked is not None else "the program")
        bound = namer.bound(unit)
        for node in evaluated_nodes(roots):
            if type(node) is ir.Load and node.name not in bound and id(node) not in reported:
                reported.add(id(node))
                label = names.get(node.name, f"#x:{node.name:016x}")
                hint = "this Load fails with 'undefined variable' whenever it runs"
                s = namer.suggest(node.name, unit)
                out.append(Diagnostic(UNDEFINED_VARIABLE,
                                      f"variable '{label}' is never assigned in {where}",
                                      node.span, severity="warning", stage="gate",
                                      hint=hint if s is None else f"{s} ({hint})"))
    return _in_source_order(out)


def _in_source_order(diags: list) -> list:
    def key(item):
        i, d = item
        s = d.span
        return (0, s.line, s.col, i) if s is not None and s.line else (1, 0, 0, i)

    return [d for _, d in sorted(enumerate(diags), key=key)]


__all__ = ["CheckReport", "check_file", "gate_diagnostics"]
