"""`nda grammar`: print the grammar of a program syntax for constrained decoding.

In: `nda grammar --syntax text|sexpr --dialect lark|gbnf [-o FILE] [--json]`.
Out: the grammar text on stdout (or written to FILE); with `--json` exactly one object
{"ok", "syntax", "dialect", "start_rule", "grammar"} (or {"ok": false, …} on error). Exit 0, or 2
when FILE cannot be written.
"""

from __future__ import annotations

from pathlib import Path

import click


def register(main: click.Group) -> None:
    from nda.cli.app import emit_json, json_option, usage_fail
    from nda.syntax.grammars import DIALECTS, START_RULES, SYNTAXES, grammar

    @main.command("grammar")
    @click.option("--syntax", type=click.Choice(SYNTAXES), default="text", show_default=True,
                  help="text (.nda) or sexpr (.sexpr).")
    @click.option("--dialect", type=click.Choice(DIALECTS), default="lark", show_default=True,
                  help="lark (Lark EBNF: outlines, llguidance-style) or gbnf (llama.cpp, xgrammar).")
    @click.option("-o", "--output", default=None, help="Write the grammar to this file.")
    @json_option
    def grammar_cmd(syntax, dialect, output, as_json):
        """Print the grammar of SYNTAX in DIALECT (see docs/grammars.md)."""
        text = grammar(syntax, dialect)
        if output:
            try:
                Path(output).write_text(text, encoding="utf-8")
            except OSError as e:
                usage_fail(f"cannot write {output}: {e.strerror or e}", as_json)
        if as_json:
            emit_json({"ok": True, "syntax": syntax, "dialect": dialect,
                       "start_rule": START_RULES[dialect], "output": output,
                       "grammar": None if output else text})
        elif not output:
            click.echo(text, nl=False)
