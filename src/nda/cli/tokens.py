"""`nda tokens`: verify a received opcode token stream, or generate one (formats.md §5).

In: `nda tokens verify FILE` — a stream in the text form of `nda.syntax.tokens` (`-` reads stdin),
optionally `--budget` / `--cond` (must agree with the stream's headers) and `--store` (CALL
targets must exist there); `nda tokens generate --budget N --seed S` — greedy decoding over
seeded pseudo-random logits (`tokens.seeded_logits`), `--cond` the conditioning length,
`--store` to let CALL pick the store's bound names.
Out: for people, the verdict / the stream text, the root and whether the program was forced;
with `--json` exactly one object. Exit status: 0 accepted / generated, 1 the stream was
rejected (a positioned TokenStreamError diagnostic), 2 usage or input error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


def register(main: click.Group) -> None:
    from nda.cli.app import EXIT_FAIL, Exit, diag_fail, emit_json, json_option, open_store, store_option, usage_fail

    @main.group()
    def tokens():
        """Opcode token streams: verify a received stream, commit it, or generate one."""

    @tokens.command("verify")
    @click.argument("file")
    @click.option("--budget", type=click.IntRange(min=0), default=None,
                  help="Expected budget (enables the 85 % / 60 % / forced-termination checks).")
    @click.option("--cond", type=click.IntRange(1, 65535), default=None,
                  help="Conditioning length (default: the COND header, else 896).")
    @store_option
    @json_option
    def verify_cmd(file, budget, cond, store_path, as_json):
        """Replay FILE (text form) and accept it iff the recomputed root equals its ROOT."""
        from nda.syntax.tokens import TokenStreamError, target_checker
        from nda.syntax.tokens_text import verify_text

        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            usage_fail(f"cannot read {file}: {e.strerror or e}", as_json)
        store = open_store(store_path) if store_path else None
        if store_path and store is None:
            usage_fail(f"no store at {store_path}", as_json)
        try:
            prog = verify_text(text, budget=budget, conditioning_len=cond,
                               target_exists=target_checker(store) if store is not None else None,
                               file=None if file == "-" else file)
        except TokenStreamError as e:
            diag_fail(e, as_json, text, code=EXIT_FAIL)
        finally:
            if store is not None:
                store.close()
        info = prog.to_dict()
        del info["stream"]
        if as_json:
            emit_json({"ok": True, "file": file, "storable": prog.storable, **info})
        else:
            forced = " (forced: shown, never stored)" if prog.forced else ""
            click.echo(f"ok: root {prog.root.hex()}{forced}")
            click.echo(f"{len(prog.tokens)} tokens, {len(prog.sequence)} top-level nodes, "
                       f"budget {prog.budget if prog.budget is not None else 'unchecked'}, "
                       f"conditioning length {prog.conditioning_len}")
        raise Exit(0)

    @tokens.command("commit")
    @click.argument("file")
    @click.option("-m", "--message", default="", help="Commit message.")
    @click.option("--name", default=None, help="Also bind this name to the program root.")
    @click.option("--budget", type=click.IntRange(min=0), default=None,
                  help="Expected budget (enables the 85 % / 60 % / forced-termination checks).")
    @click.option("--cond", type=click.IntRange(1, 65535), default=None,
                  help="Conditioning length (default: the COND header, else 896).")
    @store_option
    @json_option
    def commit_cmd(file, message, name, budget, cond, store_path, as_json):
        """Verify FILE, then gate, run, scope-check (0.10) and store its program; a forced or
        rejected program leaves the store unchanged."""
        from nda.store.sitemap import SiteMap
        from nda.pipeline.commit import commit_stream
        from nda.syntax.tokens import TokenStreamError, target_checker
        from nda.syntax.tokens_text import verify_text

        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            usage_fail(f"cannot read {file}: {e.strerror or e}", as_json)
        path = Path(store_path or ".nda/sitemap.db")
        path.parent.mkdir(parents=True, exist_ok=True)
        store = SiteMap.open(str(path))
        try:
            try:
                prog = verify_text(text, budget=budget, conditioning_len=cond,
                                   target_exists=target_checker(store),
                                   file=None if file == "-" else file)
            except TokenStreamError as e:
                diag_fail(e, as_json, text, code=EXIT_FAIL)
            res = commit_stream(store, prog, message, name=name)
        finally:
            store.close()
        if as_json:
            emit_json(res.to_dict())
        elif res.ok:
            click.echo(f"committed: root {res.root.hex()} (commit #{res.seq})")
        else:
            click.echo(f"rejected ({res.stage}): {res.reason}", err=True)
        raise Exit(0 if res.ok else EXIT_FAIL)

    @tokens.command("generate")
    @click.option("--budget", type=click.IntRange(min=0), required=True, help="Max model choices.")
    @click.option("--seed", type=int, default=0, show_default=True, help="Seed of logits and provider.")
    @click.option("--cond", type=click.IntRange(1, 65535), default=896, show_default=True,
                  help="Conditioning length (initial width).")
    @store_option
    @json_option
    def generate_cmd(budget, seed, cond, store_path, as_json):
        """Greedy decoding over seeded pseudo-random logits; prints the stream text."""
        from nda.syntax.tokens import SeededProvider, StoreProvider, generate, seeded_logits

        store = open_store(store_path) if store_path else None
        if store_path and store is None:
            usage_fail(f"no store at {store_path}", as_json)
        try:
            provider = StoreProvider(store, seed=seed) if store is not None else SeededProvider(seed)
            prog = generate(seeded_logits(seed), budget, provider, cond)
        finally:
            if store is not None:
                store.close()
        if as_json:
            emit_json({"ok": True, "seed": seed, "storable": prog.storable, **prog.to_dict()})
        else:
            click.echo(prog.to_text())
            forced = " (forced: shown, never stored)" if prog.forced else ""
            click.echo(f"root {prog.root.hex()}{forced}", err=True)
        raise Exit(0)
