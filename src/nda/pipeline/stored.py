"""Stored code as it was written: a stored node back as a named function for the printers.

In: an open `SiteMap` and one of its `NodeRecord`s (`store.get_record`).
Out: `stored_module(store, rec)` → `StoredView`:
- `module`: an `ir.Module` — the node as one def (a recursive group: all its members), each
  def named by its source name (function metadata), else a name bound to it, else `main`;
  calls to stored code by name (`NamedRef`): a name bound to the callee now, else a name it
  was bound to before (the name has moved since) or its source name (never bound) — those two
  get a comment with the short hash, since the text then no longer links to the same code;
- `signatures`: def name → ([(param, type), …] | None, return type | None) as written;
- `comments`: the lines the text printer puts first (`// …`);
- `shown`: for a node that is not a group member, its top-level sequence with calls by
  *current* name only (the S-expression printer keeps `#hash` otherwise, which is exact).
Hashes never change: this is a view for printing; the stored node is untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nda.core import ir
from nda.core.link import rewrite_calls
from nda.store.codebase import function_meta, names_of

_QUALIFIED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


def _keywords() -> frozenset:
    from nda.syntax.text.lexer import KEYWORDS

    return frozenset(KEYWORDS)


def callable_name(name: str) -> bool:
    """Whether `name` can be written as a call in text and S-expression source (`f`, `ns.f`)."""
    return bool(_QUALIFIED.match(name)) and not set(name.split(".")) & _keywords()


@dataclass
class StoredView:
    module: ir.Module
    signatures: dict = field(default_factory=dict)
    comments: tuple = ()
    shown: tuple | None = None


def _short(addr: bytes) -> str:
    return "#" + addr.hex()[:16]


def def_name(store, addr: bytes, fallback: str = "main") -> tuple[str, tuple | None]:
    """(name, signature) a stored function is shown under: the source name (preferring one
    that is also bound to it now), else a current binding, else `fallback`."""
    meta = [m for m in function_meta(store, addr) if callable_name(m["name"]) and "." not in m["name"]]
    now = names_of(store, addr)["current"]
    for m in sorted(meta, key=lambda m: m["name"] not in now):
        return m["name"], (m["params"], m["returns"])
    plain = [n for n in now if callable_name(n) and "." not in n]
    return (plain[0] if plain else fallback), None


def callee_name(store, addr: bytes, avoid=()) -> tuple[str | None, str | None]:
    """(name to call `addr` by, comment or None). A current binding gives no comment; a former
    binding or a source name gives one saying why the text would not link back to `addr`."""
    info = names_of(store, addr)
    ok = [n for n in info["current"] if callable_name(n) and n not in avoid]
    if ok:
        return sorted(ok, key=lambda n: (n == "main", n.count("."), len(n), n))[0], None
    for n in info["former"]:
        if callable_name(n) and n not in avoid:
            now = store.resolve_name(n)
            return n, (f"{n} = {_short(addr)}… here; the name has moved since (now {_short(now)}…)")
    for n in info["source"]:
        if callable_name(n) and n not in avoid:
            return n, f"{n} = {_short(addr)}… here (not bound in the store)"
    return None, None


def stored_module(store, rec) -> StoredView:
    """The printing view of `rec` (see the module docstring)."""
    if rec.group is not None:
        members = rec.group.members
        named = [def_name(store, a, f"member_{i}") for i, a in enumerate(members)]
        names = [n for n, _ in named]
        nodes = [store.get_node(a) for a in members]
        sigs = {n: s for n, s in named if s is not None}
    else:
        name, sig = def_name(store, rec.hash, "main")
        if sig is None and rec.is_program:
            name = "main"  # a program committed as such: shown as the main it runs as
        names, nodes = [name], [rec.node]
        sigs = {name: sig} if sig is not None else {}
    own = set(names)
    comments: list[str] = []
    cache: dict[bytes, tuple] = {}

    def by_name(t):
        if type(t) is ir.GroupRef and rec.group is not None and 0 <= t.index < len(names):
            return ir.NamedRef(names[t.index])
        if type(t) is not ir.Hash32:
            return None
        if t.digest not in cache:
            cache[t.digest] = callee_name(store, t.digest, own)
            if cache[t.digest][1]:
                comments.append(cache[t.digest][1])
        n = cache[t.digest][0]
        return None if n is None else ir.NamedRef(n)

    defs = []
    for n, node in zip(names, nodes):
        body = node if type(node) is ir.Scope else ir.Scope((node,))
        defs.append(ir.Def(n, rewrite_calls(body, by_name)))
    shown = None
    if rec.group is None:
        def current(t):
            if type(t) is not ir.Hash32:
                return None
            n, why = cache.get(t.digest) or callee_name(store, t.digest, own)
            return None if n is None or why else ir.NamedRef(n)

        node = rewrite_calls(rec.node, current)
        shown = tuple(node.children) if type(node) is ir.Scope else (node,)
    return StoredView(ir.Module(tuple(defs)), sigs, tuple(comments), shown)


__all__ = ["StoredView", "stored_module", "def_name", "callee_name", "callable_name"]
