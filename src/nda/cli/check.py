"""`nda check FILE`: parse and statically validate a program without running it.

In: a program file (`.nda` text, `.sexpr`, `.ndab` binary v2, or with a store a stored
hash/name), `--dim N` (the conditioning width; without it the width is unknown and shapes that
depend on it are not checked), the run limits (`--fuel` …) the gate's provable-limit checks use,
and the store (`--store`) that call targets outside the file must exist in.
Out: every finding at once — all parse errors (the text parser recovers; the S-expression and
binary readers stop at their first error), or else every gate finding (`commit.static_findings`,
the very check `commit` applies) plus warnings — rendered for people as
`file:line:col: CODE: message`, the source line and a caret (text and S-expression sources),
or with `--json` one object `{ok, file, kind, input_len, errors, warnings, diagnostics: [...]}`.
Exit status: 0 no error (warnings allowed), 1 any error finding (parse, link or gate),
2 usage or input error (bad flag, unreadable file, unknown extension).

Additions over the gate's own diagnostics, all driven by the names the source spelt:
- an unbound-variable finding names the variable in its hint and suggests the closest bound
  name or keyword ("did you mean 'let'?");
- a Load of a name that no Let/Store anywhere in its function (or program) binds, and that the
  gate did not report (code after a definite failure is unreachable, so the gate is silent
  there), is a *warning* (UNDEFINED_VARIABLE): it fails whenever it is reached.
"""

from __future__ import annotations

import click

_pending: list = []  # groups that asked to register before this module finished importing


def register(main: click.Group) -> None:
    """Add `check` to `main` (deferred while this module is still importing)."""
    if "check_cmd" not in globals():
        _pending.append(main)
        return
    if check_cmd.name not in main.commands:
        main.add_command(check_cmd)


from nda.cli.app import (  # noqa: E402  (nda.cli imports this module at its end)
    EXIT_FAIL, EXIT_OK, Exit, emit_json, json_option, limit_options, limits_from, open_store,
    store_option, style, usage_fail,
)
from nda.core.errors import render_text  # noqa: E402
from nda.pipeline.check import CheckReport, check_file, gate_diagnostics  # noqa: E402,F401  (re-exported)


# ---------------------------------------------------------------------------------------------
# Rendering


def render_report(report: CheckReport) -> str:
    """Every diagnostic (location, source line, caret, hint), then a one-line summary."""
    blocks = []
    for d in report.diagnostics:
        text = render_text([d], report.source)
        if d.severity != "error":
            where = f"{d.span}: " if d.span is not None else ""
            first, _, rest = text.partition("\n")
            first = f"{where}{d.severity}: {first[len(where):]}"
            text = first + ("\n" + rest if rest else "")
        blocks.append(text)
    if report.ok:
        width = "unknown" if report.input_len is None else str(report.input_len)
        fns = f", {len(report.functions)} function(s)" if report.functions else ""
        summary = style("ok", fg="green") + f" {report.file}: gate passed (input width {width}{fns})"
        if report.warnings:
            summary += f", {report.warnings} warning(s)"
    else:
        what = "parse" if report.stage == "parse" else "gate"
        summary = (style("rejected", fg="red") + f" {report.file}: {report.errors} error(s)"
                   + (f", {report.warnings} warning(s)" if report.warnings else "") + f" ({what})")
    return "\n".join(blocks + [summary])


# ---------------------------------------------------------------------------------------------
# The verb


@click.command("check")
@click.argument("file")
@click.option("--dim", type=int, default=None,
              help="Width of the conditioning vector (default: unknown, so shapes that depend "
                   "on the input are not checked).")
@store_option
@limit_options
@json_option
def check_cmd(file, dim, store_path, as_json, **lim):
    """Parse and statically check a program (no run); report every finding at once.

    Exit 0 when there is no error (warnings allowed), 1 on any parse or gate error, 2 on usage
    errors.
    """
    from nda.pipeline.load import UsageError

    if dim is not None and dim < 0:
        usage_fail("--dim must be >= 0", as_json)
    store = open_store(store_path)
    try:
        report = check_file(file, input_len=dim, limits=limits_from(lim), store=store)
    except UsageError as e:
        usage_fail(e.message, as_json)
    finally:
        if store is not None:
            store.close()
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(render_report(report))
    raise Exit(EXIT_OK if report.ok else EXIT_FAIL)


for _group in _pending:
    register(_group)


__all__ = ["register", "check_cmd", "check_file", "gate_diagnostics", "render_report", "CheckReport"]
