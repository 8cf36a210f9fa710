"""Argument and result schemas of the MCP tools (pydantic models the SDK turns into JSON Schema).

In: nothing at run time but the names of `Limits`' fields.
Out: `LimitsArg` (the `limits` argument: one named, described, non-negative integer per limit,
unknown keys refused), the enumerations (`Syntax`, `Format`, `TierName`, `Dialect`,
`NamesMode`), and one result model per tool (`RunOut`, `CheckOut`, …) — the tools' output
schemas. Result models allow extra keys (a newer library may add fields) and describe the
success object; a failed call is `isError: true` with the failure object of `core.errors.failure`
(`ok: false, error_code, error, diagnostics`), described by `Failure`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nda.runtime.state import Limits

_D = Limits()

Syntax = Literal["sexpr", "text", "binary"]
Format = Literal["sexpr", "text", "binary"]
TierName = Literal["auto", "interp", "closure", "native"]
Dialect = Literal["lark", "gbnf"]
GrammarSyntax = Literal["sexpr", "text"]
NamesMode = Literal["list", "search", "history"]
Num = float | str  # NaN / inf / -inf are the strings "NaN", "inf", "-inf"

LIMIT_DOCS = {
    "fuel": "most nodes a run may execute (FUEL_EXHAUSTED past it)",
    "deadline_ms": "wall-clock budget of a run in milliseconds (DEADLINE_EXCEEDED)",
    "max_memory_bytes": "accounted memory: 8 B per scalar, 8 + 2*ceil(n/8) B per n-vector (MEMORY_LIMIT)",
    "max_output_bytes": "total bytes of printed lines (OUTPUT_LIMIT)",
    "max_call_depth": "deepest Call nesting (CALL_DEPTH)",
    "max_while_iterations": "iterations of one While (WHILE_LIMIT)",
    "max_input_len": "longest conditioning vector",
    "max_node_depth": "deepest node nesting of a program (VALIDATION_ERROR)",
    "max_nodes": "most nodes of a program, a shared subtree counted per occurrence (VALIDATION_ERROR)",
}
assert set(LIMIT_DOCS) == set(Limits.field_names()), "LimitsArg must name every limit"


class LimitsArg(BaseModel):
    """Sandbox limits for this call; each may only lower the server's own (higher values are
    clamped to the server's). Omitted keys keep the server's value."""

    model_config = ConfigDict(extra="forbid")

    fuel: int | None = Field(None, ge=0, description=LIMIT_DOCS["fuel"] + f"; default {_D.fuel:,}")
    deadline_ms: int | None = Field(None, ge=0, description=LIMIT_DOCS["deadline_ms"]
                                    + f"; default {_D.deadline_ms:,}")
    max_memory_bytes: int | None = Field(None, ge=0, description=LIMIT_DOCS["max_memory_bytes"]
                                         + f"; default {_D.max_memory_bytes:,}")
    max_output_bytes: int | None = Field(None, ge=0, description=LIMIT_DOCS["max_output_bytes"]
                                         + f"; default {_D.max_output_bytes:,}")
    max_call_depth: int | None = Field(None, ge=0, description=LIMIT_DOCS["max_call_depth"]
                                       + f"; default {_D.max_call_depth}")
    max_while_iterations: int | None = Field(None, ge=0, description=LIMIT_DOCS["max_while_iterations"]
                                             + f"; default {_D.max_while_iterations:,}")
    max_input_len: int | None = Field(None, ge=0, description=LIMIT_DOCS["max_input_len"]
                                      + f"; default {_D.max_input_len:,}")
    max_node_depth: int | None = Field(None, ge=0, description=LIMIT_DOCS["max_node_depth"]
                                       + f"; default {_D.max_node_depth}")
    max_nodes: int | None = Field(None, ge=0, description=LIMIT_DOCS["max_nodes"]
                                  + f"; default {_D.max_nodes:,}")

    def asked(self) -> dict:
        """The limits actually given (name → value)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


# ---------------------------------------------------------------------------------------------
# Results


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")

    ok: bool = Field(description="true on success (a failed call is isError with ok false)")


class Diag(BaseModel):
    """One finding (the CLI's --json diagnostic object)."""

    model_config = ConfigDict(extra="allow")

    severity: str = Field(description="error | warning")
    code: str = Field(description="error code (docs/reference/errors.md)")
    message: str
    span: dict | None = Field(None, description="position: line, col (1-based) or byte offset")
    hint: str | None = Field(None, description="how to fix it, when known")


class Failure(_Out):
    """What every tool returns on failure (with isError: true) — the CLI's --json failure."""

    error_code: str = Field(description="error code of the first failure (docs/reference/errors.md)")
    error: str = Field(description="its message")
    diagnostics: list[Diag] = Field(description="every finding, with position and hint when known")


class VecSummary(BaseModel):
    """A long vector, summarised (the call's `full: true` returns every value)."""

    length: int
    head: list[Num] = Field(description="the first values")
    min: Num
    max: Num
    sum: Num


class RunOut(_Out):
    output_vec: list[Num] | None = Field(
        None, description="the output vector (absent when summarised: see output_summary)")
    output_summary: VecSummary | None = Field(
        None, description="present instead of output_vec when it is longer than the compact size")
    output_dim: int = Field(description="length of the output vector")
    output_log: list[str] = Field(description="printed lines, e.g. '[print] [1.0]'")
    executed_nodes: int
    fuel_used: int
    loop_iterations: int
    matrix_count: int
    norm_count: int
    tier: str = Field(description="tier that ran it: interp | closure | native")
    elapsed_us: int
    compile_us: int
    run_us: int
    program_hash: str = Field(description="H2 content address of the program (hex)")
    syntax: str | None = Field(None, description="syntax the source was read as (when not given)")


class CheckOut(_Out):
    diagnostics: list[Diag] = Field(description="empty when the gate passes")
    syntax: str | None = None


class FormatOut(_Out):
    format: str
    text: str | None = Field(None, description="the program in sexpr or text form")
    base64: str | None = Field(None, description="binary v2 container, base64")
    syntax: str | None = None


class HashOut(_Out):
    program_hash: str = Field(description="H2 content address (64 hex digits)")
    functions: dict[str, str] | None = Field(None, description="module functions: name → address")
    syntax: str | None = None


class BindingOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    hash: str = Field(description="the address the name is bound to now")
    previous: str | None = Field(description="the address it was bound to before (null: a new name)")


class CommitOut(_Out):
    root: str = Field(description="address of the stored program root")
    program_v1: str
    state_root: str
    commit_id: str
    seq: int = Field(description="commit number in the store's log")
    functions: dict[str, str] = Field(description="stored module functions: def name → address "
                                      "(bound only through `namespace`)")
    bindings: list[BindingOut] = Field(description="every name this commit bound or moved")
    sandbox: dict | None = Field(None, description="the gate's sandbox run (compact)")


class ShowOut(FormatOut):
    ref: str
    hash: str = Field(description="the stored address the ref resolved to")


class BindingLogOut(BindingOut):
    seq: int = Field(description="binding number of this name (1 = first)")
    time_us: int
    commit_seq: int | None = Field(None, description="the commit that made the binding")


class LogEntryOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    seq: int
    state_root: str
    commit_id: str
    message: str
    time_us: int
    entry_count: int
    bindings: list[BindingLogOut] = Field(description="names this commit bound or moved")


class LogOut(_Out):
    state_root: str
    entries: list[LogEntryOut] = Field(description="newest first")


class Signature(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(description="the function's name in its source")
    params: list[list[str]] | None = Field(description="[[name, type], …] as written (null: not written)")
    returns: str | None


class NameOut(BindingLogOut):
    source: Signature | None = Field(None, description="how the bound function was written "
                                     "(list and search)")


class NamesOut(_Out):
    mode: str
    names: list[NameOut]
    total: int = Field(description="matches before `limit` was applied")


class TermOut(BaseModel):
    """One caller / dependency: a triple term and what it stands for."""

    model_config = ConfigDict(extra="allow")

    term: str = Field(description="the u64 triple term, '#x:' + 16 hex")
    address: str | None = Field(description="the stored address it identifies (null: none)")
    name: str | None = Field(description="its current bound name (null: unbound)")
    string: str | None = Field(description="the string it is the name hash of, when known")
    display: str = Field(description="name, else '#' + address, else string, else term")


class TargetOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    address: str
    current: list[str] = Field(description="names bound to it now")
    former: list[str] = Field(description="names once bound to it, since moved")
    source: list[str] = Field(description="the names it was written under")


class CallGraphOut(_Out):
    ref: str
    hash: str = Field(description="the address `ref` resolved to")
    target: TargetOut
    count: int
    callers: list[TermOut] | None = None
    dependencies: list[TermOut] | None = None


class VerifyOut(_Out):
    problems: list[str]
    stats: dict


class GrammarOut(_Out):
    syntax: str
    dialect: str
    grammar: str
