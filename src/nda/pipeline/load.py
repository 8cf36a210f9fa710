"""The thin pipeline: source → front end → link → (gate) → sandbox.

In: a path (`.nda` text, `.sexpr` S-expression, `.ndab` binary v2 container), source text, or
a stored hash/name (when a store is given).
Out: `Loaded` — the top-level sequence to run, a resolver for its calls, the linked module
(if any) and its source form (`raw_module`: as parsed, or for a binary module the defs with
calls by name again), the names spelt in the source (name_hash → identifier, for printers and
diagnostics), the functions' signatures as written (text), and the source text.

Linking by name (when a store with names is given): a call to a function the source does not
define — `sumsq(10)` / `ns.f(…)` in text, `(call @sumsq)` in an S-expression, top level or
module — is resolved to the store's current binding of that name and the program holds its
H2 address (`link.link_names`); an unbound name is a `link.UnboundNameError`
(VALIDATION_ERROR, span, "did you mean" over the module's and the store's names).
`load_stored` gives a stored node back with its source name, signature and calls by bound
name (see `stored_module`), so the printers show it as written.

Each stage lives in its own module; this one only chains them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nda.core import ir
from nda.core.errors import ParseError, UsageError

EXTENSIONS = {".nda": "text", ".sexpr": "sexpr", ".ndab": "binary"}


@dataclass
class Loaded:
    sequence: tuple
    resolver: object
    module: object = None          # link.LinkedModule for module programs
    raw_module: ir.Module | None = None
    names: dict = field(default_factory=dict)
    source: str | None = None
    path: str | None = None
    kind: str = "sexpr"
    signatures: dict = field(default_factory=dict)  # def name → ([(param, type)…] | None, ret)
    comments: tuple = ()                            # text printer: `// …` lines (stored code)
    shown: tuple | None = None                      # stored code: the sequence as printed


def detect_kind(path: str) -> str:
    ext = Path(path).suffix.lower()
    if ext not in EXTENSIONS:
        raise UsageError(f"{path}: unknown program file extension '{ext}' (expected .nda, .sexpr or .ndab)")
    return EXTENSIONS[ext]


def _names_store(store):
    """`store` when it can resolve names (a SiteMap), else None."""
    return store if store is not None and hasattr(store, "resolve_name") and hasattr(store, "names") else None


def parse_source(text: str, kind: str, file: str | None = None):
    """→ (sequence or None, ir.Module or None, names)."""
    return _parse(text, kind, file)[:3]


def _parse(text: str, kind: str, file: str | None = None, external: bool = False):
    """→ (sequence or None, ir.Module or None, names, signatures)."""
    if kind == "text" and external:
        from nda.syntax.text import parse_text_full

        module, names, sigs = parse_text_full(text, file=file, external=True)
        return None, module, names, {k: ([list(p) for p in v[0]], v[1]) for k, v in sigs.items()}
    if kind == "sexpr":
        from nda.syntax.sexpr import parse_sexpr

        unit = parse_sexpr(text, file=file)
        return unit.sequence, unit.module, dict(unit.names), {}
    if kind == "text":
        from nda.syntax.text import parse_text_full

        module, names, sigs = parse_text_full(text, file=file)
        return None, module, names, {k: ([list(p) for p in v[0]], v[1]) for k, v in sigs.items()}
    raise UsageError(f"cannot parse {kind} as text")


def link_by_name(store, module, sequence):
    """Calls to names `module` does not define → Hash32 of the store's binding (see the
    module docstring). → (module, sequence); `UnboundNameError` for unbound names."""
    from nda.core.link import link_names
    from nda.store.codebase import suggest_names

    return link_names(module, sequence, store.resolve_name,
                      lambda n, own: suggest_names(store, n, extra=own))


def link_module_by_name(store, module, hasher=None):
    """`link_module` of `module`, its calls to names it does not define linked to `store`'s
    bindings in the same pass (as `link_by_name` then `link_module`); `store` None = no
    lookup. `hasher`: the H2 memo to use (kept on the result)."""
    from nda.core.link import link_module
    from nda.store.codebase import suggest_names

    if store is None:
        return link_module(module, hasher)
    return link_module(module, hasher, lookup=store.resolve_name,
                       suggest=lambda n, own: suggest_names(store, n, extra=own))


def from_parts(sequence, module, names, store=None, source=None, path=None, kind="sexpr",
               signatures=None) -> Loaded:
    from nda.core.link import MemoryResolver

    named = _names_store(store)
    if module is not None:
        from nda.sandbox.runner import ChainResolver

        linked = link_module_by_name(named, module)
        resolver = MemoryResolver()
        resolver.add_linked(linked)
        return Loaded(tuple(linked.main_sequence()), ChainResolver(resolver, store), linked, module,
                      names, source, path, kind, dict(signatures or {}))
    if named is not None:
        sequence = link_by_name(named, None, sequence)[1]
    return Loaded(tuple(sequence), store, None, None, names, source, path, kind)


def load_text(text: str, kind: str = "sexpr", store=None, file: str | None = None) -> Loaded:
    seq, module, names, sigs = _parse(text, kind, file, external=_names_store(store) is not None)
    return from_parts(seq, module, names, store, text, file, kind, sigs)


def load_bytes(data: bytes, store=None, file: str | None = None) -> Loaded:
    from nda.core.link import LinkedModule, MemoryResolver, decode_file

    decoded = decode_file(data)
    from nda.sandbox.runner import ChainResolver

    if isinstance(decoded, LinkedModule):
        resolver = MemoryResolver()
        resolver.add_linked(decoded)
        return Loaded(tuple(decoded.main_sequence()), ChainResolver(resolver, store), decoded,
                      unlink_module(decoded), {}, None, file, "binary")
    if isinstance(decoded, ir.Node):
        return Loaded((decoded,), store, None, None, {}, None, file, "binary")
    return Loaded(tuple(decoded), store, None, None, {}, None, file, "binary")


def unlink_module(linked) -> ir.Module:
    """The source form of a linked module: the same defs (in the container's order), with each
    call to a def of the module (a Hash32 of its address, or a GroupRef inside its group) turned
    back into a call by name. Linking the result gives the same addresses; calls to code
    outside the module keep their targets."""
    from nda.core.link import rewrite_calls

    by_address = {d.address: d.name for d in linked.defs}
    defs = []
    for d in linked.defs:
        members = d.group.members if d.group is not None else ()

        def named(t, members=members):
            if type(t) is ir.Hash32 and t.digest in by_address:
                return ir.NamedRef(by_address[t.digest])
            if type(t) is ir.GroupRef and 0 <= t.index < len(members) and members[t.index] in by_address:
                return ir.NamedRef(by_address[members[t.index]])
            return None

        defs.append(ir.Def(d.name, rewrite_calls(d.node, named)))
    return ir.Module(tuple(defs))


def format_loaded(loaded: Loaded, to: str, names: dict | None = None) -> str | bytes:
    """`loaded` as `to`: "text" or "sexpr" (str, ending in a newline) or "binary" (v2 bytes).

    `names` (name_hash → identifier) defaults to the names spelt in the source. Text cannot
    express every program (raw name hashes, non-synthetic planes, calls to stored code, the
    machine nodes other than peek/poke): `text.InexpressibleError` (an NdaError) says why.
    A program whose expanded tree passes `dag.MAX_NODES` nodes (IR built through the API may
    share subtrees) is refused by every format: `dag.TooManyNodes`.
    """
    names = loaded.names if names is None else names
    if to in ("sexpr", "text"):  # printed per occurrence: a DAG built through the API is
        from nda.core.dag import check_nodes  # refused first if its expanded tree is too big

        roots = loaded.sequence if loaded.raw_module is None else [d.node for d in loaded.raw_module.defs]
        check_nodes(roots)
    if to == "binary":
        from nda.core.binary_v2 import encode_module, encode_program

        return encode_module(loaded.module) if loaded.module is not None else encode_program(loaded.sequence)
    if to == "sexpr":
        from nda.syntax.sexpr import print_module, print_sexpr

        if loaded.shown is not None:  # stored code: calls by their current name
            return print_sexpr(loaded.shown, names) + "\n"
        return (print_module(loaded.raw_module, names) if loaded.raw_module is not None
                else print_sexpr(loaded.sequence, names)) + "\n"
    if to == "text":
        from nda.syntax.text import print_text

        module = loaded.raw_module
        if module is None:
            module = ir.Module((ir.Def("main", ir.Scope(tuple(loaded.sequence))),))
        own = {d.name for d in module.defs}
        externals = {n.target.name for d in module.defs for n in ir.walk(d.node)
                     if type(n) is ir.Call and type(n.target) is ir.NamedRef and n.target.name not in own}
        return print_text(module, names=names, signatures=loaded.signatures, externals=externals,
                          comments=loaded.comments)
    raise UsageError(f"unknown format '{to}' (expected text, sexpr or binary)")


def load_path(path: str, store=None) -> Loaded:
    kind = detect_kind(path)
    p = Path(path)
    try:
        if kind == "binary":
            return load_bytes(p.read_bytes(), store, str(path))
        text = p.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        raise UsageError(f"{path}: cannot read file: {e.strerror or e}") from e
    return load_text(text, kind, store, str(path))


def guess_kind(text: str) -> str:
    """The source form of `text`: an S-expression when its first significant character is "(",
    else the text syntax (comment lines of either form are skipped)."""
    for line in text.splitlines():
        t = line.strip()
        if not t or t.startswith(";") or t.startswith("//"):
            continue
        return "sexpr" if t.startswith("(") else "text"
    return "sexpr"


def load_stdin(stream, store=None) -> Loaded:
    """A program read from a binary stream (standard input): binary v2 when it starts with the
    container magic, else source text whose form `guess_kind` recognises."""
    data = stream.read()
    if data[:4] == b"NDA2":
        return load_bytes(data, store, "<stdin>")
    text = data.decode("utf-8", errors="replace")
    return load_text(text, guess_kind(text), store, "<stdin>")


def load_stored(store, ref: str) -> Loaded:
    """`Loaded` for a stored ref (see `SiteMap.resolve_ref`). A program root runs its
    children; a group member runs with its GroupRef calls turned into Hash32. For printing,
    `raw_module` is the stored function as written (`stored_module`): its source name and
    signature, calls to stored code by bound name (the sequence that runs keeps addresses)."""
    from nda.core.link import rewrite_calls
    from nda.pipeline.stored import stored_module

    rec = store.get_record(store.resolve_ref(ref))
    node = rec.node
    if rec.group is not None:
        members = rec.group.members
        node = rewrite_calls(node, lambda t: ir.Hash32(members[t.index])
                             if type(t) is ir.GroupRef and 0 <= t.index < len(members) else None)
    seq = tuple(node.children) if type(node) is ir.Scope else (node,)
    view = stored_module(store, rec)
    names = store.names_for([d.node for d in view.module.defs])
    return Loaded(seq, store, None, view.module, names, None, ref, "stored", view.signatures,
                  view.comments, view.shown)


def load_any(ref: str, store=None) -> Loaded:
    """A file path, or (with a store) a stored hash, unique hash prefix, or bound name."""
    if Path(ref).suffix.lower() in EXTENSIONS or Path(ref).exists():
        return load_path(ref, store)
    if store is not None and hasattr(store, "resolve_ref"):
        return load_stored(store, ref)
    raise UsageError(f"{ref}: no such file" + ("" if store is None else " and no stored program of that hash or name"))


__all__ = ["Loaded", "UsageError", "link_module_by_name", "load_path", "load_text", "load_bytes", "load_any", "load_stored", "load_stdin", "guess_kind", "unlink_module",
           "detect_kind", "format_loaded", "ParseError"]
