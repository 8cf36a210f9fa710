"""The lossless S-expression form (language.md §5): text ⇄ IR.

In: S-expression text (zero or more node forms, or one `(module (def NAME NODE)…)` form).
Out: `SexprUnit` — either a top-level sequence of nodes or a `Module` (whose `@name` targets are
`NamedRef`s, resolved later by `link.link_module`), plus the name dictionary seen while parsing
(hash → identifier). `print_sexpr` / `print_node` / `print_unit` write the canonical form, so
`parse(print(ir)) == ir` for every IR and `print(parse(text))` is canonical.

Errors are `ParseError`s whose message starts with `line:col`; nothing else escapes.
"""

from __future__ import annotations

import dataclasses
import re

from nda.core import ir
from nda.core.errors import ParseError, Span, make_span
from nda.core.gcpause import gc_paused
from nda.syntax.sexpr_read import (  # noqa: F401  (re-exported: the reference reader lives there)
    _FORMS, _IDENT, DEFAULT_MAX_DEPTH, MAX_PLANE_BYTES, Atom, SexprUnit,
    SList, _Builder, _build, _read, i32_of,
)
from nda.syntax.sexpr_print import (  # noqa: F401  (re-exported: the printer lives there)
    _Printer, print_module, print_node, print_sexpr, print_unit,
)


def parse_sexpr(src: str, file: str | None = None, max_depth: int = DEFAULT_MAX_DEPTH,
                max_plane_bytes: int = MAX_PLANE_BYTES) -> SexprUnit:
    """Parse a program text: a top-level sequence, or one `(module …)` form.

    `max_plane_bytes` bounds the total size of the planes the text expands to (a plane is
    written as its shortest period, so a few bytes of source could otherwise ask for
    gigabytes)."""
    if not isinstance(src, str):
        raise ParseError("1:1: S-expression source must be text")
    with gc_paused():
        return _parse(src, file, max_depth, max_plane_bytes)


def _parse(src: str, file, max_depth: int, max_plane_bytes: int) -> SexprUnit:
    try:
        return _fast(src, file, max_depth, max_plane_bytes, 3 * max_depth + 8)
    except Exception:
        pass  # anything unusual or wrong: the reference reader and builder say what and where
    items = _read(src, file, max_lists=3 * max_depth + 8)
    b = _Builder(max_depth, max_plane_bytes)
    try:
        return _build(b, items)
    except RecursionError:
        # a max_depth far above the default: build again on a big-stack worker
        from nda.core.deepstack import call_in_big_thread

        return call_in_big_thread(lambda: _build(_Builder(max_depth, max_plane_bytes), items),
                                  8 * max_depth + 400)


def parse_node(src: str, file: str | None = None, max_depth: int = DEFAULT_MAX_DEPTH) -> ir.Node:
    """Parse exactly one node form."""
    unit = parse_sexpr(src, file, max_depth)
    if unit.sequence is None or len(unit.sequence) != 1:
        raise ParseError("1:1: expected exactly one node form")
    return unit.sequence[0]


# ---------------------------------------------------------------------------------------------
# The fused fast path: tokens → IR in one pass, for texts without errors
#
# `_fast` builds each node when its ')' is read, from plain strings (atoms) and the nodes
# already built for its child lists; only '(' positions become line:col (every node has a
# span). It accepts a subset of what the reference path (`_read` + `_Builder`) accepts and gives
# the identical result (IR, spans, names in first-spelling order); on anything else — any error,
# or a form it does not build natively — it raises, and `parse_sexpr` re-reads the text with the
# reference path, which reports the error exactly as before. Forms without a native builder go
# through the reference form builder (`_adapted`).


class _Slow(Exception):
    """The fast path declines; the reference path decides."""


class _Branch:
    """A `(then N…)` / `(else N…)` list, consumed by the enclosing `if`."""

    __slots__ = ("word", "nodes")

    def __init__(self, word, nodes):
        self.word = word
        self.nodes = nodes


class _DefForm:
    __slots__ = ("name", "node", "span")

    def __init__(self, name, node, span):
        self.name = name
        self.node = node
        self.span = span


class _ModuleForm:
    __slots__ = ("defs", "span")

    def __init__(self, defs, span):
        self.defs = defs
        self.span = span


_NODE_TYPES = frozenset(ir.NODE_CLASSES)


def _maker(cls):
    """`cls(*fields)` for a frozen slotted node dataclass, setting the slots directly (what its
    generated `__init__` does through `object.__setattr__`, at a third of the cost): an equal
    node. Every field must be passed, in declaration order, span last."""
    names = [f.name for f in dataclasses.fields(cls)]
    body = "".join(f"    _s{i}(o, {n})\n" for i, n in enumerate(names))
    ns = {"_new": object.__new__, "_cls": cls}
    ns.update((f"_s{i}", getattr(cls, n).__set__) for i, n in enumerate(names))
    exec(f"def make({', '.join(names)}):\n    o = _new(_cls)\n{body}    return o\n", ns)  # noqa: S102
    return ns["make"]


_MK = {cls: _maker(cls) for cls in ir.NODE_CLASSES}
_Int, _Scope, _Loop, _While, _If, _Call = (_MK[ir.Int], _MK[ir.Scope], _MK[ir.Loop], _MK[ir.While],
                                           _MK[ir.If], _MK[ir.Call])
_NAMED = frozenset(("let", "load", "store"))
_HEX16 = re.compile(r"[0-9a-fA-F]{16}\Z")
_DIGITS = re.compile(r"[0-9]+\Z")
_SPELL = {cls: {v: cls(k) for k, v in ir.ENUM_SPELLING[cls].items()} for cls in ir.ENUM_SPELLING}


def _nodes(items, start: int) -> tuple:
    """items[start:] as a tuple of nodes, or _Slow."""
    out = tuple(items[start:])
    for x in out:
        if type(x) not in _NODE_TYPES:
            raise _Slow
    return out


def _node(x):
    if type(x) not in _NODE_TYPES:
        raise _Slow
    return x


def _text(x) -> str:
    if type(x) is not str:
        raise _Slow
    return x


def _int32(t) -> int:
    if type(t) is str and t.isdigit() and t.isascii():
        v = int(t)
        if v < (1 << 31):
            return v
        raise _Slow
    v = i32_of(_text(t))
    if v is None:
        raise _Slow
    return v


def _unsigned(t, bits: int) -> int:
    if type(t) is str and t.isdigit() and t.isascii():
        v = int(t)
        if v < (1 << bits):
            return v
    raise _Slow


def _u64(t) -> int:
    t = _text(t)
    if t.startswith("#x:"):
        if _HEX16.match(t[3:]):
            return int(t[3:], 16)
        raise _Slow
    if _DIGITS.match(t) and int(t) < (1 << 64):
        return int(t)
    raise _Slow


class _FastNames:
    """name text → hash, memoized per parse (the same identifier is hashed once)."""

    __slots__ = ("hashes", "names")

    def __init__(self, names: dict):
        self.hashes: dict = {}
        self.names = names  # hash → text, in the order the reference builder would fill it

    def spelt(self, t: str) -> None:
        """Called when a name atom is read (text order = the reference's insertion order)."""
        if t not in self.hashes and _IDENT.match(t):
            h = self.hashes[t] = ir.name_hash(t)
            self.names.setdefault(h, t)

    def __call__(self, t) -> int:
        h = self.hashes.get(t)
        if h is not None:
            return h
        t = _text(t)
        if t.startswith("#x:"):
            return _u64(t)
        raise _Slow


# The hottest builders set the slots themselves (one Python frame per node, not three).
_new = object.__new__
_IntC, _LoadC = ir.Int, ir.Load


def _setter(cls, field: str):
    """The slot setter of `cls.field` (what the frozen `__init__` reaches via object.__setattr__)."""
    return getattr(cls, field).__set__


_int_value, _int_span = _setter(ir.Int, "value"), _setter(ir.Int, "span")
_load_name, _load_span = _setter(ir.Load, "name"), _setter(ir.Load, "span")


def _fb_int(b, it, sp, nm):
    if len(it) != 2:
        raise _Slow
    t = it[1]
    if type(t) is str and t.isdigit() and t.isascii():
        v = int(t)
        if v < 2147483648:
            o = _new(_IntC)
            _int_value(o, v)
            _int_span(o, sp)
            return o
    return _Int(_int32(t), sp)


def _fb_load(b, it, sp, nm):
    if len(it) != 2:
        raise _Slow
    h = nm.hashes.get(it[1])
    if h is None:
        h = nm(it[1])
    o = _new(_LoadC)
    _load_name(o, h)
    _load_span(o, sp)
    return o


def _fb_named(cls, value_field: str):
    """Builder of `(let NAME node)` / `(store NAME node)`: a name and one child."""
    s_name, s_value, s_span = _setter(cls, "name"), _setter(cls, value_field), _setter(cls, "span")

    def build(b, it, sp, nm):
        if len(it) != 3:
            raise _Slow
        h = nm.hashes.get(it[1])
        if h is None:
            h = nm(it[1])
        c = it[2]
        if type(c) not in _NODE_TYPES:
            raise _Slow
        o = _new(cls)
        s_name(o, h)
        s_value(o, c)
        s_span(o, sp)
        return o
    return build


_fb_let, _fb_store = _fb_named(ir.Let, "init"), _fb_named(ir.Store, "value")


def _fb_binary(cls):
    s_lhs, s_rhs, s_span = (getattr(cls, f.name).__set__ for f in dataclasses.fields(cls))

    def build(b, it, sp, nm):
        if len(it) != 3:
            raise _Slow
        x, y = it[1], it[2]
        if type(x) not in _NODE_TYPES or type(y) not in _NODE_TYPES:
            raise _Slow
        o = _new(cls)
        s_lhs(o, x)
        s_rhs(o, y)
        s_span(o, sp)
        return o
    return build


def _fb_unary(cls):
    s_child, s_span = (getattr(cls, f.name).__set__ for f in dataclasses.fields(cls))

    def build(b, it, sp, nm):
        if len(it) != 2:
            raise _Slow
        x = it[1]
        if type(x) not in _NODE_TYPES:
            raise _Slow
        o = _new(cls)
        s_child(o, x)
        s_span(o, sp)
        return o
    return build


def _fb_scope(b, it, sp, nm):
    return _Scope(_nodes(it, 1), sp)


def _fb_loop(b, it, sp, nm):
    if len(it) < 2:
        raise _Slow
    return _Loop(_unsigned(it[1], 32), _nodes(it, 2), sp)


def _fb_while(b, it, sp, nm):
    if len(it) < 2:
        raise _Slow
    return _While(_node(it[1]), _nodes(it, 2), sp)


def _fb_if(b, it, sp, nm):
    n = len(it)
    if n not in (3, 4):
        raise _Slow
    then = it[2]
    if type(then) is not _Branch or then.word != "then":
        raise _Slow
    other = None
    if n == 4:
        other = it[3]
        if type(other) is not _Branch or other.word != "else":
            raise _Slow
        other = other.nodes
    return _If(_node(it[1]), then.nodes, other, sp)


def _fb_branch(word):
    def build(b, it, sp, nm):
        return _Branch(word, _nodes(it, 1))
    return build


def _fb_op_binary(cls, enum):
    s_op, s_lhs, s_rhs, s_span = (getattr(cls, f.name).__set__ for f in dataclasses.fields(cls))
    spell = _SPELL[enum]

    def build(b, it, sp, nm):
        if len(it) != 4:
            raise _Slow
        op, x, y = spell.get(it[1]) if type(it[1]) is str else None, it[2], it[3]
        if op is None or type(x) not in _NODE_TYPES or type(y) not in _NODE_TYPES:
            raise _Slow
        o = _new(cls)
        s_op(o, op)
        s_lhs(o, x)
        s_rhs(o, y)
        s_span(o, sp)
        return o
    return build


_fb_cmp = _fb_op_binary(ir.Compare, ir.CmpOp)
_fb_math = _fb_op_binary(ir.Math, ir.MathOp)


def _fb_call(b, it, sp, nm):
    if len(it) != 2:
        raise _Slow
    t = _text(it[1])
    if t.startswith("@") and _IDENT.match(t, 1):
        return _Call(ir.NamedRef(t[1:]), sp)
    return _adapted(b, it, sp, nm)


def _adapted(b, it, sp, nm):
    """A form without a native builder: the reference builder on adapted items (atoms get no
    position: on any error the whole text goes to the reference path anyway)."""
    items = tuple(Atom(x, 0, None) if type(x) is str else x for x in it)
    for x in items:
        if type(x) in (_Branch, _DefForm, _ModuleForm):
            raise _Slow
    return _FORMS[it[0]](b, items[1:], SList(items, sp), b.depth + 1)


def _fb_def(b, it, sp, nm):
    if len(it) != 3 or type(it[1]) is not str or not _IDENT.match(it[1]):
        raise _Slow
    return _DefForm(it[1], _node(it[2]), sp)


def _fb_module(b, it, sp, nm):
    defs, seen = [], set()
    for d in it[1:]:
        if type(d) is not _DefForm or d.name in seen:
            raise _Slow
        seen.add(d.name)
        defs.append(ir.Def(d.name, d.node, span=d.span))
    return _ModuleForm(tuple(defs), sp)


_FAST = {head: _adapted for head in _FORMS}
_FAST.update({
    "int": _fb_int, "load": _fb_load, "let": _fb_let, "store": _fb_store, "scope": _fb_scope,
    "add": _fb_binary(ir.Add), "poke": _fb_binary(ir.Poke), "gemv": _fb_binary(ir.Gemv),
    "dot": _fb_binary(ir.Dot), "print": _fb_unary(ir.Print), "return": _fb_unary(ir.Return),
    "peek": _fb_unary(ir.Peek), "alloc": _fb_unary(ir.Alloc), "free": _fb_unary(ir.Free),
    "loop": _fb_loop, "while": _fb_while, "if": _fb_if, "cmp": _fb_cmp, "math": _fb_math,
    "call": _fb_call, "then": _fb_branch("then"), "else": _fb_branch("else"),
    "def": _fb_def, "module": _fb_module,
})
# how deep the lists inside a list with this head sit: +1 below a node form, the same below
# (then …)/(else …), 1 below (def …), 0 below (module …)
_TOP = "<top>"  # `_fast`'s pseudo-head of the top-level list
_CHILD_DEPTH = {head: 1 for head in _FORMS}
# relative to the list's own depth: a def inside a module sits at 0, the lists in it at 1; a
# def or module anywhere else is declined by the builder of the list around it
_CHILD_DEPTH.update({"then": 0, "else": 0, "def": 1, "module": -1, _TOP: 0})
_NOT_NODE = frozenset(("then", "else", "def", "module"))
_COMMENT = re.compile(r";[^\n]*")
_SPAN_SETTERS = tuple(getattr(Span, f).__set__ for f in ("line", "col", "end_line", "end_col", "offset", "file"))
_ATOMS_CLOSES = re.compile(r"\)|[^\s();\"]+")


def _blank(m) -> str:
    return " " * (m.end() - m.start())


def _fast(src: str, file: str | None, max_depth: int, max_plane_bytes: int, max_lists: int) -> SexprUnit:
    """The text cut at every '(' into chunks: chunk k is what follows the k-th '(' up to the
    next one — the list's head and atoms, then (usually) only the ')'s that close lists, so the
    common chunk is read with three string methods instead of a token loop (a chunk with atoms
    after a ')' goes through `_tokens`). Offsets, lines and columns are those of each '('.
    Every malformed shape declines (an IndexError, KeyError or `_Slow`)."""
    b = _Builder(max_depth, max_plane_bytes)
    nm = _FastNames(b.names)
    names, hashes = b.names, nm.hashes
    top: list = [_TOP]  # a pseudo-head: lists directly inside sit at depth 1
    stack: list = []
    cur, depth = top, 1  # the open list's items and the node depth of the lists inside it
    if ";" in src:
        src = _COMMENT.sub(_blank, src)  # same offsets, same lines
    if '"' in src:
        raise _Slow
    chunks = src.split("(")
    first = chunks[0]
    if first.split():
        raise _Slow  # atoms or ')' before the first list
    line, nl_at = 1, -1
    if "\n" in first:
        line += first.count("\n")
        nl_at = first.rfind("\n")
    p = len(first)  # offset of the '(' before the current chunk
    fast, child_depth, named, not_node, ident = _FAST, _CHILD_DEPTH, _NAMED, _NOT_NODE, _IDENT.match
    pop, push = stack.pop, stack.append
    new_span = object.__new__
    s_line, s_col, s_end_line, s_end_col, s_offset, s_file = _SPAN_SETTERS
    del chunks[0]
    for ch in chunks:
        # '(' opens a list inside `cur` (IndexError: a list in head position; KeyError: an
        # unknown head — both declined)
        d = depth + child_depth[cur[0]]
        if len(stack) >= max_lists:
            raise _Slow
        push((cur, depth, line, p - nl_at, len(names)))
        depth = d
        body = ch.rstrip()
        inner = body.rstrip(")")
        if ")" in inner:
            cur, depth = _tokens(ch, [], depth, b, nm, stack, file, max_depth)
        else:
            cur = inner.split()
            if cur[0] in named and len(cur) > 1:  # IndexError on '()' or '((': declined
                t = cur[1]  # a name, spelt now: text order is the reference's insertion order
                if t not in hashes and ident(t):
                    h = hashes[t] = ir.name_hash(t)
                    names.setdefault(h, t)
            k = len(body) - len(inner)
            while k:  # ')': build the list just closed
                k -= 1
                items = cur
                cur, parent_depth, l0, c0, n0 = pop()  # IndexError on a stray ')': declined
                head = items[0]
                if head == "bitwise" and len(items) == 4 and len(names) != n0:
                    raise _Slow  # the reference builds its rhs first: names would be in another order
                if depth > max_depth and head not in not_node:
                    raise _Slow
                b.depth = depth
                sp = new_span(Span)  # = make_span(l0, c0, file), without its call
                s_line(sp, l0)
                s_col(sp, c0)
                s_end_line(sp, 0)
                s_end_col(sp, 0)
                s_offset(sp, None)
                s_file(sp, file)
                cur.append(fast[head](b, items, sp, nm))
                depth = parent_depth
        if "\n" in ch:
            line += ch.count("\n")
            nl_at = p + 1 + ch.rfind("\n")
        p += len(ch) + 1
    if stack:
        raise _Slow
    del top[0]
    if top and type(top[0]) is _ModuleForm:
        if len(top) != 1:
            raise _Slow
        return SexprUnit(module=ir.Module(top[0].defs, span=top[0].span), names=b.names)
    return SexprUnit(sequence=_nodes(top, 0), names=b.names)


def _tokens(ch: str, cur: list, depth: int, b, nm, stack: list, file, max_depth: int):
    """A chunk with atoms after a ')', token by token (no '(' inside) → (cur, depth)."""
    names = b.names
    for t in _ATOMS_CLOSES.findall(ch):
        if t == ")":
            items = cur
            cur, parent_depth, l0, c0, n0 = stack.pop()
            head = items[0]
            if head == "bitwise" and len(items) == 4 and len(names) != n0:
                raise _Slow
            if head not in _NOT_NODE and depth > max_depth:
                raise _Slow
            b.depth = depth
            cur.append(_FAST[head](b, items, make_span(l0, c0, file), nm))
            depth = parent_depth
        else:
            if len(cur) == 1 and cur[0] in _NAMED:
                nm.spelt(t)
            cur.append(t)
    return cur, depth
