"""Linking modules into content-addressed definitions, and resolving calls.

In: an `nda.core.ir.Module` whose calls name other defs (`NamedRef`), or the groups read back from a
v2 module container; later, call targets met at run time.
Out: `link_module` → `LinkedModule` (every def with its address and stored form; recursive and
mutually recursive defs hashed as groups, formats.md §3.3), `build_group` /
`build_module_from_groups` (rebuild groups from stored GroupRef forms), and the call resolver
protocol (`Callee`, `Resolver`) with an in-memory implementation (`MemoryResolver`) that the
tiers use and the SQLite store mirrors.

Linking: call graph by NamedRef → Tarjan SCC (iterative) → components callees-first. An
ordinary def's calls become Hash32 of the callees' addresses and its address is H2. A group
(k ≥ 2, or one def calling itself) is ordered by (anonymous digest, UTF-8 name), its intra-group
calls become GroupRef(index), `D_j = H2(member)`, `G = SHA-256(0x02‖"grp"‖u32 k‖D…)` and member
j's address is `SHA-256(0x02‖"mem"‖G‖u32 j)`. A def whose expanded tree has more than
`dag.MAX_NODES` nodes (a DAG built through the API) is refused (`dag.TooManyNodes`).
"""

from __future__ import annotations

import difflib

from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, Sequence

from nda.core.dag import MAX_NODES, check_point, walk_check
from nda.core.binary_v2 import DEFAULT_MAX_DEPTH, ModuleGroups, decode_container
from nda.core.errors import (
    CALL_TARGET_NOT_FOUND, VALIDATION_ERROR, DecodeError, Diagnostic, NdaError, ValidationError,
)
from nda.core.hashing import Hasher, alias_of, group_hash, h1, member_address, program_entry_hash
from nda.core.ir import (
    CHILD_GETTERS, Call, GroupRef, Hash32, Legacy64, Module, NamedRef, Node, Scope, child_getter,
    replace_children,
)

ANON_GROUPREF = GroupRef(0xFFFFFFFF)


class LinkError(ValidationError):
    """A module cannot be linked (unknown or duplicate function, no main)."""

    def __init__(self, message: str, span=None, code: str = VALIDATION_ERROR, hint: str | None = None):
        super().__init__(message, (Diagnostic(code, message, span, hint=hint, stage="gate"),))
        self.code = code
        self.span = span


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A recursive group: its hash G and its member addresses by index."""

    hash: bytes
    members: tuple[bytes, ...]

    @property
    def aliases(self) -> tuple[int, ...]:
        """v1 aliases of the members (first 8 bytes LE of each address)."""
        return tuple(alias_of(m) for m in self.members)


@dataclass(frozen=True, slots=True)
class LinkedDef:
    """One def after linking. `node` is the stored form (GroupRef calls inside groups)."""

    name: str
    address: bytes
    node: Node
    group: GroupInfo | None = None
    index: int | None = None
    # the Calls of `node` in pre-order (what `dag.collect((node,), {Call})` finds), known
    # from linking's scan; None when the def was not made by `link_module`
    calls: tuple | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class LinkedModule:
    """Linked defs in callee-first order (group members contiguous, in index order)."""

    defs: tuple[LinkedDef, ...]
    groups: tuple[GroupInfo, ...] = ()
    # the H2 memo that addressed the defs (`link_module`), so a later write of the same nodes
    # (`pipeline.commit`) hashes none of them again; not part of the module's value
    hasher: Hasher | None = field(default=None, compare=False, repr=False)

    def by_name(self, name: str) -> LinkedDef | None:
        for d in self.defs:
            if d.name == name:
                return d
        return None

    def main_sequence(self) -> tuple[Node, ...]:
        """Children of `main`'s Scope (a non-Scope main is a one-node sequence).

        If main is itself a group member, its GroupRef(i) calls become Hash32 of member i's
        address, since the top-level sequence runs outside any group.
        """
        d = self.by_name("main")
        if d is None:
            raise LinkError("no 'main' function found.")
        node = d.node
        if d.group is not None:
            members = d.group.members

            def fix(t):
                if type(t) is GroupRef and 0 <= t.index < len(members):
                    return Hash32(members[t.index])
                return None

            node = rewrite_calls(node, fix)
        return tuple(node.children) if type(node) is Scope else (node,)


# ---------------------------------------------------------------------------------------------
# Tree helpers (iterative)


def rewrite_calls(node: Node, fn: Callable[[object], object | None]) -> Node:
    """A copy of `node` where each Call target `t` with `fn(t)` not None is replaced by it."""
    return CallIndex(node).rewrite(lambda call: fn(call.target))


class CallIndex:
    """The Calls of one tree and the nodes above them, found in one pre-order pass (recursive;
    iterative for a tree deeper than Python's stack), so that rewriting some call targets
    copies only the ancestors of those calls (every other subtree is shared with the
    original): O(nodes) to build, O(ancestors) to rewrite."""

    __slots__ = ("root", "calls", "_above")

    def __init__(self, root: Node):
        try:
            self._scan(root)
        except RecursionError:  # deeper than Python's stack: the iterative pass
            self._scan_iterative(root)

    def _scan(self, root: Node) -> None:
        """The recursive pass (~1.8× faster than the iterative one): each occurrence gets its
        pre-order index on entry; a node with a Call below records its index on the way out,
        so a shared node keeps its last occurrence's, as in `_scan_iterative`."""
        calls: list = []
        above: dict = {}
        kids = CHILD_GETTERS
        at = check_point(MAX_NODES)
        count = [0]

        def visit(n) -> bool:
            count[0] = i = count[0] + 1
            if i == at:  # a DAG built through the API: refused before it is walked out
                walk_check((root,), MAX_NODES, i)
            t = type(n)
            if t is Call:
                calls.append(n)
                return True
            try:
                get = kids[t]
            except KeyError:
                get = kids[t] = child_getter(t)
            if get is None:
                return False
            has = False
            for c in get(n):
                if visit(c):
                    has = True
            if has:
                above[id(n)] = (i, n)
            return has

        visit(root)
        self.root = root
        self.calls = calls
        self._above = above

    def _scan_iterative(self, root: Node) -> None:
        calls: list = []
        above: dict = {}  # id → (last pre-order index, node) of every node with a Call below it
        marked: set = set()  # pre-order indices (occurrences) already marked
        chain: list = []  # the current node's ancestors (pre-order index, node), outermost first
        kids = CHILD_GETTERS
        stack: list = [(root, 0)]
        pop, push = stack.pop, stack.append
        i = 0
        at = check_point(MAX_NODES)
        while stack:
            n, d = pop()
            del chain[d:]
            t = type(n)
            i += 1
            if i == at:  # a DAG built through the API: refused before it is walked out
                walk_check((root,), MAX_NODES, i)
            if t is Call:
                calls.append(n)
                for k in range(d - 1, -1, -1):
                    a = chain[k]
                    if a[0] in marked:
                        break  # this occurrence was marked before, and so was all above it
                    marked.add(a[0])
                    # a shared node: its last occurrence has the largest index, and every
                    # child's last occurrence comes after it (so sorting below stays valid)
                    above[id(a[1])] = a
                continue
            try:
                get = kids[t]
            except KeyError:
                get = kids[t] = child_getter(t)
            if get is not None:
                cs = get(n)
                if cs:
                    chain.append((i, n))
                    d += 1
                    for c in reversed(cs):
                        push((c, d))
        self.root = root
        self.calls = calls
        self._above = above

    def named(self) -> list[Call]:
        """The Calls whose target is a `NamedRef`, in pre-order."""
        return [c for c in self.calls if type(c.target) is NamedRef]

    def rewrite(self, fn: Callable[[Call], object | None]) -> Node:
        """The tree with each Call `c` for which `fn(c)` is not None retargeted (span kept);
        the root itself when nothing changes."""
        return self.rewrite_and_calls(fn)[0]

    def rewrite_and_calls(self, fn: Callable[[Call], object | None]) -> tuple[Node, tuple]:
        """`rewrite`, and the new tree's Calls in pre-order (the retargeted ones new)."""
        done: dict = {}
        for c in self.calls:
            t = fn(c)
            if t is not None:
                done[id(c)] = Call(t, c.span)
        if not done:
            return self.root, tuple(self.calls)
        get = done.get
        for _, n in sorted(self._above.values(), key=_first, reverse=True):  # children first
            new = replace_children(n, lambda c: get(id(c), c))
            if new is not n:
                done[id(n)] = new
        return get(id(self.root), self.root), tuple(get(id(c), c) for c in self.calls)


def _first(pair):
    return pair[0]


def _contains_groupref(node: Node) -> bool:
    return any(type(c.target) is GroupRef for c in CallIndex(node).calls)


def tarjan_scc(n: int, edges: Sequence[Sequence[int]]) -> list[list[int]]:
    """Strongly connected components of vertices 0..n−1, callees first (iterative Tarjan)."""
    index = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] >= 0:
            continue
        work = [(root, 0)]
        while work:
            v, i = work[-1]
            if i == 0 and index[v] < 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack[v] = True
            succ = edges[v]
            descended = False
            while i < len(succ):
                w = succ[i]
                i += 1
                if index[w] < 0:
                    work[-1] = (v, i)
                    work.append((w, 0))
                    descended = True
                    break
                if on_stack[w] and index[w] < low[v]:
                    low[v] = index[w]
            if descended:
                continue
            work.pop()
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
            if work:
                u = work[-1][0]
                if low[v] < low[u]:
                    low[u] = low[v]
    return out


# ---------------------------------------------------------------------------------------------
# Linking


def link_module(module: Module, hasher: Hasher | None = None, *,
                lookup: Callable[[str], bytes | None] | None = None,
                suggest: Callable[[str, Sequence[str]], Sequence[str]] | None = None) -> LinkedModule:
    """Resolve every NamedRef and give each def its address (formats.md §3.3), in one scan of
    each def (`CallIndex`) plus its H2. `hasher` (default: a new one) is the H2 memo used, kept
    on the result. With `lookup`, calls to names the module does not define link to
    `Hash32(lookup(name))` as `link_names` does (in the same pass; unknown names:
    `UnboundNameError`, hints from `suggest`)."""
    defs = module.defs
    index = [CallIndex(d.node) for d in defs]
    named = [ix.named() for ix in index]
    external: dict[str, bytes] = {}
    if lookup is not None:
        own = tuple(d.name for d in defs)
        external = _lookup_names(own, (c for cs in named for c in cs), lookup, suggest)
    pos: dict[str, int] = {}
    for i, d in enumerate(defs):
        if d.name in pos:
            raise LinkError(f"duplicate function '{d.name}'", d.span)
        pos[d.name] = i
    edges: list[list[int]] = []
    for cs in named:
        succ: list[int] = []
        for c in cs:
            j = pos.get(c.target.name)
            if j is None:
                if c.target.name in external:
                    continue
                close = difflib.get_close_matches(c.target.name, list(pos), n=1, cutoff=0.6)
                raise LinkError(f"unknown function '{c.target.name}'", c.span, CALL_TARGET_NOT_FOUND,
                                f"did you mean '{close[0]}'?" if close else None)
            if j not in succ:
                succ.append(j)
        edges.append(succ)

    hasher = hasher if hasher is not None else Hasher()
    address: dict[str, bytes] = dict(external)  # own defs are added as they are linked
    linked: list[LinkedDef] = []
    groups: list[GroupInfo] = []

    def outside(call):
        t = call.target
        return Hash32(address[t.name]) if type(t) is NamedRef else None

    for comp in tarjan_scc(len(defs), edges):
        if len(comp) == 1 and comp[0] not in edges[comp[0]]:
            d = defs[comp[0]]
            node, calls = index[comp[0]].rewrite_and_calls(outside)
            addr = hasher.h2_root(node)
            address[d.name] = addr
            linked.append(LinkedDef(d.name, addr, node, calls=calls))
            continue
        members = {defs[i].name for i in comp}

        def anon(call, members=members):
            t = call.target
            if type(t) is NamedRef:
                return ANON_GROUPREF if t.name in members else Hash32(address[t.name])
            return None

        keyed = []
        for i in comp:
            a = hasher.h2(index[i].rewrite(anon))
            keyed.append((a, defs[i].name.encode("utf-8"), i))
        keyed.sort()
        order = {defs[i].name: j for j, (_, _, i) in enumerate(keyed)}

        def final(call, order=order):
            t = call.target
            if type(t) is NamedRef:
                j = order.get(t.name)
                return GroupRef(j) if j is not None else Hash32(address[t.name])
            return None

        done = [index[i].rewrite_and_calls(final) for _, _, i in keyed]
        info = _group_info([hasher.h2(n) for n, _ in done])
        groups.append(info)
        for j, ((_, _, i), (node, calls)) in enumerate(zip(keyed, done)):
            address[defs[i].name] = info.members[j]
            linked.append(LinkedDef(defs[i].name, info.members[j], node, info, j, calls))
    return LinkedModule(tuple(linked), tuple(groups), hasher)


def _lookup_names(own: Sequence[str], calls: Iterable[Call], lookup, suggest) -> dict[str, bytes]:
    """name → address for every NamedRef call in `calls` to a name not in `own`, by `lookup`;
    names it does not know: `UnboundNameError` (one diagnostic per call)."""
    own_set = set(own)
    found: dict[str, bytes | None] = {}
    missing: list[Diagnostic] = []
    for c in calls:
        name = c.target.name
        if name in own_set:
            continue
        if name not in found:
            found[name] = lookup(name)
        if found[name] is None:
            close = list(suggest(name, own)) if suggest is not None else []
            hint = ("did you mean " + " or ".join(f"'{x}'" for x in close[:3]) + "?") if close else None
            missing.append(Diagnostic(VALIDATION_ERROR, f"unknown function '{name}' (not defined "
                                      "here and not bound in the store)", c.span, hint=hint))
    if missing:
        raise UnboundNameError(missing)
    return {k: v for k, v in found.items() if v is not None}


class UnboundNameError(LinkError):
    """Calls to names bound neither in the module nor in the store (one diagnostic each,
    with its span and a did-you-mean hint)."""

    def __init__(self, diagnostics: Sequence[Diagnostic]):
        first = diagnostics[0]
        where = f"{first.span.line}:{first.span.col}: " if first.span is not None else ""
        super().__init__(where + first.message, first.span)
        self.diagnostics = tuple(diagnostics)


def link_names(module: Module | None, sequence: Sequence[Node] | None,
               lookup: Callable[[str], bytes | None],
               suggest: Callable[[str, Sequence[str]], Sequence[str]] | None = None):
    """Linking by name at write time: every call `NamedRef(n)` where `n` is not a def of
    `module` becomes `Hash32(lookup(n))` (the store's current binding of `n`; content
    addressing is unchanged, the stored program holds the address). → (module, sequence)
    rewritten (None stays None). Names `lookup` does not know: `UnboundNameError` listing
    each call (span, hint "did you mean …" from `suggest(n, module_names)`).
    (`link_module(module, lookup=…)` does this and the linking in one pass.)"""
    own = tuple(d.name for d in module.defs) if module is not None else ()
    own_set = set(own)
    roots = ([d.node for d in module.defs] if module is not None else []) + list(sequence or ())
    index = [CallIndex(r) for r in roots]
    found = _lookup_names(own, (c for ix in index for c in ix.named()), lookup, suggest)

    def fix_call(call: Call):
        t = call.target
        if type(t) is not NamedRef or t.name in own_set:
            return None
        return Hash32(found[t.name])

    fixed = [ix.rewrite(fix_call) for ix in index]
    k = len(own)
    new_module = None if module is None else Module(
        tuple(type(d)(d.name, n, d.span) for d, n in zip(module.defs, fixed[:k])), module.span)
    new_seq = None if sequence is None else tuple(fixed[k:])
    return new_module, new_seq


def _group_info(digests: Sequence[bytes]) -> GroupInfo:
    g = group_hash(digests)
    return GroupInfo(g, tuple(member_address(g, j) for j in range(len(digests))))


def build_group(nodes: Sequence[Node], hasher: Hasher | None = None) -> GroupInfo:
    """The GroupInfo of stored GroupRef-form members given in index order."""
    hasher = hasher or Hasher()
    return _group_info([hasher.h2(n) for n in nodes])


def build_module_from_groups(groups: Iterable[Sequence[tuple[str, Node]]]) -> LinkedModule:
    """Rebuild a LinkedModule from container groups (names and stored forms, callee-first).

    A single-member group is recursive iff its node contains a GroupRef (formats.md §2).
    """
    hasher = Hasher()
    linked: list[LinkedDef] = []
    infos: list[GroupInfo] = []
    for block in groups:
        if len(block) == 1 and not _contains_groupref(block[0][1]):
            name, node = block[0]
            linked.append(LinkedDef(name, hasher.h2(node), node))
            continue
        info = build_group([n for _, n in block], hasher)
        infos.append(info)
        for j, (name, node) in enumerate(block):
            linked.append(LinkedDef(name, info.members[j], node, info, j))
    return LinkedModule(tuple(linked), tuple(infos), hasher)


def decode_file(data: bytes, max_depth: int | None = None):
    """A binary v2 container → Node, list of nodes, or (module kind) a `LinkedModule` with its
    groups rebuilt. An invalid module is a `DecodeError` at the end of the input."""
    decoded = decode_container(data, DEFAULT_MAX_DEPTH if max_depth is None else max_depth)
    if not isinstance(decoded, ModuleGroups):
        return decoded
    try:
        return build_module_from_groups(decoded)
    except NdaError as e:
        raise DecodeError(f"v2: invalid module: {e.message}", len(data)) from e


# ---------------------------------------------------------------------------------------------
# Call resolution


@dataclass(frozen=True, slots=True)
class Callee:
    """What a call runs: the stored node at `address`, and its group when it is a member."""

    address: bytes
    node: Node
    group: GroupInfo | None = None


class Resolver(Protocol):
    def resolve_call(self, target, group: GroupInfo | None) -> Callee | None:
        """The callee of `target` (Hash32 / Legacy64 / GroupRef) from code running in `group`."""
        ...


class MemoryResolver:
    """An in-memory store of callable nodes (tests, tiers, conformance runs).

    Hash32 resolves nodes (under H2), program roots (the H2 of their Scope) and group members
    (under the member address, to the GroupRef-form node with its group); Legacy64 resolves
    through an H1 index of what was added (members also under their alias, programs also
    under their v1 program entry hash); GroupRef(i) is
    member i of the caller's group. Unknown targets resolve to None.
    """

    def __init__(self) -> None:
        self._by_address: dict[bytes, Callee] = {}
        self._by_h1: dict[int, bytes] = {}
        self._h1_of: dict[bytes, int] = {}
        # v1 work not done yet, in the order it was asked for (see `_settle`): H1 is only
        # needed for Legacy64 calls and `callee_h1`, which most runs never make
        self._pending: list = []

    def _put(self, callee: Callee, v1: int | None) -> None:
        self._by_address.setdefault(callee.address, callee)
        if v1 is not None:
            self._h1_of.setdefault(callee.address, v1)
            self._by_h1.setdefault(v1, callee.address)

    def _settle(self) -> None:
        """Do the pending v1 work in order: every H1 sees exactly the entries that an eager
        computation at add time would have seen, so the indexes come out the same."""
        pending, self._pending = self._pending, []
        for kind, callee, extra in pending:
            if kind == "node":
                self._put(callee, self._try_h1(callee.node))
            elif kind == "member":
                self._put(callee, alias_of(callee.address))
                member_h1 = self._try_h1(callee.node, callee.group.aliases)
                if member_h1 is not None:
                    self._by_h1.setdefault(member_h1, callee.address)
            else:  # "program": the v1 program entry hash of a root added as a node
                v1 = self._h1_of.get(callee.address)
                if v1 is not None:
                    self._by_h1.setdefault(program_entry_hash(v1), callee.address)

    def _try_h1(self, node: Node, aliases=None) -> int | None:
        from nda.core.hashing import HashTargetError

        try:
            return h1(node, aliases, self._h1_of.get)
        except HashTargetError:
            return None

    def add_node(self, node: Node) -> bytes:
        """Store `node` under its H2; returns the address."""
        addr = Hasher().h2(node)
        if addr not in self._by_address:
            callee = Callee(addr, node)
            self._by_address[addr] = callee
            self._pending.append(("node", callee, None))
        return addr

    def add_program(self, sequence: Sequence[Node]) -> bytes:
        """Store a program; its root (H2 of its Scope) resolves to that Scope, and so does the
        Legacy64 of its v1 program entry hash (formats.md §3.4)."""
        root = self.add_node(Scope(tuple(sequence)))
        self._pending.append(("program", self._by_address[root], None))
        return root

    def add_linked(self, linked: LinkedModule) -> None:
        """Store every def of a linked module (members with their group)."""
        for d in linked.defs:
            callee = Callee(d.address, d.node, d.group)
            if d.address not in self._by_address:
                self._by_address[d.address] = callee
            self._pending.append(("node" if d.group is None else "member", callee, None))

    def get(self, address: bytes) -> Callee | None:
        return self._by_address.get(bytes(address))

    def callee_h1(self, digest: bytes) -> int | None:
        """The v1 hash a call to `digest` contributes (H1 of the node, alias for members)."""
        if self._pending:
            self._settle()
        return self._h1_of.get(bytes(digest))

    def resolve_call(self, target, group: GroupInfo | None) -> Callee | None:
        t = type(target)
        if t is Hash32:
            return self._by_address.get(target.digest)
        if t is Legacy64:
            if self._pending:
                self._settle()
            addr = self._by_h1.get(target.value)
            return None if addr is None else self._by_address.get(addr)
        if t is GroupRef:
            if group is None or not 0 <= target.index < len(group.members):
                return None
            return self._by_address.get(group.members[target.index])
        return None

    def __len__(self) -> int:
        return len(self._by_address)


__all__ = [
    "ANON_GROUPREF", "LinkError", "GroupInfo", "LinkedDef", "LinkedModule", "rewrite_calls",
    "tarjan_scc", "CallIndex", "link_module", "link_names", "UnboundNameError", "build_group", "build_module_from_groups", "Callee", "Resolver",
    "MemoryResolver",
]
