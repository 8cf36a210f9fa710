"""The MCP server: NDA tools for agents over the Model Context Protocol (official `mcp` SDK).

In: tool calls from an MCP client — program *source* as a string (text, S-expression, or
base64 binary v2), never a host path; limits and inputs as JSON values.
Out: one JSON object per call (`ok` plus the fields of the matching CLI verb's `--json`
output). Every failure is an object with `ok: false` and typed diagnostics (code, message,
position); a tool never raises into the protocol for bad NDA input.

Safety (the sandbox rules extend to the server): programs arrive as strings, so an agent cannot
make the server read a host file; the store is the one the server was started with; limits
asked for by an agent are clamped to the server's own (`ServerConfig.limits`): an agent can
only lower them. `build_server(config)` makes the server; `serve(config)` runs it on stdio
(`nda mcp`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from nda.core.errors import Diagnostic, NdaError
from nda.runtime.state import Limits

SYNTAXES = ("sexpr", "text", "binary")
FORMATS = ("sexpr", "text", "binary")


MAX_REF_LEN = 1024  # a hash, prefix or bound name; longer refs are rejected unread


@dataclass(frozen=True)
class ServerConfig:
    """What the server is allowed to do: its store (None = no store tools), its limits, the
    longest source / commit message it parses (characters; parse cost grows faster than
    linearly, so a 50 MB source must be refused before parsing) and the most log entries."""

    store_path: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_source_len: int = 1_048_576
    max_log_entries: int = 1000


def _fail(code: str, message: str, diagnostics=()) -> dict:
    diags = [d.to_dict() if isinstance(d, Diagnostic) else d for d in diagnostics]
    if not diags:
        diags = [Diagnostic(code, message).to_dict()]
    return {"ok": False, "error": {"code": code, "message": message}, "diagnostics": diags}


def _from_error(e: NdaError) -> dict:
    diags = getattr(e, "diagnostics", None) or [e.diagnostic()]
    return _fail(e.code, e.message, diags)


def clamp_limits(requested: dict | None, ceiling: Limits) -> Limits:
    """The server's limits lowered by `requested` (unknown names or bad values: ValueError)."""
    if requested is None:
        return ceiling
    if not isinstance(requested, dict) or not all(isinstance(k, str) for k in requested):
        raise ValueError(f"limits must be an object of limit names to integers, got "
                         f"{type(requested).__name__}")
    if not requested:
        return ceiling
    asked = Limits.from_dict(dict(requested))
    return Limits(**{f: min(getattr(asked, f), getattr(ceiling, f))
                     for f in Limits.field_names() if f in requested} |
                  {f: getattr(ceiling, f) for f in Limits.field_names() if f not in requested})


def _bad(message: str):
    from nda.pipeline.load import UsageError

    return UsageError(message)


def _want_int(name: str, v: Any, lo: int, hi: int | None = None) -> int:
    """An integer argument (bool, float, str are refused) in lo..hi."""
    if not isinstance(v, int) or isinstance(v, bool):
        raise _bad(f"{name} must be an integer, got {type(v).__name__}")
    if v < lo or (hi is not None and v > hi):
        raise _bad(f"{name} {v if v.bit_length() < 64 else '(huge)'} out of range "
                   f"{lo}..{'' if hi is None else hi}")
    return v


def _want_bool(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise _bad(f"{name} must be true or false, got {type(v).__name__}")
    return v


def _want_str(name: str, v: Any, max_len: int, optional: bool = False) -> str | None:
    if v is None and optional:
        return None
    if not isinstance(v, str):
        raise _bad(f"{name} must be a string, got {type(v).__name__}")
    if len(v) > max_len:
        raise _bad(f"{name} too long: {len(v)} characters > {max_len}")
    return v


def _load(source: str, syntax: str, store=None, max_len: int | None = None):
    from nda.pipeline import load as pipeline

    if max_len is not None:
        _want_str("source", source, max_len)
    if syntax not in SYNTAXES:
        raise pipeline.UsageError(f"unknown syntax '{syntax}' (expected {', '.join(SYNTAXES)})")
    if syntax == "binary":
        try:
            data = base64.b64decode(source, validate=True)
        except (binascii.Error, ValueError) as e:
            raise pipeline.UsageError(f"binary source is not valid base64: {e}") from e
        return pipeline.load_bytes(data, store, "<mcp>")
    return pipeline.load_text(source, syntax, store, "<mcp>")


def _conditioning(input: list[float] | None, dim: int | None, limits: Limits):
    """The conditioning vector: `input` (a list of numbers, at most max_input_len, checked
    before anything is copied) or `dim` ones (default 896)."""
    if dim is not None:
        _want_int("dim", dim, 0, limits.max_input_len)
    if input is not None:
        if not isinstance(input, (list, tuple)):
            raise _bad(f"input must be a list of numbers, got {type(input).__name__}")
        if len(input) > limits.max_input_len:
            raise _bad(f"input has {len(input)} values > max_input_len {limits.max_input_len}")
        if dim is not None and len(input) != dim:
            raise _bad(f"input has {len(input)} values but dim is {dim}")
        for i, x in enumerate(input):
            if not isinstance(x, (int, float)) or isinstance(x, bool):
                raise _bad(f"input[{i}] must be a number, got {type(x).__name__}")
            if isinstance(x, int) and x.bit_length() > 1024:  # the sandbox would panic on it
                raise _bad(f"input[{i}] is too large for a float")
        return list(input)
    n = 896 if dim is None else dim
    if n > limits.max_input_len:
        raise _bad(f"dim {n} out of range 0..{limits.max_input_len}")
    return [1.0] * n


class Tools:
    """The tool implementations, independent of the protocol (tested directly and through MCP)."""

    def __init__(self, config: ServerConfig):
        self.config = config
        from nda.tiers.closure import Engine

        self.engine = Engine()  # this server's compile caches

    # -- store ------------------------------------------------------------------------------
    def _store(self, create: bool = False):
        from pathlib import Path

        from nda.pipeline.load import UsageError
        from nda.store.sitemap import SiteMap

        if self.config.store_path is None:
            raise UsageError("this server was started without a store")
        p = Path(self.config.store_path)
        if not p.exists():
            if not create:
                raise UsageError(f"no store at {p} yet (commit something first)")
            p.parent.mkdir(parents=True, exist_ok=True)
        return SiteMap.open(str(p))

    def _optional_store(self):
        """The store for resolving calls, when the server has one that exists."""
        from pathlib import Path

        if self.config.store_path is None or not Path(self.config.store_path).exists():
            return None
        return self._store()

    def _guard(self, fn, *args, **kw) -> dict:
        try:
            return fn(*args, **kw)
        except NdaError as e:
            return _from_error(e)
        except ValueError as e:  # bad limits / tier names from the agent
            return _fail("INPUT_INVALID", str(e))
        except Exception as e:  # a bug, not the agent's input: still one object, never a raise
            return _fail("INTERNAL", f"internal error ({type(e).__name__})")

    # -- tools ------------------------------------------------------------------------------
    def run(self, source: str, syntax: str = "sexpr", input: list[float] | None = None,
            dim: int | None = None, tier: str = "auto", optimize: bool = True,
            limits: dict | None = None, gate: bool = True) -> dict:
        return self._guard(self._run, source, syntax, input, dim, tier, optimize, limits, gate)

    def _run(self, source, syntax, input, dim, tier, optimize, limits, gate) -> dict:
        from nda.pipeline.commit import static_check
        from nda.sandbox.runner import resolve_tier, run

        lim = clamp_limits(limits, self.config.limits)
        resolve_tier(tier)
        _want_bool("optimize", optimize)
        _want_bool("gate", gate)
        _want_str("source", source, self.config.max_source_len)
        cond = _conditioning(input, dim, lim)
        store = self._optional_store()
        try:
            loaded = _load(source, syntax, store)
            if gate:
                diags = static_check(loaded, input_len=len(cond), limits=lim, store=store)
                if diags:
                    d = _fail("VALIDATION_ERROR", f"validation: {diags[0].message}", diags)
                    return {**d, "stage": "gate", "executed_nodes": 0}
            res = run(loaded.sequence, cond, store=loaded.resolver, limits=lim, tier=tier,
                      optimize=optimize, engine=self.engine)
        finally:
            if store is not None:
                store.close()
        d = res.to_dict(tier_as_name=True)
        d["ok"] = res.is_success()
        return d

    def check(self, source: str, syntax: str = "sexpr", dim: int | None = None,
              limits: dict | None = None) -> dict:
        return self._guard(self._check, source, syntax, dim, limits)

    def _check(self, source, syntax, dim, limits) -> dict:
        from nda.pipeline.commit import static_check

        lim = clamp_limits(limits, self.config.limits)
        if dim is not None:
            _want_int("dim", dim, 0, lim.max_input_len)
        _want_str("source", source, self.config.max_source_len)
        store = self._optional_store()
        try:
            loaded = _load(source, syntax, store)
            diags = static_check(loaded, input_len=dim, limits=lim, store=store)
        finally:
            if store is not None:
                store.close()
        return {"ok": not diags, "diagnostics": [d.to_dict() for d in diags]}

    def format(self, source: str, syntax: str = "sexpr", to: str = "sexpr") -> dict:
        return self._guard(self._format, source, syntax, to)

    def _format(self, source, syntax, to) -> dict:
        from nda.pipeline.load import UsageError, format_loaded

        if to not in FORMATS:
            raise UsageError(f"unknown format '{to}' (expected {', '.join(FORMATS)})")
        out = format_loaded(_load(source, syntax, max_len=self.config.max_source_len), to)
        if isinstance(out, bytes):
            return {"ok": True, "format": to, "base64": base64.b64encode(out).decode("ascii")}
        return {"ok": True, "format": to, "text": out}

    def hash(self, source: str, syntax: str = "sexpr") -> dict:
        return self._guard(self._hash, source, syntax)

    def _hash(self, source, syntax) -> dict:
        from nda.core.hashing import program_hash

        loaded = _load(source, syntax, max_len=self.config.max_source_len)
        d = {"ok": True, "program_hash": program_hash(loaded.sequence).hex()}
        if loaded.module is not None:
            d["functions"] = {x.name: x.address.hex() for x in loaded.module.defs}
        return d

    def commit(self, source: str, syntax: str = "sexpr", message: str = "", name: str | None = None,
               input: list[float] | None = None, dim: int | None = None,
               limits: dict | None = None) -> dict:
        return self._guard(self._commit, source, syntax, message, name, input, dim, limits)

    def _commit(self, source, syntax, message, name, input, dim, limits) -> dict:
        from nda.pipeline.commit import commit

        lim = clamp_limits(limits, self.config.limits)
        _want_str("source", source, self.config.max_source_len)
        _want_str("message", message, self.config.max_source_len)
        _want_str("name", name, MAX_REF_LEN, optional=True)
        cond = _conditioning(input, dim, lim)
        store = self._store(create=True)
        try:
            loaded = _load(source, syntax, store)
            res = commit(store, loaded, cond, message=message,
                         limits=lim, name=name)
        finally:
            store.close()
        return res.to_dict()

    def show(self, ref: str, format: str = "sexpr") -> dict:
        return self._guard(self._show, ref, format)

    def _show(self, ref, format) -> dict:
        from nda.pipeline.load import UsageError, format_loaded, load_stored

        if format not in FORMATS:
            raise UsageError(f"unknown format '{format}' (expected {', '.join(FORMATS)})")
        _want_str("ref", ref, MAX_REF_LEN)
        store = self._store()
        try:
            loaded = load_stored(store, ref)
            out = format_loaded(loaded, format)
        finally:
            store.close()
        if isinstance(out, bytes):
            return {"ok": True, "ref": ref, "format": format, "base64": base64.b64encode(out).decode("ascii")}
        return {"ok": True, "ref": ref, "format": format, "text": out}

    def log(self, limit: int = 20) -> dict:
        return self._guard(self._log, limit)

    def _log(self, limit) -> dict:
        n = min(_want_int("limit", limit, 0), self.config.max_log_entries)  # clamped
        store = self._store()
        try:
            entries, root = store.log(n), store.root()
        finally:
            store.close()
        return {"ok": True, "state_root": root.hex(),
                "entries": [e.to_dict() for e in reversed(entries)]}


def build_server(config: ServerConfig = ServerConfig()):
    """An `mcp` MCPServer exposing the tools of `Tools` (imports the SDK lazily)."""
    import json

    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import CallToolResult, TextContent
    from pydantic import ValidationError

    def as_result(d: dict) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=json.dumps(d, indent=2))],
                              structured_content=d)

    class NdaMCPServer(MCPServer):
        """Arguments the SDK's schema check refuses (wrong JSON types, missing source) and
        anything a tool lets escape come back as the tools' own `ok: false` object."""

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
                    return as_result(_fail("INPUT_INVALID", f"invalid arguments for {name}: {why}"))
                return as_result(_fail("INTERNAL", f"{name} failed ({type(cause or e).__name__})"))

    tools = Tools(config)
    srv = NdaMCPServer("nda", instructions=(
        "Run, check, format, hash and store NDA programs. Programs are given as source strings: "
        "syntax 'sexpr' (S-expression), 'text' (human syntax) or 'binary' (base64 of binary v2). "
        "Every tool returns a JSON object with 'ok'; failures carry typed diagnostics."))

    @srv.tool()
    def nda_run(source: str, syntax: str = "sexpr", input: list[float] | None = None,
                dim: int | None = None, tier: str = "auto", optimize: bool = True,
                limits: dict[str, int] | None = None, gate: bool = True) -> dict[str, Any]:
        """Run a program in the sandbox after the gate's static validation (gate=false skips it,
        to observe a run-time error). input: conditioning vector (default: `dim` ones, 896).
        limits: any of fuel, deadline_ms, max_memory_bytes, max_output_bytes, max_call_depth,
        max_while_iterations, max_input_len, max_node_depth (capped by the server's).
        Returns output_vec, output_log (prints), executed_nodes, error/error_code, tier, timings."""
        return tools.run(source, syntax, input, dim, tier, optimize, limits, gate)

    @srv.tool()
    def nda_check(source: str, syntax: str = "sexpr", dim: int | None = None,
                  limits: dict[str, int] | None = None) -> dict[str, Any]:
        """Statically validate a program without running it (stack depth, shapes given dim,
        unbound variables, call targets, limits). Returns every finding with its position."""
        return tools.check(source, syntax, dim, limits)

    @srv.tool()
    def nda_format(source: str, syntax: str = "sexpr", to: str = "sexpr") -> dict[str, Any]:
        """Convert a program between forms: to = sexpr | text | binary (binary as base64)."""
        return tools.format(source, syntax, to)

    @srv.tool()
    def nda_hash(source: str, syntax: str = "sexpr") -> dict[str, Any]:
        """The program's content address (H2, hex) and its functions' addresses."""
        return tools.hash(source, syntax)

    @srv.tool()
    def nda_commit(source: str, syntax: str = "sexpr", message: str = "", name: str | None = None,
                   input: list[float] | None = None, dim: int | None = None,
                   limits: dict[str, int] | None = None) -> dict[str, Any]:
        """Gate (validate, run in the sandbox) and store a program in the server's SiteMap in one
        transaction; a rejected program leaves the store unchanged and the reason is returned."""
        return tools.commit(source, syntax, message, name, input, dim, limits)

    @srv.tool()
    def nda_show(ref: str, format: str = "sexpr") -> dict[str, Any]:
        """A stored program by hash, unique hash prefix or bound name, printed in `format`."""
        return tools.show(ref, format)

    @srv.tool()
    def nda_log(limit: int = 20) -> dict[str, Any]:
        """The store's newest commits (root history), newest first."""
        return tools.log(limit)

    return srv


def serve(config: ServerConfig = ServerConfig()) -> None:
    """Run the server on stdio until the client disconnects."""
    build_server(config).run("stdio")


def register(main) -> None:
    """Add the `nda mcp` verb to the CLI group `main`."""
    import click

    from nda.cli.app import limit_options, limits_from

    @click.command("mcp")
    @click.option("--store", "store_path", envvar="NDA_STORE", default=None,
                  help="SiteMap for the store tools (default: none; commit/show/log then fail).")
    @click.option("--max-source-len", type=click.IntRange(min=1), default=ServerConfig.max_source_len,
                  show_default=True, help="Longest program source a tool accepts (characters).")
    @click.option("--max-log-entries", type=click.IntRange(min=0), default=ServerConfig.max_log_entries,
                  show_default=True, help="Most commits nda_log returns.")
    @limit_options
    def mcp_cmd(store_path, max_source_len, max_log_entries, **lim):
        """Serve the NDA tools to agents over MCP on stdio (limits here are the ceiling)."""
        serve(ServerConfig(store_path=store_path, limits=limits_from(lim),
                           max_source_len=max_source_len, max_log_entries=max_log_entries))

    main.add_command(mcp_cmd)
