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

from .errors import Diagnostic, NdaError
from .state import Limits

SYNTAXES = ("sexpr", "text", "binary")
FORMATS = ("sexpr", "text", "binary")


@dataclass(frozen=True)
class ServerConfig:
    """What the server is allowed to do: its store (None = no store tools) and its limits."""

    store_path: str | None = None
    limits: Limits = field(default_factory=Limits)


def _fail(code: str, message: str, diagnostics=()) -> dict:
    diags = [d.to_dict() if isinstance(d, Diagnostic) else d for d in diagnostics]
    return {"ok": False, "error": {"code": code, "message": message}, "diagnostics": diags}


def _from_error(e: NdaError) -> dict:
    diags = getattr(e, "diagnostics", None) or [e.diagnostic()]
    return _fail(e.code, e.message, diags)


def clamp_limits(requested: dict | None, ceiling: Limits) -> Limits:
    """The server's limits lowered by `requested` (unknown names or bad values: ValueError)."""
    if not requested:
        return ceiling
    asked = Limits.from_dict(dict(requested))
    return Limits(**{f: min(getattr(asked, f), getattr(ceiling, f))
                     for f in Limits.field_names() if f in requested} |
                  {f: getattr(ceiling, f) for f in Limits.field_names() if f not in requested})


def _load(source: str, syntax: str, store=None):
    from . import pipeline

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
    from .pipeline import UsageError

    if input is not None and dim is not None and len(input) != dim:
        raise UsageError(f"input has {len(input)} values but dim is {dim}")
    if input is not None:
        return list(input)
    n = 896 if dim is None else dim
    if n < 0 or n > limits.max_input_len:
        raise UsageError(f"dim {n} out of range 0..{limits.max_input_len}")
    return [1.0] * n


class Tools:
    """The tool implementations, independent of the protocol (tested directly and through MCP)."""

    def __init__(self, config: ServerConfig):
        self.config = config
        from .closure import Engine

        self.engine = Engine()  # this server's compile caches

    # -- store ------------------------------------------------------------------------------
    def _store(self, create: bool = False):
        from pathlib import Path

        from .pipeline import UsageError
        from .store import SiteMap

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

    # -- tools ------------------------------------------------------------------------------
    def run(self, source: str, syntax: str = "sexpr", input: list[float] | None = None,
            dim: int | None = None, tier: str = "auto", optimize: bool = True,
            limits: dict | None = None, gate: bool = True) -> dict:
        return self._guard(self._run, source, syntax, input, dim, tier, optimize, limits, gate)

    def _run(self, source, syntax, input, dim, tier, optimize, limits, gate) -> dict:
        from .commit import static_check
        from .sandbox import resolve_tier, run

        lim = clamp_limits(limits, self.config.limits)
        resolve_tier(tier)
        store = self._optional_store()
        try:
            loaded = _load(source, syntax, store)
            cond = _conditioning(input, dim, lim)
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
        from .commit import static_check

        lim = clamp_limits(limits, self.config.limits)
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
        from .pipeline import UsageError, format_loaded

        if to not in FORMATS:
            raise UsageError(f"unknown format '{to}' (expected {', '.join(FORMATS)})")
        out = format_loaded(_load(source, syntax), to)
        if isinstance(out, bytes):
            return {"ok": True, "format": to, "base64": base64.b64encode(out).decode("ascii")}
        return {"ok": True, "format": to, "text": out}

    def hash(self, source: str, syntax: str = "sexpr") -> dict:
        return self._guard(self._hash, source, syntax)

    def _hash(self, source, syntax) -> dict:
        from .hashing import program_hash

        loaded = _load(source, syntax)
        d = {"ok": True, "program_hash": program_hash(loaded.sequence).hex()}
        if loaded.module is not None:
            d["functions"] = {x.name: x.address.hex() for x in loaded.module.defs}
        return d

    def commit(self, source: str, syntax: str = "sexpr", message: str = "", name: str | None = None,
               input: list[float] | None = None, dim: int | None = None,
               limits: dict | None = None) -> dict:
        return self._guard(self._commit, source, syntax, message, name, input, dim, limits)

    def _commit(self, source, syntax, message, name, input, dim, limits) -> dict:
        from .commit import commit

        lim = clamp_limits(limits, self.config.limits)
        store = self._store(create=True)
        try:
            loaded = _load(source, syntax, store)
            res = commit(store, loaded, _conditioning(input, dim, lim), message=message,
                         limits=lim, name=name)
        finally:
            store.close()
        return res.to_dict()

    def show(self, ref: str, format: str = "sexpr") -> dict:
        return self._guard(self._show, ref, format)

    def _show(self, ref, format) -> dict:
        from .pipeline import UsageError, format_loaded

        if format not in FORMATS:
            raise UsageError(f"unknown format '{format}' (expected {', '.join(FORMATS)})")
        store = self._store()
        try:
            loaded = store.load_program_ref(ref)
            out = format_loaded(loaded, format)
        finally:
            store.close()
        if isinstance(out, bytes):
            return {"ok": True, "ref": ref, "format": format, "base64": base64.b64encode(out).decode("ascii")}
        return {"ok": True, "ref": ref, "format": format, "text": out}

    def log(self, limit: int = 20) -> dict:
        return self._guard(self._log, limit)

    def _log(self, limit) -> dict:
        store = self._store()
        try:
            entries, root = store.log(max(0, int(limit))), store.root()
        finally:
            store.close()
        return {"ok": True, "state_root": root.hex(),
                "entries": [e.to_dict() for e in reversed(entries)]}


def build_server(config: ServerConfig = ServerConfig()):
    """An `mcp` MCPServer exposing the tools of `Tools` (imports the SDK lazily)."""
    from mcp.server.mcpserver import MCPServer

    tools = Tools(config)
    srv = MCPServer("nda", instructions=(
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

    from .cli import limit_options, limits_from

    @click.command("mcp")
    @click.option("--store", "store_path", envvar="NDA_STORE", default=None,
                  help="SiteMap for the store tools (default: none; commit/show/log then fail).")
    @limit_options
    def mcp_cmd(store_path, **lim):
        """Serve the NDA tools to agents over MCP on stdio (limits here are the ceiling)."""
        serve(ServerConfig(store_path=store_path, limits=limits_from(lim)))

    main.add_command(mcp_cmd)
