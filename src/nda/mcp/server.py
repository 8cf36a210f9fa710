"""The MCP server: NDA tools, resources and a prompt for agents (official `mcp` SDK).

In: MCP requests from a client — tool calls with program *source* strings (text, S-expression or
base64 binary v2, never a host path; `syntax` optional) or stored refs, limits as an object of
named keys; resource reads (`nda://reference/*`, `nda://grammar/*`); the `write_nda` prompt.
Out: for each tool call a result with structured content (the tool's output schema) and the
same JSON as text. A failure has `isError: true` and the CLI's `--json` failure object
(`ok: false, error_code, error, diagnostics`), also for arguments the schema refuses.

Tools (all `nda_*`): run, check, commit, show, log, names, callers, dependencies, verify, format,
hash, grammar — registered in `nda.mcp.surface`, implemented by `nda.mcp.tools.Tools`, with
schemas in `nda.mcp.schemas` and teaching material in `nda.mcp.teach`. This module stays light
(the CLI imports it to register `nda mcp`).

Safety (the sandbox rules extend to the server): programs arrive as strings, so an agent cannot
make the server read a host file; the store is the one the server was started with; limits
asked for by an agent are clamped to the server's own (`ServerConfig.limits`). `build_server
(config)` makes the server; `serve(config)` runs it on stdio (`nda mcp`).
"""

from __future__ import annotations

from nda.mcp.tools import ServerConfig, Tools, clamp_limits  # noqa: F401  (public names)


def build_server(config: ServerConfig = ServerConfig()):
    """An `mcp` MCPServer with the NDA tools, resources and prompt (imports the SDK lazily)."""
    from nda.mcp.surface import build

    return build(config)


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
        """Serve the NDA tools, the language reference and a prompt to agents over MCP on stdio
        (limits here are the ceiling for every call)."""
        serve(ServerConfig(store_path=store_path, limits=limits_from(lim),
                           max_source_len=max_source_len, max_log_entries=max_log_entries))

    main.add_command(mcp_cmd)
