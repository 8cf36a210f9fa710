"""The MCP surface: tool, resource and prompt registrations on the SDK's `MCPServer`.

In: a `ServerConfig`. Out: `build(config)`, the server — each tool a thin, described shell
over `nda.mcp.tools.Tools` (arguments with descriptions, enumerations as enums, limits as an
object of named keys, an output schema from `nda.mcp.schemas`, read-only / destructive /
idempotent annotations), answers as `as_result` (structured content + the same JSON as text,
`isError` when not ok); the reference pages and grammars as resources; the `write_nda` prompt.
Imported only when a server is built (pydantic and the SDK are not loaded by the CLI).
"""

# No `from __future__ import annotations`: the SDK reads these signatures (closures over
# `config` included) at registration.
import json
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError

from nda.core.errors import INPUT_INVALID, INTERNAL, failure
from nda.mcp import schemas as S
from nda.mcp.tools import COMPACT_VEC, ServerConfig, Tools

# -- argument descriptions (shared by the tools) ----------------------------------------------
Source = Annotated[str, Field(description=(
    "The program itself (never a file path): text syntax (`fn main() { print(1) }`), "
    "S-expression (`(print (int 1))`), or base64 of a binary v2 container. It may call a "
    "stored function by its bound name (`sumsq(10)` in text, `(call @sumsq)` in S-expression); "
    "the call links to the name's current binding."))]
SyntaxArg = Annotated[S.Syntax | None, Field(description=(
    "How to read `source`. Omit it to have it recognised: S-expression when it opens with '(' "
    "or ';', binary when it is base64 starting 'TkRBM', otherwise text."))]
Input = Annotated[list[float] | None, Field(description=(
    "Conditioning vector (the program's input values). Omitted with `dim` omitted: empty."))]
Dim = Annotated[int | None, Field(ge=0, description=(
    "Use `dim` ones as the conditioning vector (instead of `input`)."))]
LimitsOpt = Annotated[S.LimitsArg | None, Field(description=(
    "Sandbox limits for this call (each clamped to the server's own)."))]
Ref = Annotated[str, Field(description=(
    "A stored program or function: a bound name, a 64-hex-digit hash, or a unique hash prefix "
    "of at least 8 hex digits."))]
GraphRef = Annotated[str, Field(description=(
    "A stored program or function: a bound name, a 64-hex-digit hash (optionally after '#'), "
    "a unique hash prefix of at least 8 hex digits, or '#x:' + 16 hex digits (a v1 hash)."))]


def _text(d: dict) -> str:
    return json.dumps(d, ensure_ascii=False)


def as_result(d: dict):
    """A tool answer: structured content and the same JSON as text; isError when not ok."""
    return CallToolResult(content=[TextContent(type="text", text=_text(d))],
                          structured_content=d, is_error=not d.get("ok", False))


def build(config: ServerConfig):
    """An `mcp` MCPServer exposing the tools of `Tools`, the reference and grammar resources and
    the `write_nda` prompt (imports the SDK lazily)."""
    from nda.mcp import teach

    class NdaMCPServer(MCPServer):
        """Arguments the SDK's schema check refuses (wrong JSON types, missing source) and
        anything a tool lets escape come back as the failure object with isError."""

        async def call_tool(self, name, arguments, context=None):
            try:
                return await super().call_tool(name, arguments, context)
            except ToolError as e:
                if self._tool_manager.get_tool(name) is None:
                    raise  # an unknown tool stays the protocol's error
                cause = e.__cause__
                if isinstance(cause, ValidationError):  # field names and reasons, never values
                    why = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
                                    for err in cause.errors()[:10])
                    return as_result(failure(INPUT_INVALID, f"invalid arguments for {name}: {why}"))
                return as_result(failure(INTERNAL, f"{name} failed ({type(cause or e).__name__})"))

    tools = Tools(config)
    srv = NdaMCPServer("nda", instructions=teach.INSTRUCTIONS)

    def annotations(title: str, read_only: bool, idempotent: bool = True,
                    destructive: bool = False) -> ToolAnnotations:
        return ToolAnnotations(title=title, read_only_hint=read_only, destructive_hint=destructive,
                               idempotent_hint=idempotent, open_world_hint=False)

    def tool(**kw):
        """`srv.tool` with the docstring as a one-paragraph description."""
        def register(fn):
            return srv.tool(description=" ".join(fn.__doc__.split()), **kw)(fn)
        return register

    def lim(limits: S.LimitsArg | None) -> dict | None:
        return None if limits is None else limits.asked()

    # -- programs ---------------------------------------------------------------------------
    @tool(annotations=annotations("Run an NDA program", read_only=True))
    def nda_run(
        source: Annotated[str | None, Field(description=(
            "The program itself (never a file path): text syntax, S-expression or base64 binary "
            "v2; it may call stored functions by bound name. Give `source` or `ref`."))] = None,
        ref: Annotated[str | None, Field(description=(
            "Run a stored program instead of `source`: bound name, hash or unique hash prefix."))] = None,
        syntax: SyntaxArg = None, input: Input = None, dim: Dim = None,
        tier: Annotated[S.TierName, Field(description=(
            "Execution tier: auto (the tiering policy), interp (tier 0, the oracle), closure "
            "(tier 1), native (tier 2, LLVM). Every tier gives the same result."))] = "auto",
        optimize: Annotated[bool, Field(description="Run the optimizer (tiers closure/native).")] = True,
        gate: Annotated[bool, Field(description=(
            "Statically validate first and refuse a program the gate proves wrong; false runs it "
            "anyway to observe the run-time error."))] = True,
        limits: LimitsOpt = None,
        full: Annotated[bool, Field(description=(
            f"Return every output value; by default an output vector longer than "
            f"{COMPACT_VEC} values is summarised (length, head, min, max, sum)."))] = False,
    ) -> Annotated[CallToolResult, S.RunOut]:
        """Run a program (`source`, or a stored one by `ref`) in the sandbox after the gate's
        static validation, and return its
        output vector, printed lines (output_log), node counts and timings. A program that fails
        at run time returns isError with its error_code (e.g. STACK_UNDERFLOW, FUEL_EXHAUSTED)."""
        return as_result(tools.run(source, syntax, input, dim, tier, optimize, lim(limits), gate,
                                   full, ref))

    @tool(annotations=annotations("Check an NDA program", read_only=True))
    def nda_check(
        source: Source, syntax: SyntaxArg = None,
        dim: Annotated[int | None, Field(ge=0, description=(
            "Length of the conditioning vector it will get (checks tensor shapes); omitted: "
            "unknown."))] = None,
        limits: LimitsOpt = None,
    ) -> Annotated[CallToolResult, S.CheckOut]:
        """Statically validate a program without running it: stack discipline, unbound
        variables, call targets, tensor shapes (given dim), limits. Reports every finding with
        its line:col and a hint; isError when there is any."""
        return as_result(tools.check(source, syntax, dim, lim(limits)))

    @tool(annotations=annotations("Convert an NDA program", read_only=True))
    def nda_format(
        source: Source, syntax: SyntaxArg = None,
        to: Annotated[S.Format, Field(description=(
            "Target form: sexpr, text, or binary (binary v2 container, returned as base64)."))] = "sexpr",
    ) -> Annotated[CallToolResult, S.FormatOut]:
        """Convert a program between its forms (the content address does not change)."""
        return as_result(tools.format(source, syntax, to))

    @tool(annotations=annotations("Hash an NDA program", read_only=True))
    def nda_hash(source: Source, syntax: SyntaxArg = None) -> Annotated[CallToolResult, S.HashOut]:
        """The program's content address (H2, 64 hex digits) and, for a module, each
        function's address."""
        return as_result(tools.hash(source, syntax))

    # -- store ------------------------------------------------------------------------------
    @tool(annotations=annotations("Commit an NDA program to the store", read_only=False,
                                      idempotent=False))
    def nda_commit(
        source: Source, syntax: SyntaxArg = None,
        message: Annotated[str, Field(description="Commit message (one line).")] = "",
        name: Annotated[str | None, Field(description=(
            "Bind this name to the program root (moving it if bound: the answer's `bindings` "
            "gives the previous target, and the name keeps its history). Omitted: no name."))] = None,
        namespace: Annotated[str | None, Field(description=(
            "Bind the module's functions (every def but `main`): 'lib' binds def f as 'lib.f', "
            "'' binds the bare name 'f'. Identifiers joined by dots. Omitted: the functions are "
            "stored but no name is bound; `main` is never bound implicitly."))] = None,
        input: Input = None, dim: Dim = None, limits: LimitsOpt = None,
    ) -> Annotated[CallToolResult, S.CommitOut]:
        """Gate (static validation, then a sandbox run on the given input) and store a program
        in the server's SiteMap in one transaction, binding only the names asked for (`name`,
        `namespace`). Calls by name link to the store's current bindings. A rejected program
        leaves the store unchanged and returns isError with the stage (gate | sandbox | names |
        store) and the reasons. Nothing is overwritten: the store is append-only, names keep
        their history."""
        return as_result(tools.commit(source, syntax, message, name, input, dim, lim(limits),
                                      namespace))

    @tool(annotations=annotations("Show a stored program", read_only=True))
    def nda_show(
        ref: Ref,
        format: Annotated[S.Format, Field(description="sexpr, text or binary (base64).")] = "sexpr",
    ) -> Annotated[CallToolResult, S.ShowOut]:
        """A stored program or function printed in `format`, with the address `ref` resolved to."""
        return as_result(tools.show(ref, format))

    @tool(annotations=annotations("Store log", read_only=True))
    def nda_log(
        limit: Annotated[int, Field(ge=0, description=(
            f"Most entries to return (at most the server's {config.max_log_entries})."))] = 20,
    ) -> Annotated[CallToolResult, S.LogOut]:
        """The store's newest commits (seq, message, state root), newest first, each with the
        names it bound or moved (`bindings`, with the previous target)."""
        return as_result(tools.log(limit))

    @tool(annotations=annotations("Names in the store", read_only=True))
    def nda_names(
        mode: Annotated[S.NamesMode, Field(description=(
            "list: every current binding (only names starting with `query` when given, e.g. "
            "'lib.'); search: bindings whose name contains `query` (case-insensitive), then "
            "close spellings; history: every binding `query` ever had, oldest first."))] = "list",
        query: Annotated[str | None, Field(description=(
            "A name prefix (list), part of a name (search) or a name (history)."))] = None,
        limit: Annotated[int, Field(ge=0, description="Most names to return.")] = 100,
    ) -> Annotated[CallToolResult, S.NamesOut]:
        """Name bindings of the store: name → program/function hash, with the previous target,
        the commit that bound it and the function's source signature."""
        return as_result(tools.names(mode, query, limit))

    @tool(annotations=annotations("Callers of a function", read_only=True))
    def nda_callers(ref: GraphRef) -> Annotated[CallToolResult, S.CallGraphOut]:
        """Stored functions and committed programs that call `ref` (every commit's CALLS
        triples), each by its bound name where it has one, else its address."""
        return as_result(tools.callers(ref))

    @tool(annotations=annotations("Dependencies of a function", read_only=True))
    def nda_dependencies(ref: GraphRef) -> Annotated[CallToolResult, S.CallGraphOut]:
        """Stored functions that `ref` calls (from the store's CALLS triples), each by its bound
        name where it has one, else its address."""
        return as_result(tools.dependencies(ref))

    @tool(annotations=annotations("Verify the store", read_only=True))
    def nda_verify() -> Annotated[CallToolResult, S.VerifyOut]:
        """Check the store's integrity (hashes, indexes, state root) and return its statistics;
        isError when a problem is found."""
        return as_result(tools.verify())

    @tool(annotations=annotations("Grammar of an NDA syntax", read_only=True))
    def nda_grammar(
        syntax: Annotated[S.GrammarSyntax, Field(description="text or sexpr.")] = "text",
        dialect: Annotated[S.Dialect, Field(description=(
            "lark (Lark EBNF) or gbnf (llama.cpp grammar, for constrained decoding)."))] = "lark",
    ) -> Annotated[CallToolResult, S.GrammarOut]:
        """The formal grammar of a syntax, to generate or validate programs."""
        return as_result(tools.grammar(syntax, dialect))

    # -- resources --------------------------------------------------------------------------
    def page_reader(name: str):
        def read() -> str:
            return teach.reference_text(name)
        read.__name__ = f"reference_{name.replace('-', '_')}"
        return read

    for page, (title, desc) in teach.reference_pages().items():
        srv.resource(f"nda://reference/{page}", name=f"reference/{page}", title=title,
                     description=desc, mime_type="text/markdown")(page_reader(page))

    def grammar_reader(syntax: str, dialect: str):
        def read() -> str:
            try:
                return teach.grammar_text(syntax, dialect)
            except teach.GrammarUnavailable as e:
                raise ResourceError(f"{e.message}; {e.diagnostics[0].hint}") from e
        read.__name__ = f"grammar_{syntax}_{dialect}"
        return read

    for syntax in ("text", "sexpr"):
        for dialect in ("lark", "gbnf"):
            srv.resource(f"nda://grammar/{syntax}.{dialect}", name=f"grammar/{syntax}.{dialect}",
                         title=f"{syntax} syntax grammar ({dialect})",
                         description=f"The {syntax} syntax as a {dialect} grammar",
                         mime_type="text/plain")(grammar_reader(syntax, dialect))

    @srv.resource("nda://schema/failure", name="schema/failure", title="The failure object",
                  description="JSON Schema of what every failed tool call returns (isError: true)",
                  mime_type="application/schema+json")
    def failure_schema() -> str:
        return json.dumps(S.Failure.model_json_schema(), indent=1)

    # -- prompt -----------------------------------------------------------------------------
    @srv.prompt(name="write_nda", title="Write, check and commit an NDA program")
    def write_nda(
        task: Annotated[str, Field(description="What the program should do.")] = "",
        syntax: Annotated[str, Field(description="text (default) or sexpr.")] = "text",
    ) -> str:
        """Teaches an agent to write an NDA program for a task, check it, run it and commit it."""
        return teach.write_prompt(task, "sexpr" if syntax.strip().lower() == "sexpr" else "text")

    return srv
