"""Store verbs of the `nda` command line (runtime.md §9): commit, show, log, verify, triples,
names, import-sitemap, export-sitemap.

In: argv (through `nda.cli.app.main`, which calls `register(main)`).
Out: readable rich tables, or exactly one JSON object with `--json`; exit status 0 success,
1 the program or check failed (rejected commit, verify problems, import problems), 2 usage or
input error (bad flag, unreadable file, unknown hash/name, no store).

The store is `./.nda/sitemap.db` unless `--store PATH` or `$NDA_STORE` says otherwise; `commit`
and `import-sitemap` create it (and its directory), the other verbs require it to exist. A
commit that is rejected (parse, gate, sandbox or scope) or fails leaves the store unchanged —
and when that commit would have created the store, no store file is left behind.
`show --depth N` also prints the stored callees reachable through N levels of calls;
`show --format dot|svg` draws the node (and those callees) through `nda.cli.graph`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import click

_pending: list = []  # groups that asked to register before this module finished importing


def register(main: click.Group) -> None:
    """Add the store verbs to `main` (deferred while this module is still importing, which
    happens when `nda.cli.store` is imported before `nda.cli.app`)."""
    if "VERBS" not in globals():
        _pending.append(main)
        return
    for cmd in VERBS:
        if cmd.name not in main.commands:
            main.add_command(cmd)


from nda.cli.app import (  # noqa: E402  (nda.cli imports this module at its end)
    EXIT_FAIL, EXIT_OK, Exit, diag_fail, emit_json, json_option, limit_options, limits_from,
    load_program, parse_input, store_option, usage_fail,
)
from nda.core.errors import NdaError, render_text  # noqa: E402

DEFAULT_STORE = ".nda/sitemap.db"


def _console():
    import sys

    from nda.cli.app import console

    # full hashes must stay on one line when the output is piped or captured
    return console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 240)


def _table(*columns: str):
    from rich.table import Table

    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for c in columns:
        t.add_column(c, no_wrap=True)
    return t


def _open(store_path: str | None, as_json: bool, create: bool = False):
    from nda.store.sitemap import SiteMap

    p = Path(store_path or DEFAULT_STORE)
    if not p.exists():
        if not create:
            usage_fail(f"no store at {p} (commit something first, or pass --store / set NDA_STORE)", as_json)
        p.parent.mkdir(parents=True, exist_ok=True)
    try:
        return SiteMap.open(str(p))
    except NdaError as e:
        usage_fail(e.message, as_json)


def _time(us: int | None) -> str:
    if not us:
        return "-"
    return datetime.fromtimestamp(us / 1e6, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _term(tok: str, as_json: bool):
    """A triple query term: `*`, `_` or `?` is a wildcard; otherwise the text form's term."""
    from nda.syntax.triples import parse_term

    if tok in ("*", "_", "?"):
        return None
    try:
        return parse_term(tok)
    except ValueError as e:
        usage_fail(str(e), as_json)


# ---------------------------------------------------------------------------------------------
# JSON tree of a node


def node_json(node) -> dict:
    """A node as nested JSON: kind, then its fields (children nested, planes as hex)."""
    from nda.core import ir

    out: dict = {"kind": type(node).__name__}
    for name, kind in node.FIELDS:
        v = getattr(node, name)
        if kind == "node":
            out[name] = node_json(v)
        elif kind in ("nodes", "optnodes"):
            out[name] = None if v is None else [node_json(c) for c in v]
        elif kind == "optnode":
            out[name] = None if v is None else node_json(v)
        elif kind == "bytes":
            out[name] = v.hex()
        elif kind == "target":
            out[name] = {"form": type(v).__name__, "value": str(v)}
        elif kind.startswith("enum:"):
            enum = ir.ENUMS[kind[4:]]
            out[name] = ir.ENUM_SPELLING[enum].get(int(v), int(v))
        elif kind == "f32":
            import numpy as np

            out[name] = {"bits": f"0x{v:08x}", "value": repr(float(np.array(v, dtype=np.uint32).view(np.float32)))}
        else:
            out[name] = v
    return out


# ---------------------------------------------------------------------------------------------
# Verbs


@click.command("commit")
@click.argument("file")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("--input", "input_spec", default=None, help="Conditioning vector: 1,2,-1 | @file.json | @file.npy")
@click.option("--dim", type=int, default=None, help="Use N ones as the conditioning vector (default 896).")
@click.option("--name", default=None, help="Also bind this name to the program root.")
@click.option("--scope", "scope_threshold", type=float, default=None, help="Require the scope check (e.g. 0.10).")
@click.option("--tier", default="auto", show_default=True, help="Tier of the gate's sandbox run.")
@store_option
@limit_options
@json_option
def commit_cmd(file, message, input_spec, dim, name, scope_threshold, tier, store_path, as_json, **lim):
    """Gate (validate, run, optional scope check) and store a program in one transaction."""
    from nda.pipeline.commit import commit

    path = Path(store_path or DEFAULT_STORE)
    fresh, fresh_dir = not path.exists(), not path.parent.exists()
    store = _open(store_path, as_json, create=True)
    committed = False
    try:
        loaded = load_program(file, as_json, store)
        cond = parse_input(input_spec, dim, as_json, limits_from(lim).max_input_len)
        res = commit(store, loaded, cond, message=message, limits=limits_from(lim),
                     scope_threshold=scope_threshold, name=name, tier=tier)
        committed = res.ok
    finally:
        store.close()
        if fresh and not committed:  # a rejected first commit leaves no store behind
            _remove_store_files(path, fresh_dir)
    if as_json:
        emit_json(res.to_dict())
    elif res.ok:
        c = _console()
        t = _table("", "")
        t.add_row("program root", res.root.hex())
        t.add_row("v1 program hash", f"{res.program_v1:016x}")
        t.add_row("state root", res.state_root.hex())
        t.add_row("commit", f"#{res.seq} {res.commit_id.hex()}")
        for fn, addr in res.names.items():
            t.add_row(f"fn {fn}", addr.hex())
        if not res.gate_checked:
            t.add_row("note", "static validation unavailable (no nda.analysis.gate); gate step skipped")
        c.print("[green]committed[/green]")
        c.print(t)
    else:
        click.echo(f"rejected ({res.stage}): {res.reason}", err=True)
        if res.stage == "gate" and res.diagnostics:
            click.echo(render_text(res.diagnostics, loaded.source), err=True)
    raise Exit(EXIT_OK if res.ok else EXIT_FAIL)


def _remove_store_files(path: Path, remove_dir: bool) -> None:
    """Delete a store this command created (and its SQLite side files, and its directory when
    this command created that too and it is empty)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    if remove_dir:
        try:
            path.parent.rmdir()
        except OSError:
            pass


def _show_one(store, rec, fmt: str) -> dict:
    """One stored node rendered in `fmt` (+ facts)."""
    from nda.core import ir
    from nda.syntax.sexpr import print_node, print_sexpr

    seq = tuple(rec.node.children) if type(rec.node) is ir.Scope else (rec.node,)
    names = store.names_for(seq)
    info = {"hash": rec.hash.hex(), "kind": type(rec.node).__name__, "v1_hash": f"{rec.v1_hash:016x}",
            "program": rec.is_program,
            "program_v1": None if not rec.is_program else f"{store.program_v1(rec.hash):016x}",
            "group": None if rec.group is None else rec.group.hash.hex(), "index": rec.index,
            "names": [n for n, h, _, _ in store.names() if h == rec.hash]}
    if fmt == "sexpr":
        info["sexpr"] = print_sexpr(seq, names) if rec.is_program else print_node(rec.node, names)
    elif fmt == "text":
        from nda.syntax.text import print_text

        info["text"] = print_text(_text_module(store, rec), names)
    elif fmt == "json":
        info["tree"] = node_json(rec.node)
    else:
        from nda.syntax.triples import format_triples_text

        ids = {rec.v1_hash} | ({store.program_v1(rec.hash)} if rec.is_program else set())
        if rec.group is not None:
            from nda.core.hashing import alias_of

            ids.add(alias_of(rec.hash))
        own = store.node_origin_triples(rec.hash)
        live = sorted({t for i in ids for t in store.find_live_triples(s=i) + store.find_live_triples(o=i)})
        terms = {x for t in own + live for x in (t.subject, t.object)}
        dictionary = store.strings_for(terms)
        info["triples"] = [t.to_dict() for t in own]
        info["live_triples"] = [t.to_dict() for t in live]
        info["text"] = format_triples_text(own + [t for t in live if t not in own], dictionary)
    return info


def _text_module(store, rec):
    """A Module to print as text: the node as `fn main`, or a whole group with its members'
    bound names (GroupRef calls become calls by name)."""
    from nda.core import ir
    from nda.core.link import rewrite_calls

    if rec.group is None:
        body = rec.node if type(rec.node) is ir.Scope else ir.Scope((rec.node,))
        return ir.Module((ir.Def("main", body),))
    bound: dict = {}
    for n, h, _, _ in store.names():
        bound.setdefault(h, n)
    names = [bound.get(a, f"member_{i}") for i, a in enumerate(rec.group.members)]

    def named(t):
        return ir.NamedRef(names[t.index]) if type(t) is ir.GroupRef and t.index < len(names) else None

    return ir.Module(tuple(ir.Def(names[i], rewrite_calls(store.get_node(a), named))
                           for i, a in enumerate(rec.group.members)))


@click.command("show")
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["sexpr", "text", "json", "triples", "dot", "svg"]),
              default="sexpr", show_default=True, help="dot / svg: a picture (svg needs Graphviz).")
@click.option("--depth", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also show stored callees up to N calls deep.")
@store_option
@json_option
def show_cmd(ref, fmt, depth, store_path, as_json):
    """Show a stored node or program (by hash, unique prefix, v1 #x:hash or name)."""
    from nda.core import ir
    from nda.pipeline.load import UsageError

    if fmt in ("dot", "svg"):
        from nda.cli.graph import show_picture

        return show_picture(store_path, ref, fmt, depth, as_json)
    store = _open(store_path, as_json)
    try:
        try:
            addr = store.resolve_ref(ref)
        except UsageError as e:
            usage_fail(e.message, as_json)
        shown, order, frontier = set(), [], [(addr, 0)]
        while frontier:
            a, d = frontier.pop(0)
            if a in shown:
                continue
            rec = store.get_record(a)
            if rec is None:
                continue
            shown.add(a)
            try:
                info = _show_one(store, rec, fmt)
            except NdaError as e:
                diag_fail(e, as_json, code=EXIT_FAIL)
            info["depth"] = d
            order.append(info)
            if d < depth:
                for n in ir.walk(rec.node):
                    if type(n) is ir.Call:
                        c = store.resolve_call(n.target, rec.group)
                        if c is not None:
                            frontier.append((c.address, d + 1))
    finally:
        store.close()
    if as_json:
        emit_json({"ok": True, **order[0], "callees": order[1:]})
        return
    c = _console()
    for info in order:
        head = f"{'program' if info['program'] else info['kind']} {info['hash']}"
        extra = [f"v1 {info['v1_hash']}"] + ([f"names {', '.join(info['names'])}"] if info["names"] else [])
        if info["group"]:
            extra.append(f"group {info['group'][:16]}…[{info['index']}]")
        c.print(f"[bold]{head}[/bold]  [dim]{' · '.join(extra)}[/dim]" + (f"  (callee, depth {info['depth']})"
                                                                            if info["depth"] else ""))
        body = info.get("sexpr") if fmt == "sexpr" else info.get("text") if fmt in ("text", "triples") else \
            json.dumps(info["tree"], indent=2, ensure_ascii=False)
        click.echo(body.rstrip("\n") if body else "(no triples)")


@click.command("log")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the last N entries.")
@store_option
@json_option
def log_cmd(limit, store_path, as_json):
    """The store's root log (newest first)."""
    store = _open(store_path, as_json)
    try:
        entries, root = store.log(limit), store.root()
    finally:
        store.close()
    if as_json:
        emit_json({"ok": True, "state_root": root.hex(), "entries": [e.to_dict() for e in entries]})
        return
    t = _table("seq", "time (UTC)", "commit", "state root", "entries", "message")
    for e in reversed(entries):
        t.add_row(str(e.seq), _time(e.time_us), e.commit_id.hex()[:16], e.state_root.hex()[:16],
                  str(e.entry_count), e.message)
    _console().print(t)


@click.command("verify")
@store_option
@json_option
def verify_cmd(store_path, as_json):
    """Check the store's integrity (exit 1 if any problem)."""
    store = _open(store_path, as_json)
    try:
        problems, stats = store.verify(), store.stats()
    finally:
        store.close()
    if as_json:
        emit_json({"ok": not problems, "problems": problems, "stats": stats})
    elif problems:
        click.echo(f"{len(problems)} problem(s):")
        for p in problems:
            click.echo(f"  {p}")
    else:
        _console().print(f"[green]ok[/green] {stats['nodes']} nodes · {stats['programs']} programs · "
                         f"{stats['roots']} commits · state root {stats['state_root'][:16]}")
    raise Exit(EXIT_FAIL if problems else EXIT_OK)


@click.command("triples")
@click.argument("terms", nargs=-1)
@click.option("--live", is_flag=True, help="Only live triples (file snapshots).")
@store_option
@json_option
def triples_cmd(terms, live, store_path, as_json):
    """Query triples: S P O, each a term (#x:16hex, decimal, name) or * for any."""
    from nda.syntax.triples import PREDICATE_NAMES, format_term, parse_predicate

    if len(terms) > 3:
        usage_fail(f"expected at most 3 terms (S P O), got {len(terms)}", as_json)
    terms = list(terms) + ["*"] * (3 - len(terms))
    s, o = _term(terms[0], as_json), _term(terms[2], as_json)
    p = None
    if terms[1] not in ("*", "_", "?"):
        try:
            p = parse_predicate(terms[1])
        except ValueError:
            usage_fail(f"unknown predicate '{terms[1]}'", as_json)
    store = _open(store_path, as_json)
    try:
        found = (store.find_live_triples if live else store.find_triples)(s, p, o)
        names = store.strings_for({x for t in found for x in (t.subject, t.object)})
    finally:
        store.close()
    if as_json:
        emit_json({"ok": True, "live": live, "count": len(found),
                   "triples": [{**t.to_dict(), "subject": names.get(t.subject), "object": names.get(t.object)}
                               for t in found]})
        return
    t = _table("subject", "predicate", "object")
    for r in found:
        t.add_row(format_term(r.subject, names), PREDICATE_NAMES.get(r.predicate, str(r.predicate)),
                  format_term(r.object, names))
    c = _console()
    c.print(t)
    c.print(f"[dim]{len(found)} {'live ' if live else ''}triple(s)[/dim]")


@click.command("names")
@click.option("--history", "history", default=None, help="Every binding of this name.")
@store_option
@json_option
def names_cmd(history, store_path, as_json):
    """Name bindings (current), or one name's history."""
    store = _open(store_path, as_json)
    try:
        if history is not None:
            rows = [(history, h, seq, t) for seq, h, t in store.name_history(history)]
            if not rows:
                usage_fail(f"name '{history}' was never bound", as_json)
        else:
            rows = store.names()
    finally:
        store.close()
    if as_json:
        emit_json({"ok": True, "names": [{"name": n, "hash": h.hex(), "seq": s, "time_us": t}
                                         for n, h, s, t in rows]})
        return
    t = _table("name", "hash", "seq", "bound (UTC)")
    for n, h, s, tm in rows:
        t.add_row(n, h.hex(), str(s), _time(tm))
    _console().print(t)


@click.command("import-sitemap")
@click.argument("directory")
@store_option
@json_option
def import_cmd(directory, store_path, as_json):
    """Import the original's SiteMap directory (one transaction; exit 1 if anything was skipped)."""
    if not Path(directory).is_dir():
        usage_fail(f"{directory}: not a directory", as_json)
    store = _open(store_path, as_json, create=True)
    try:
        try:
            rep = store.import_sitemap_dir(directory)
        except NdaError as e:
            usage_fail(e.message, as_json)
    finally:
        store.close()
    if as_json:
        emit_json({"ok": not rep.problems, **rep.to_dict()})
    else:
        c = _console()
        c.print("imported " + ", ".join(f"{v} {k}" for k, v in rep.counts.items())
                + f" · index root {rep.index_root:016x}")
        for p in rep.problems:
            click.echo(f"  problem: {p}")
    raise Exit(EXIT_FAIL if rep.problems else EXIT_OK)


@click.command("export-sitemap")
@click.argument("directory")
@store_option
@json_option
def export_cmd(directory, store_path, as_json):
    """Write the store in the original's SiteMap directory layout."""
    store = _open(store_path, as_json)
    try:
        try:
            rep = store.export_sitemap_dir(directory)
        except OSError as e:
            usage_fail(f"{directory}: cannot write: {e.strerror or e}", as_json)
    finally:
        store.close()
    if as_json:
        emit_json({"ok": True, **rep.to_dict()})
        return
    c = _console()
    c.print("exported " + ", ".join(f"{v} {k}" for k, v in rep.counts.items())
            + f" · index root {rep.index_root:016x}")
    if rep.non_roundtrippable:
        t = _table("not v1-round-trippable", "v1", "kind")
        for n in rep.non_roundtrippable:
            t.add_row(n["hash"], n["v1_hash"], n["kind"])
        c.print(t)
    for p in rep.problems:
        click.echo(f"  problem: {p}")


VERBS = (commit_cmd, show_cmd, log_cmd, verify_cmd, triples_cmd, names_cmd, import_cmd, export_cmd)
for _group in _pending:
    register(_group)


__all__ = ["register", "node_json", "VERBS", "DEFAULT_STORE"]
