"""Store verbs of the `nda` command line (runtime.md §9): commit, show, log, verify, triples,
names, callers, deps, import-sitemap, export-sitemap.

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

Names (see `nda.store.codebase`): `commit` binds only what it is asked to (`--name` for the
program root, `--namespace NS` for the module's functions as `NS.f`, `--namespace ''` for bare
names) and reports every name it moved with the previous target, as does `log`; `show` prints
stored code as written (source name, signature, calls by bound name); `triples`, `callers` and
`deps` accept names and H2 addresses and print bound names (else `#` + H2) for terms.
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
@click.option("--namespace", default=None,
              help="Bind the module's functions (all but main) as NS.f ('' = bare names f).")
@click.option("--scope", "scope_threshold", type=float, default=None, help="Require the scope check (e.g. 0.10).")
@click.option("--tier", default="auto", show_default=True, help="Tier of the gate's sandbox run.")
@store_option
@limit_options
@json_option
def commit_cmd(file, message, input_spec, dim, name, namespace, scope_threshold, tier, store_path, as_json,
               **lim):
    """Gate (validate, run, optional scope check) and store a program in one transaction."""
    from nda.pipeline.commit import commit, namespace_problem

    if namespace_problem(namespace):
        usage_fail(namespace_problem(namespace), as_json)

    path = Path(store_path or DEFAULT_STORE)
    fresh, fresh_dir = not path.exists(), not path.parent.exists()
    store = _open(store_path, as_json, create=True)
    committed = False
    try:
        loaded = load_program(file, as_json, store)
        cond = parse_input(input_spec, dim, as_json, limits_from(lim).max_input_len)
        res = commit(store, loaded, cond, message=message, limits=limits_from(lim),
                     scope_threshold=scope_threshold, name=name, namespace=namespace, tier=tier)
        committed = res.ok
    finally:
        store.close()
        if fresh and not committed:  # a rejected first commit leaves no store behind
            from nda.store.sitemap import remove_store_files

            remove_store_files(path, fresh_dir)
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
        for b in res.bindings:
            t.add_row(f"bound {b['name']}", b["hash"] + ("" if b["previous"] is None
                                                          else f"  (moved from {b['previous'][:16]}…)"))
        if not res.gate_checked:
            t.add_row("note", "static validation unavailable (no nda.analysis.gate); gate step skipped")
        c.print("[green]committed[/green]")
        c.print(t)
    else:
        click.echo(f"rejected ({res.stage}): {res.reason}", err=True)
        if res.stage == "gate" and res.diagnostics:
            click.echo(render_text(res.diagnostics, loaded.source), err=True)
    raise Exit(EXIT_OK if res.ok else EXIT_FAIL)



def _show_one(store, rec, fmt: str) -> dict:
    """One stored node rendered in `fmt` (+ facts)."""
    from nda.core import ir
    from nda.syntax.sexpr import print_node, print_sexpr

    from nda.pipeline.stored import stored_module
    from nda.store.codebase import function_meta, names_of

    view = stored_module(store, rec)
    seq = tuple(rec.node.children) if type(rec.node) is ir.Scope else (rec.node,)
    names = store.names_for([d.node for d in view.module.defs])
    known = names_of(store, rec.hash)
    info = {"hash": rec.hash.hex(), "kind": type(rec.node).__name__, "v1_hash": f"{rec.v1_hash:016x}",
            "program": rec.is_program,
            "program_v1": None if not rec.is_program else f"{store.program_v1(rec.hash):016x}",
            "group": None if rec.group is None else rec.group.hash.hex(), "index": rec.index,
            "names": known["current"], "former_names": known["former"],
            "source": function_meta(store, rec.hash)}
    if fmt == "sexpr":
        shown = view.shown if view.shown is not None else seq
        info["sexpr"] = print_sexpr(shown, names) if rec.is_program else print_node(
            shown[0] if len(shown) == 1 and type(rec.node) is not ir.Scope else ir.Scope(shown), names)
    elif fmt == "text":
        from nda.syntax.text import print_text

        own = {d.name for d in view.module.defs}
        externals = {n.target.name for d in view.module.defs for n in ir.walk(d.node)
                     if type(n) is ir.Call and type(n.target) is ir.NamedRef and n.target.name not in own}
        info["text"] = print_text(view.module, names, signatures=view.signatures, externals=externals,
                                  comments=view.comments)
    elif fmt == "json":
        info["tree"] = node_json(rec.node)
    else:
        from nda.store.codebase import TermNamer, identities
        from nda.syntax.triples import PREDICATE_NAMES

        ids = identities(store, rec.hash)
        own = store.node_origin_triples(rec.hash)
        live = sorted({t for i in ids for t in store.find_live_triples(s=i) + store.find_live_triples(o=i)})
        namer = TermNamer(store)  # terms by bound name, else # + H2, else the dictionary, else #x:
        info["triples"] = [t.to_dict() for t in own]
        info["live_triples"] = [t.to_dict() for t in live]
        info["text"] = "".join(f"{namer(t.subject)['display']} {PREDICATE_NAMES.get(t.predicate, t.predicate)} "
                               f"{namer(t.object)['display']}\n" for t in own + [t for t in live if t not in own])
    return info


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
    """The store's root log (newest first), with the names each commit bound or moved."""
    from nda.store.codebase import bindings_by_commit

    store = _open(store_path, as_json)
    try:
        entries, root, bound = store.log(limit), store.root(), bindings_by_commit(store)
    finally:
        store.close()
    if as_json:
        emit_json({"ok": True, "state_root": root.hex(),
                   "entries": [{**e.to_dict(), "bindings": bound.get(e.seq, [])} for e in entries]})
        return
    t = _table("seq", "time (UTC)", "commit", "state root", "entries", "message", "names")
    for e in reversed(entries):
        moved = ", ".join(f"{b['name']} → {b['hash'][:12]}…" + (f" (was {b['previous'][:12]}…)" if b["previous"]
                                                               else "") for b in bound.get(e.seq, []))
        t.add_row(str(e.seq), _time(e.time_us), e.commit_id.hex()[:16], e.state_root.hex()[:16],
                  str(e.entry_count), e.message, moved)
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
    """Query triples: S P O, each a term or * for any. A term is a bound name or an H2 address
    (its v1 identities, and for a name also the word), #x:16hex, a decimal, or any word."""
    from nda.pipeline.load import UsageError
    from nda.store.codebase import query_triples
    from nda.syntax.triples import parse_predicate

    if len(terms) > 3:
        usage_fail(f"expected at most 3 terms (S P O), got {len(terms)}", as_json)
    terms = list(terms) + ["*"] * (3 - len(terms))
    for tok in (terms[0], terms[2]):
        _term(tok, as_json)  # a malformed #x: / decimal is a usage error before opening the store
    p = None
    if terms[1] not in ("*", "_", "?"):
        try:
            p = parse_predicate(terms[1])
        except ValueError:
            usage_fail(f"unknown predicate '{terms[1]}'", as_json)
    store = _open(store_path, as_json)
    try:
        try:
            found = query_triples(store, terms[0], p, terms[2], live=live)
        except UsageError as e:
            usage_fail(e.message, as_json)
    finally:
        store.close()
    if as_json:
        emit_json({"ok": True, "live": live, "count": len(found),
                   "triples": [_triple_json(t) for t in found]})
        return
    t = _table("subject", "predicate", "object")
    for r in found:
        t.add_row(r["subject"]["display"], r["predicate"], r["object"]["display"])
    c = _console()
    c.print(t)
    c.print(f"[dim]{len(found)} {'live ' if live else ''}triple(s)[/dim]")


def _triple_json(t: dict) -> dict:
    """A triple for --json: the u64 record, and per term its name (bound name, else the
    dictionary string, else null), H2 address (or null) and display form."""
    out = {"subject_hash": t["subject_hash"], "predicate_id": t["predicate_id"], "object_hash": t["object_hash"],
           "predicate": t["predicate"]}
    for k in ("subject", "object"):
        d = t[k]
        out[k] = d["name"] or d["string"]
        out[f"{k}_address"] = d["address"]
        out[f"{k}_display"] = d["display"]
    return out


def _term_table(rows: list[dict]):
    t = _table("name", "address", "v1 term")
    for d in rows:
        t.add_row(d["name"] or d["string"] or "-", d["address"] or "-", d["term"])
    return t


def _related(kind: str, ref: str, store_path: str | None, as_json: bool) -> None:
    from nda.pipeline.load import UsageError
    from nda.store.codebase import callers, dependencies

    store = _open(store_path, as_json)
    try:
        try:
            out = (callers if kind == "callers" else dependencies)(store, ref)
        except UsageError as e:
            usage_fail(e.message, as_json)
    finally:
        store.close()
    if as_json:
        emit_json({"ok": True, **out, "count": len(out[kind])})
        return
    tgt = out["target"]
    c = _console()
    label = ", ".join(tgt["current"]) or ", ".join(tgt["source"]) or "(unnamed)"
    c.print(f"[bold]{label}[/bold] [dim]{tgt['address']}[/dim]")
    c.print(_term_table(out[kind]))
    c.print(f"[dim]{len(out[kind])} {kind}[/dim]")


@click.command("callers")
@click.argument("ref")
@store_option
@json_option
def callers_cmd(ref, store_path, as_json):
    """Who calls REF (a bound name, H2 hash or unique prefix, or #x:v1 hash), from every
    committed program's triples."""
    _related("callers", ref, store_path, as_json)


@click.command("deps")
@click.argument("ref")
@store_option
@json_option
def deps_cmd(ref, store_path, as_json):
    """What REF (a bound name, H2 hash or unique prefix, or #x:v1 hash) calls."""
    _related("dependencies", ref, store_path, as_json)


@click.command("names")
@click.option("--history", "history", default=None, help="Every binding of this name.")
@click.option("--search", "search", default=None, help="Names containing (or spelt like) this.")
@click.option("--prefix", "prefix", default=None, help="Only names starting with this (e.g. 'lib.').")
@store_option
@json_option
def names_cmd(history, search, prefix, store_path, as_json):
    """Name bindings (current), one name's history, or a search."""
    from nda.store import codebase

    if sum(x is not None for x in (history, search, prefix)) > 1:
        usage_fail("give at most one of --history, --search, --prefix", as_json)
    store = _open(store_path, as_json)
    try:
        if history is not None:
            rows = codebase.name_history(store, history)
            if not rows:
                usage_fail(f"name '{history}' was never bound", as_json)
        elif search is not None:
            rows = codebase.search_names(store, search)
        else:
            rows = codebase.list_names(store, prefix)
    finally:
        store.close()
    if as_json:
        emit_json({"ok": True, "names": rows})
        return
    t = _table("name", "hash", "seq", "bound (UTC)", "commit", "previous")
    for d in rows:
        t.add_row(d["name"], d["hash"], str(d["seq"]), _time(d["time_us"]),
                  "-" if d["commit_seq"] is None else f"#{d['commit_seq']}",
                  "-" if d["previous"] is None else d["previous"][:16] + "…")
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


VERBS = (commit_cmd, show_cmd, log_cmd, verify_cmd, triples_cmd, names_cmd, callers_cmd, deps_cmd, import_cmd,
         export_cmd)
for _group in _pending:
    register(_group)


__all__ = ["register", "node_json", "VERBS", "DEFAULT_STORE"]
