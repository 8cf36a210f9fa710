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
    _FORMS, _IDENT, _QUALIFIED, DEFAULT_MAX_DEPTH, MAX_PLANE_BYTES, Atom, SexprUnit,
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


class _Ctx:
    """The state of one `_fast` parse that builders and list openings share.

    `hashes`: name text → u64, memoized per parse (an identifier is hashed once); `names`: the
    builder's hash → text dictionary, filled in the order the reference builder fills it;
    `stack`: the open lists' entries `(parent items, line, col)`; `marks`: one
    `(len(names), node depth)` per open list whose builder needs them (forms without a native
    builder), pushed when it opens, popped by its builder."""

    __slots__ = ("b", "hashes", "names", "stack", "marks")

    def __init__(self, b: _Builder):
        self.b = b
        self.hashes: dict = {}
        self.names = b.names
        self.stack: list = []
        self.marks: list = []

    def name(self, t) -> int:
        """The u64 a name atom stands for (an identifier is hashed and recorded), or _Slow."""
        t = _text(t)
        if _IDENT.match(t):
            h = self.hashes[t] = ir.name_hash(t)
            self.names.setdefault(h, t)
            return h
        if t.startswith("#x:"):
            h = self.hashes[t] = _u64(t)
            return h
        raise _Slow

    def open(self, items: list) -> None:
        """A list with a head in `_SPECIAL` was just cut (its head and leading atoms are
        `items`): a name atom becomes its u64 now (text order is the reference's insertion
        order); a form without a native builder records the names count and its node depth."""
        head = items[0]
        if head in _NAMED:
            t = items[1]  # IndexError: `(let)`, `(load (…))`… declined
            h = self.hashes.get(t)
            items[1] = h if h is not None else self.name(t)
        else:
            depth = 1
            for e in self.stack:  # the node depth of this list: its ancestors' contributions
                depth += _CHILD_DEPTH[e[0][0]]
            self.marks.append((len(self.names), depth))


# The hottest builders set the slots themselves (one Python frame per node, not three).
_new = object.__new__
_IntC, _LoadC = ir.Int, ir.Load


def _setter(cls, field: str):
    """The slot setter of `cls.field` (what the frozen `__init__` reaches via object.__setattr__)."""
    return getattr(cls, field).__set__


_int_value, _int_span = _setter(ir.Int, "value"), _setter(ir.Int, "span")
_load_name, _load_span = _setter(ir.Load, "name"), _setter(ir.Load, "span")

# Builders: (items of the closed list — head first, a name already its u64 —, its Span, the
# _Ctx) → the node (or a `_Branch`/`_DefForm`/`_ModuleForm`); any other shape raises.


_SMALL = {str(i): i for i in range(256)}  # the canonical spellings of small integers


def _fb_int(it, sp, cx):
    _, t = it
    v = _SMALL.get(t) if type(t) is str else None
    if v is not None:
        o = _new(_IntC)
        _int_value(o, v)
        _int_span(o, sp)
        return o
    if type(t) is str and t.isdigit() and t.isascii():
        v = int(t)
        if v < 2147483648:
            o = _new(_IntC)
            _int_value(o, v)
            _int_span(o, sp)
            return o
    return _Int(_int32(t), sp)


def _fb_load(it, sp, cx):
    _, h = it
    if type(h) is not int:
        raise _Slow
    o = _new(_LoadC)
    _load_name(o, h)
    _load_span(o, sp)
    return o


def _fb_named(cls, value_field: str):
    """Builder of `(let NAME node)` / `(store NAME node)`: a name and one child."""
    s_name, s_value, s_span = _setter(cls, "name"), _setter(cls, value_field), _setter(cls, "span")

    def build(it, sp, cx):
        _, h, c = it
        if type(h) is not int or type(c) not in _NODE_TYPES:
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

    def build(it, sp, cx):
        _, x, y = it
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

    def build(it, sp, cx):
        _, x = it
        if type(x) not in _NODE_TYPES:
            raise _Slow
        o = _new(cls)
        s_child(o, x)
        s_span(o, sp)
        return o
    return build


def _fb_scope(it, sp, cx):
    return _Scope(_nodes(it, 1), sp)


def _fb_loop(it, sp, cx):
    return _Loop(_unsigned(it[1], 32), _nodes(it, 2), sp)


def _fb_while(it, sp, cx):
    return _While(_node(it[1]), _nodes(it, 2), sp)


def _fb_if(it, sp, cx):
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
    def build(it, sp, cx):
        return _Branch(word, _nodes(it, 1))
    return build


def _fb_op_binary(cls, enum):
    s_op, s_lhs, s_rhs, s_span = (getattr(cls, f.name).__set__ for f in dataclasses.fields(cls))
    spell = _SPELL[enum]

    def build(it, sp, cx):
        _, op, x, y = it
        op = spell.get(op) if type(op) is str else None
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
_HEX64 = re.compile(r"#[0-9a-fA-F]{64}\Z")


def _fb_call(it, sp, cx):
    """`(call TARGET)`: the four target spellings of the reference's `_Builder.target`."""
    _, t = it
    t = _text(t)
    if t.startswith("@") and _QUALIFIED.match(t, 1):
        return _Call(ir.NamedRef(t[1:]), sp)
    if t.startswith("#g:") and _DIGITS.match(t, 3) and int(t[3:]) < (1 << 32):
        return _Call(ir.GroupRef(int(t[3:])), sp)
    if t.startswith("#x:"):
        return _Call(ir.Legacy64(_u64(t)), sp)
    if _HEX64.match(t):
        return _Call(ir.Hash32(bytes.fromhex(t[1:])), sp)
    raise _Slow


def _adapted(it, sp, cx):
    """A form without a native builder: the reference builder on adapted items (atoms get no
    position: on any error the whole text goes to the reference path anyway). Its opening
    pushed `(len(names), depth)` on `cx.marks`."""
    n0, depth = cx.marks.pop()
    if it[0] == "bitwise" and len(it) == 4 and len(cx.names) != n0:
        raise _Slow  # the reference builds its rhs first: names would be in another order
    items = tuple(Atom(x, 0, None) if type(x) is str else x for x in it)
    for x in items:
        if type(x) in (_Branch, _DefForm, _ModuleForm):
            raise _Slow
    return _FORMS[it[0]](cx.b, items[1:], SList(items, sp), depth + 1)


def _fb_def(it, sp, cx):
    _, name, node = it
    if type(name) is not str or not _IDENT.match(name):
        raise _Slow
    return _DefForm(name, _node(node), sp)


def _fb_module(it, sp, cx):
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
# heads whose list needs `_Ctx.open` when it opens: a name to hash, or a form without a
# native builder (its builder wants the names count and the node depth)
_SPECIAL = _NAMED | {head for head, f in _FAST.items() if f is _adapted}
# how deep the lists inside a list with this head sit: +1 below a node form, the same below
# (then …)/(else …), 1 below (def …), 0 below (module …)
_TOP = "<top>"  # `_fast`'s pseudo-head of the top-level list
_CHILD_DEPTH = {head: 1 for head in _FORMS}
# relative to the list's own depth: a def inside a module sits at 0, the lists in it at 1; a
# def or module anywhere else is declined by the builder of the list around it
_CHILD_DEPTH.update({"then": 0, "else": 0, "def": 1, "module": -1, _TOP: 0})
_COMMENT = re.compile(r";[^\n]*")
_ATOMS_CLOSES = re.compile(r"\)|[^\s();\"]+")
_span_line, _span_col, _span_file = (getattr(Span, f).__set__ for f in ("line", "col", "file"))


def _blank(m) -> str:
    return " " * (m.end() - m.start())


def _fast(src: str, file: str | None, max_depth: int, max_plane_bytes: int, max_lists: int) -> SexprUnit:
    """Source text → SexprUnit, or an exception when the reference path must decide.

    The text is cut at every '(' into chunks: chunk k is what follows the k-th '(' up to the
    next one — the list's head and atoms, then (usually) only the ')'s that close lists, so the
    common chunk is read with two `rstrip`s and a `split` instead of a token loop (a chunk with
    atoms or whitespace after a ')' goes through `_tokens`). A list that closes in its own chunk
    is built at once; any other is pushed as (parent items, line, col) and built when its ')'
    is read. Line and column are those of each '(' (the Span made as `make_span` does, inlined).
    Lists nest at most min(max_depth, max_lists) deep (a node's depth is at most its list's:
    then/else/def/module lists add none), so no node depth is tracked here.
    Every malformed shape declines (an IndexError, KeyError, ValueError or `_Slow`)."""
    b = _Builder(max_depth, max_plane_bytes)
    cx = _Ctx(b)
    hashes, stack = cx.hashes, cx.stack
    top: list = [_TOP]  # a pseudo-head: lists directly inside sit at depth 1
    cur = top  # the open list's items
    if ";" in src:
        src = _COMMENT.sub(_blank, src)  # same offsets, same lines
    if '"' in src:
        raise _Slow
    chunks = src.split("(")
    first = chunks[0]
    if first and not first.isspace():
        raise _Slow  # atoms or ')' before the first list
    line, col = 1, len(first) + 1  # of the '(' before the current chunk
    if "\n" in first:
        line += first.count("\n")
        col = len(first) - first.rfind("\n")
    lim = min(max_depth, max_lists)
    fast, special, named = _FAST, _SPECIAL, _NAMED
    pop, push = stack.pop, stack.append
    new_span, s_line, s_col, s_file = object.__new__, _span_line, _span_col, _span_file
    del chunks[0]
    for ch in chunks:  # '(' opens a list inside `cur`
        body = ch.rstrip()
        inner = body.rstrip(")")
        if ")" in inner:  # atoms (or whitespace) after a ')': token by token
            push((cur, line, col))
            cur = _tokens(ch, cx, file, lim)
        else:
            items = inner.split()
            head = items[0]  # IndexError on '()' or '((': declined
            if head in special:
                if head in named:
                    t = items[1]  # a name: its u64 now (text order is the reference's)
                    h = hashes.get(t)
                    items[1] = h if h is not None else cx.name(t)
                else:
                    push((cur, line, col))
                    cx.open(items)
                    pop()
            k = len(body) - len(inner)  # the ')'s
            if k:  # the list closes in its own chunk: built at once, then k-1 lists around it
                if len(stack) >= lim:
                    raise _Slow  # too deep for the fast path: the reference decides
                sp = new_span(Span)  # = make_span(line, col, file), without its call
                s_line(sp, line)
                s_col(sp, col)
                if file is not None:
                    s_file(sp, file)
                node = fast[head](items, sp, cx)  # KeyError: unknown head
                while k > 1:
                    k -= 1
                    cur.append(node)
                    items = cur
                    cur, l0, c0 = pop()  # IndexError on a stray ')': declined
                    sp = new_span(Span)
                    s_line(sp, l0)
                    s_col(sp, c0)
                    if file is not None:
                        s_file(sp, file)
                    node = fast[items[0]](items, sp, cx)
                cur.append(node)
            else:
                push((cur, line, col))
                cur = items
        if "\n" in ch:
            line += ch.count("\n")
            col = len(ch) - ch.rfind("\n")
        else:
            col += len(ch) + 1
    if stack:
        raise _Slow
    del top[0]
    if top and type(top[0]) is _ModuleForm:
        if len(top) != 1:
            raise _Slow
        return SexprUnit(module=ir.Module(top[0].defs, span=top[0].span), names=b.names)
    return SexprUnit(sequence=_nodes(top, 0), names=b.names)


def _tokens(ch: str, cx: _Ctx, file, lim: int) -> list:
    """A chunk with atoms after a ')' (no '(' inside): the new list's head and atoms up to the
    first ')', then ')'s and atoms token by token → the list open at the chunk's end."""
    stack = cx.stack
    head, _, rest = ch.partition(")")
    cur = head.split()
    if cur[0] in _SPECIAL:
        cx.open(cur)
    if len(stack) > lim:
        raise _Slow
    for t in _ATOMS_CLOSES.findall(")" + rest):
        if t == ")":
            items = cur
            cur, l0, c0 = stack.pop()
            cur.append(_FAST[items[0]](items, make_span(l0, c0, file), cx))
        else:
            cur.append(t)
    return cur
