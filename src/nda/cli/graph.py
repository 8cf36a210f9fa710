"""Pictures on the command line: `nda graph NAME` (callers and dependencies from the store) and
the `dot` / `svg` formats of `nda show`.

In: argv (through `nda.cli.app.main`, which calls `register(main)`); for `show`, the ref,
format and depth that `nda.cli.store.show_cmd` hands to `show_picture`.
Out: DOT or SVG text on stdout, or exactly one JSON object with `--json` (the text under
"dot" / "svg", and the graph's nodes and edges); exit 0 success, 2 usage or input error (no
store, unknown name or hash, Graphviz not installed — the message names the install step).

The drawing is `nda.syntax.draw` (plain edge lists and IR in, text out); this module only asks
the store. `nda graph` follows the live CALLS triples: callers upward and dependencies downward,
`--depth` levels each way from the name's current definition (its DEFINES triple; a ref
without one — a plain program, a hash — starts from the record's v1 identity).
"""

from __future__ import annotations

from types import SimpleNamespace

import click

from nda.cli.app import EXIT_USAGE, diag_fail, emit_json, json_option, open_store, store_option, usage_fail
from nda.core import ir
from nda.core.errors import NdaError
from nda.syntax import draw


def _store(store_path: str | None, as_json: bool):
    try:
        store = open_store(store_path)
    except NdaError as e:
        usage_fail(e.message, as_json)
    if store is None:
        usage_fail(f"no store at {store_path or '.nda/sitemap.db'} (commit something first, or pass "
                   "--store / set NDA_STORE)", as_json)
    return store


def _render(dot_text: str, fmt: str, as_json: bool) -> str:
    if fmt == "dot":
        return dot_text
    try:
        return draw.svg_from_dot(dot_text)
    except NdaError as e:
        diag_fail(e, as_json, code=EXIT_USAGE)


def _bound_names(store) -> dict[bytes, str]:
    bound: dict[bytes, str] = {}
    for n, h, _, _ in store.names():
        bound.setdefault(h, n)
    return bound


# ---------------------------------------------------------------------------------------------
# nda show REF --format dot|svg


def show_picture(store_path: str | None, ref: str, fmt: str, depth: int, as_json: bool) -> None:
    """Print the picture of a stored node or program; with `depth` > 0 its stored callees (up to
    `depth` calls deep) are drawn as clusters and its calls as edges into them."""
    from nda.core.link import rewrite_calls

    store = _store(store_path, as_json)
    try:
        try:
            root = store.resolve_ref(ref)
        except NdaError as e:
            usage_fail(e.message, as_json)
        bound = _bound_names(store)

        def plain(rec):  # GroupRef calls of a group member → Hash32 of the member they name
            members = rec.group.members if rec.group is not None else ()
            return rewrite_calls(rec.node, lambda t: ir.Hash32(members[t.index])
                                 if type(t) is ir.GroupRef and 0 <= t.index < len(members) else None)

        def call_label(target):
            callee = store.resolve_call(target, None)
            return None if callee is None else "@" + bound.get(callee.address, callee.address.hex()[:16])

        recs, order, frontier = {}, [], [(root, 0)]
        while frontier:
            a, d = frontier.pop(0)
            if a in recs or (rec := store.get_record(a)) is None:
                continue
            recs[a] = (rec, plain(rec))
            order.append(a)
            if d < depth:
                frontier += [(c.address, d + 1) for n in ir.walk(recs[a][1]) if type(n) is ir.Call
                             and (c := store.resolve_call(n.target, None)) is not None]
        rec, node = recs[root]
        seqs = [tuple(n.children) if type(n) is ir.Scope else (n,) for _, n in recs.values()]
        names = store.strings_for({n.name for s in seqs for r in s for n in ir.walk(r)
                                   if type(n) in (ir.Let, ir.Load, ir.Store)})
        title = f"{'program' if rec.is_program else type(rec.node).__name__} {bound.get(root, root.hex()[:16])}"
        if depth == 0:
            program = seqs[0] if rec.is_program else node
        else:
            program = SimpleNamespace(defs=[SimpleNamespace(name=bound.get(a, a.hex()[:16]), node=recs[a][1],
                                                            address=a, group=None) for a in order])
        dot_text = draw.program_dot(program, names, call_label=call_label, title=title)
    finally:
        store.close()
    text = _render(dot_text, fmt, as_json)
    if as_json:
        emit_json({"ok": True, "hash": root.hex(), "kind": type(rec.node).__name__, "program": rec.is_program,
                   "format": fmt, fmt: text, "callees": [a.hex() for a in order[1:]]})
    else:
        click.echo(text, nl=False)


# ---------------------------------------------------------------------------------------------
# nda graph NAME


def _focus(store, name: str, as_json: bool) -> list[int]:
    from nda.core.hashing import alias_of
    from nda.syntax.triples import DEFINES

    terms = [t.object for t in store.find_live_triples(s=ir.name_hash(name), p=DEFINES)]
    if terms:
        return terms
    try:
        addr = store.resolve_ref(name)
    except NdaError as e:
        usage_fail(e.message, as_json)
    rec = store.get_record(addr)
    candidates = [alias_of(addr) if rec.group is not None else rec.v1_hash]
    if rec.is_program:
        candidates.append(store.program_v1(addr))
    linked = [t for t in candidates if store.find_live_triples(s=t) or store.find_live_triples(o=t)]
    return linked or candidates[:1]


def _walk(store, focus: list[int], depth: int) -> list[tuple[int, int]]:
    """(caller, callee) edges: callers upward and dependencies downward, `depth` levels each."""
    edges: list[tuple[int, int]] = []
    for step, flip in ((store.get_callers, True), (store.get_dependencies, False)):
        seen, level = set(focus), list(focus)
        for _ in range(depth):
            nxt = []
            for t in level:
                for u in sorted(step(t)):
                    edges.append((u, t) if flip else (t, u))
                    if u not in seen:
                        seen.add(u)
                        nxt.append(u)
            level = nxt
    return edges


def _labels(store, terms) -> dict[int, str]:
    from nda.syntax.triples import DEFINES

    bound = None
    labels = {}
    for t in terms:
        names = store.strings_for(x.subject for x in store.find_live_triples(p=DEFINES, o=t))
        if names:
            labels[t] = ", ".join(sorted(names.values()))
            continue
        callee = store.resolve_call(ir.Legacy64(t), None)
        if callee is not None:
            bound = _bound_names(store) if bound is None else bound
            labels[t] = bound.get(callee.address, "")
    return {t: v for t, v in labels.items() if v}


@click.command("graph")
@click.argument("name")
@click.option("--depth", type=click.IntRange(min=1), default=1, show_default=True,
              help="Levels of callers (upward) and dependencies (downward) to follow.")
@click.option("--format", "fmt", type=click.Choice(["dot", "svg"]), default="dot", show_default=True)
@store_option
@json_option
def graph_cmd(name, depth, fmt, store_path, as_json):
    """Draw who calls NAME and what NAME calls (live CALLS triples of the store)."""
    store = _store(store_path, as_json)
    try:
        focus = _focus(store, name, as_json)
        edges = _walk(store, focus, depth)
        terms = list(dict.fromkeys(focus + [x for e in edges for x in e]))
        labels = _labels(store, terms)
    finally:
        store.close()
    dot_text = draw.graph_dot(edges, labels, focus=focus, title=f"callers and dependencies of {name}")
    text = _render(dot_text, fmt, as_json)
    if as_json:
        emit_json({"ok": True, "name": name, "format": fmt, fmt: text,
                   "focus": [draw.term_text(t) for t in focus],
                   "nodes": [{"term": draw.term_text(t), "name": labels.get(t)} for t in terms],
                   "edges": [{"caller": draw.term_text(a), "callee": draw.term_text(b)}
                             for a, b in dict.fromkeys(edges)]})
    else:
        click.echo(text, nl=False)


def register(main: click.Group) -> None:
    if graph_cmd.name not in main.commands:
        main.add_command(graph_cmd)


__all__ = ["register", "show_picture", "graph_cmd"]
