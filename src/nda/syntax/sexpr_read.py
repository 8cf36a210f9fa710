"""The reference S-expression reader and builder (language.md §5): text → Atom/SList → IR.

In: S-expression text. Out: `_read` → nested `Atom`/`SList` (each with its `Span`), `_build` →
`SexprUnit` through `_Builder` and the per-form builders `_FORMS`; every error is a
`ParseError` whose message starts with `line:col`. `nda.syntax.sexpr.parse_sexpr` tries its
fused fast path first and falls back to this path whenever that one declines, so this path is
the definition of what is accepted and of every error message and position.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Sequence

from nda.core import ir
from nda.core.errors import ParseError, Span, make_span

DEFAULT_MAX_DEPTH = 256
MAX_PLANE_BYTES = 64 * 1024 * 1024  # total expanded plane bytes per parse (a resource guard)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_QUALIFIED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_DEC = re.compile(r"[-+]?[0-9]+\Z")
_HEX32 = re.compile(r"0[xX][0-9a-fA-F]{1,8}\Z")


def i32_of(t: str) -> int | None:
    """The i32 an integer atom spells (decimal, or hex of up to 8 digits wrapping to signed),
    or None when `t` is not an integer or is out of the i32 range."""
    if _HEX32.match(t):
        v = int(t, 16)
        return v - (1 << 32) if v >= 1 << 31 else v
    if _DEC.match(t):
        v = int(t)
        if -(1 << 31) <= v < (1 << 31):
            return v
    return None
_FLOAT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")
_HEXPLANE = re.compile(r"(?:[0-9a-fA-F]{2})+\Z")
# one token: a parenthesis, an atom, a comment or a '"' (whitespace is what no branch matches;
# `\s` is exactly `str.isspace`, and only '\n' starts a line)
_TOKEN = re.compile(r"[()]|[^\s();\"]+|;[^\n]*|\"")
_NEWLINE = re.compile(r"\n")


class _Source:
    """The text being read, with a lazily built table of newline offsets (offset → line:col)."""

    __slots__ = ("text", "file", "_nl")

    def __init__(self, text: str, file: str | None):
        self.text = text
        self.file = file
        self._nl = None

    def line_col(self, off: int) -> tuple[int, int]:
        nl = self._nl
        if nl is None:
            nl = self._nl = [m.start() for m in _NEWLINE.finditer(self.text)]
        k = bisect_right(nl, off - 1)  # newlines strictly before `off`
        return k + 1, off - (nl[k - 1] if k else -1)


class Atom:
    """One atom of the text; its `Span` (with end column) is computed only when asked for."""

    __slots__ = ("text", "off", "src")

    def __init__(self, text: str, off: int, src: _Source):
        self.text = text
        self.off = off
        self.src = src

    @property
    def span(self) -> Span:
        line, col = self.src.line_col(self.off)
        return Span(line, col, line, col + len(self.text), file=self.src.file)

    def __repr__(self) -> str:
        return f"Atom({self.text!r})"


class SList:
    """One parenthesised list: its items and the `Span` of its '('."""

    __slots__ = ("items", "span")

    def __init__(self, items: tuple, span: Span):
        self.items = items
        self.span = span

    def __repr__(self) -> str:
        return f"SList({self.items!r})"


@dataclass(frozen=True, slots=True)
class SexprUnit:
    """What a program text holds: a sequence or a module, and the names it spelt out."""

    sequence: tuple[ir.Node, ...] | None = None
    module: ir.Module | None = None
    names: dict = field(default_factory=dict)

    @property
    def is_module(self) -> bool:
        return self.module is not None


# ---------------------------------------------------------------------------------------------
# Reader: text → nested Atom/SList (iterative, so nesting never hits Python's recursion limit)


def _read(src: str, file: str | None, max_lists: int) -> list:
    """Tokenize with one regex (`_TOKEN`); line:col is tracked only at '(' (every list becomes a
    node with a span) and computed from the offset for atoms and errors when asked for."""
    source = _Source(src, file)
    top: list = []
    stack: list = []
    cur = top
    line, nl_at, last = 1, -1, 0  # current line, offset of the newline that starts it, last '('
    count, rfind = src.count, src.rfind
    for m in _TOKEN.finditer(src):
        t = m.group()
        c = t[0]
        if c == "(":
            p = m.start()
            k = count("\n", last, p)
            if k:
                line += k
                nl_at = rfind("\n", last, p)
            last = p
            if len(stack) >= max_lists:
                sp = Span(line, p - nl_at, file=file)
                raise ParseError(f"{sp.line}:{sp.col}: nesting too deep", sp)
            stack.append((cur, line, p - nl_at))
            cur = []
        elif c == ")":
            if not stack:
                line_, col = source.line_col(m.start())
                raise ParseError(f"{line_}:{col}: unexpected ')'", Span(line_, col, file=file))
            parent, l0, c0 = stack.pop()
            parent.append(SList(tuple(cur), make_span(l0, c0, file)))
            cur = parent
        elif c == ";":
            continue
        elif c == '"':
            line_, col = source.line_col(m.start())
            raise ParseError(f"{line_}:{col}: strings are not supported", Span(line_, col, file=file))
        else:
            cur.append(Atom(t, m.start(), source))
    if stack:
        _, l0, c0 = stack[-1]
        sp = Span(l0, c0, file=file)
        raise ParseError(f"{sp.line}:{sp.col}: unclosed '(' (expected ')' before end of input)", sp)
    return top


# ---------------------------------------------------------------------------------------------
# Builder: nested lists → IR


class _Builder:
    def __init__(self, max_depth: int, max_plane_bytes: int = 0):
        self.max_depth = max_depth
        self.plane_budget = max_plane_bytes
        self.plane_bytes = 0
        self.names: dict[int, str] = {}
        self.depth = 0  # the fast path's nesting depth at the form being built (sexpr.py)

    # -- errors
    @staticmethod
    def fail(span: Span, msg: str):
        raise ParseError(f"{span.line}:{span.col}: {msg}", span)

    # -- atoms
    def atom(self, x, what: str) -> Atom:
        if not isinstance(x, Atom):
            self.fail(x.span, f"expected {what}, found a list")
        return x

    def int32(self, x) -> int:
        a = self.atom(x, "an integer")
        t = a.text
        v = i32_of(t)
        if v is not None:
            return v
        if _DEC.match(t):
            self.fail(a.span, f"integer {t} out of i32 range")
        self.fail(a.span, f"expected an integer, found '{t}'")

    def unsigned(self, x, bits: int, what: str = "a count") -> int:
        a = self.atom(x, what)
        t = a.text
        if re.fullmatch(r"[0-9]+", t):
            v = int(t)
            if v < (1 << bits):
                return v
            self.fail(a.span, f"{t} out of u{bits} range")
        self.fail(a.span, f"expected {what} (decimal u{bits}), found '{t}'")

    def i8(self, x) -> int:
        a = self.atom(x, "a scale")
        if _DEC.match(a.text) and -128 <= int(a.text) <= 127:
            return int(a.text)
        self.fail(a.span, f"expected a scale (i8), found '{a.text}'")

    def u64(self, x) -> int:
        a = self.atom(x, "a u64")
        t = a.text
        if t.startswith("#x:"):
            h = t[3:]
            if re.fullmatch(r"[0-9a-fA-F]{16}", h):
                return int(h, 16)
            self.fail(a.span, f"expected 16 hex digits after '#x:', found '{t}'")
        if re.fullmatch(r"[0-9]+", t) and int(t) < (1 << 64):
            return int(t)
        self.fail(a.span, f"expected a u64 ('#x:' + 16 hex digits or decimal), found '{t}'")

    def name(self, x) -> int:
        a = self.atom(x, "a name")
        t = a.text
        if t.startswith("#x:"):
            return self.u64(a)
        if _IDENT.match(t):
            h = ir.name_hash(t)
            self.names[h] = t
            return h
        self.fail(a.span, f"expected a name (identifier or '#x:' + 16 hex digits), found '{t}'")

    def f32(self, x) -> int:
        a = self.atom(x, "a float")
        t = a.text
        if t == "inf":
            return 0x7F800000
        if t == "-inf":
            return 0xFF800000
        if t.startswith("f32:"):
            if re.fullmatch(r"0[xX][0-9a-fA-F]{1,8}", t[4:]):
                return int(t[4:], 16)
            self.fail(a.span, f"expected 'f32:0x' + 1-8 hex digits, found '{t}'")
        if _FLOAT.match(t):
            return ir.f32_bits_from_decimal(t)
        self.fail(a.span, f"expected a float, found '{t}'")

    def enum(self, x, enum_cls) -> int:
        a = self.atom(x, f"a {enum_cls.__name__} name")
        table = ir.ENUM_SPELLING[enum_cls]
        for k, v in table.items():
            if v == a.text:
                return enum_cls(k)
        self.fail(a.span, f"unknown {enum_cls.__name__} '{a.text}' (one of {', '.join(table.values())})")

    def plane(self, x, length: int) -> bytes:
        a = self.atom(x, "a plane")
        t = a.text
        if t == "_":
            if length:
                self.fail(a.span, f"empty plane '_' cannot fill {length} bytes")
            return b""
        if not _HEXPLANE.match(t):
            self.fail(a.span, f"expected a plane (even number of hex digits, or '_'), found '{t}'")
        pat = bytes.fromhex(t)
        self.plane_bytes += length
        if self.plane_bytes > self.plane_budget:
            self.fail(a.span, f"planes exceed {self.plane_budget} bytes in total")
        reps = -(-length // len(pat))
        return (pat * reps)[:length]

    def target(self, x) -> ir.CallTarget:
        a = self.atom(x, "a call target")
        t = a.text
        if t.startswith("@") and _QUALIFIED.match(t[1:]):  # `@f`, or `@ns.f` (a stored name)
            return ir.NamedRef(t[1:])
        if t.startswith("#g:") and re.fullmatch(r"[0-9]+", t[3:]) and int(t[3:]) < (1 << 32):
            return ir.GroupRef(int(t[3:]))
        if t.startswith("#x:"):
            return ir.Legacy64(self.u64(a))
        if re.fullmatch(r"#[0-9a-fA-F]{64}", t):
            return ir.Hash32(bytes.fromhex(t[1:]))
        self.fail(a.span, f"expected a call target ('#' + 64 hex, '#x:' + 16 hex, '#g:N' or '@name'), found '{t}'")

    # -- nodes
    def nodes(self, items, depth: int) -> tuple:
        return tuple(self.node(x, depth) for x in items)

    def node(self, x, depth: int = 1) -> ir.Node:
        if depth > self.max_depth:
            self.fail(x.span, f"node nesting exceeds {self.max_depth}")
        if isinstance(x, ir.Node):
            return x  # built by the fused reader (`_fast`), depth already checked there
        if isinstance(x, Atom):
            self.fail(x.span, f"expected a node form '(…)', found '{x.text}'")
        if not x.items:
            self.fail(x.span, "expected a node form, found '()'")
        head = x.items[0]
        if not isinstance(head, Atom):
            self.fail(head.span, "expected a node name after '('")
        args = x.items[1:]
        build = _FORMS.get(head.text)
        if build is None:
            self.fail(head.span, f"unknown node form '{head.text}'")
        node = build(self, args, x, depth + 1)
        return node

    def arity(self, form: SList, args, n: int, what: str):
        if len(args) != n:
            self.fail(form.span, f"'{form.items[0].text}' takes {what}, got {len(args)} argument(s)")

    def min_arity(self, form: SList, args, n: int, what: str):
        if len(args) < n:
            self.fail(form.span, f"'{form.items[0].text}' takes {what}, got {len(args)} argument(s)")

    def keywords(self, form: SList, args, allowed: Sequence[str], required: Sequence[str]) -> dict:
        kw: dict = {}
        if len(args) % 2:
            self.fail(form.span, f"'{form.items[0].text}': keyword without a value")
        for k, v in zip(args[::2], args[1::2]):
            k = self.atom(k, "a keyword")
            if k.text not in allowed:
                self.fail(k.span, f"unknown keyword '{k.text}' (expected {', '.join(allowed)})")
            if k.text in kw:
                self.fail(k.span, f"duplicate keyword '{k.text}'")
            kw[k.text] = v
        for r in required:
            if r not in kw:
                self.fail(form.span, f"'{form.items[0].text}' requires {r}")
        return kw


def _f_scope(b, a, f, d):
    return ir.Scope(b.nodes(a, d), span=f.span)


def _f_matrix(b, a, f, d):
    b.min_arity(f, a, 2, "ROWS COLS :scale S :sign PLANE :extra PLANE")
    rows = b.unsigned(a[0], 16, "rows")
    cols = b.unsigned(a[1], 16, "cols")
    kw = b.keywords(f, a[2:], (":scale", ":sign", ":extra"), (":sign", ":extra"))
    n = rows * ((cols + 7) // 8)
    scale = b.i8(kw[":scale"]) if ":scale" in kw else 0
    return ir.Matrix(rows, cols, scale, b.plane(kw[":sign"], n), b.plane(kw[":extra"], n), span=f.span)


def _f_norm(b, a, f, d):
    b.min_arity(f, a, 1, "SIZE :weight PLANE :bias PLANE")
    size = b.unsigned(a[0], 16, "size")
    kw = b.keywords(f, a[1:], (":weight", ":bias"), (":weight", ":bias"))
    n = (size + 7) // 8
    return ir.Norm(size, b.plane(kw[":weight"], n), b.plane(kw[":bias"], n), span=f.span)


def _f_call(b, a, f, d):
    b.arity(f, a, 1, "TARGET")
    return ir.Call(b.target(a[0]), span=f.span)


def _f_int(b, a, f, d):
    b.arity(f, a, 1, "one integer")
    return ir.Int(b.int32(a[0]), span=f.span)


def _f_float(b, a, f, d):
    b.arity(f, a, 1, "one float")
    return ir.Float(b.f32(a[0]), span=f.span)


def _f_loop(b, a, f, d):
    b.min_arity(f, a, 1, "COUNT N…")
    return ir.Loop(b.unsigned(a[0], 32, "a loop count"), b.nodes(a[1:], d), span=f.span)


def _f_while(b, a, f, d):
    b.min_arity(f, a, 1, "COND N…")
    return ir.While(b.node(a[0], d), b.nodes(a[1:], d), span=f.span)


def _branch(b, x, word, d):
    if not isinstance(x, SList) or not x.items or not isinstance(x.items[0], Atom) or x.items[0].text != word:
        b.fail(x.span, f"expected ({word} N…)")
    return b.nodes(x.items[1:], d)


def _f_if(b, a, f, d):
    if len(a) not in (2, 3):
        b.fail(f.span, f"'if' takes COND (then N…) [(else N…)], got {len(a)} argument(s)")
    cond = b.node(a[0], d)
    then = _branch(b, a[1], "then", d)
    other = _branch(b, a[2], "else", d) if len(a) == 3 else None
    return ir.If(cond, then, other, span=f.span)


def _f_cmp(b, a, f, d):
    b.arity(f, a, 3, "OP L R")
    return ir.Compare(b.enum(a[0], ir.CmpOp), b.node(a[1], d), b.node(a[2], d), span=f.span)


def _f_let(b, a, f, d):
    b.arity(f, a, 2, "NAME N")
    return ir.Let(b.name(a[0]), b.node(a[1], d), span=f.span)


def _f_load(b, a, f, d):
    b.arity(f, a, 1, "NAME")
    return ir.Load(b.name(a[0]), span=f.span)


def _f_store(b, a, f, d):
    b.arity(f, a, 2, "NAME N")
    return ir.Store(b.name(a[0]), b.node(a[1], d), span=f.span)


def _binary(cls):
    def build(b, a, f, d):
        b.arity(f, a, 2, "two nodes")
        return cls(b.node(a[0], d), b.node(a[1], d), span=f.span)
    return build


def _unary(cls):
    def build(b, a, f, d):
        b.arity(f, a, 1, "one node")
        return cls(b.node(a[0], d), span=f.span)
    return build


def _f_vecop(b, a, f, d):
    b.arity(f, a, 2, "OP X")
    return ir.VecOp(b.enum(a[0], ir.VecOpKind), b.node(a[1], d), span=f.span)


def _f_break(b, a, f, d):
    b.arity(f, a, 0, "no arguments")
    return ir.Break(span=f.span)


def _f_bitwise(b, a, f, d):
    if len(a) not in (2, 3):
        b.fail(f.span, f"'bitwise' takes OP L [R], got {len(a)} argument(s)")
    rhs = b.node(a[2], d) if len(a) == 3 else None
    return ir.Bitwise(b.enum(a[0], ir.BitwiseOp), b.node(a[1], d), rhs, span=f.span)


def _f_math(b, a, f, d):
    b.arity(f, a, 3, "OP L R")
    return ir.Math(b.enum(a[0], ir.MathOp), b.node(a[1], d), b.node(a[2], d), span=f.span)


def _f_mathfunc(b, a, f, d):
    b.arity(f, a, 2, "OP X")
    return ir.MathFunc(b.enum(a[0], ir.MathFuncKind), b.node(a[1], d), span=f.span)


def _f_syscall(b, a, f, d):
    b.min_arity(f, a, 1, "NUM A…")
    return ir.Syscall(b.unsigned(a[0], 32, "a syscall number"), b.nodes(a[1:], d), span=f.span)


def _f_spawn(b, a, f, d):
    b.arity(f, a, 1, "U64")
    return ir.Spawn(b.u64(a[0]), span=f.span)


def _f_atomic(b, a, f, d):
    b.arity(f, a, 3, "OP A V")
    return ir.Atomic(b.enum(a[0], ir.AtomicOp), b.node(a[1], d), b.node(a[2], d), span=f.span)


def _f_regint(b, a, f, d):
    b.arity(f, a, 2, "VECTOR U64")
    return ir.RegInt(b.unsigned(a[0], 32, "a vector number"), b.u64(a[1]), span=f.span)


def _f_cast(b, a, f, d):
    b.arity(f, a, 3, "FROM TO X")
    return ir.Cast(b.enum(a[0], ir.TypeKind), b.enum(a[1], ir.TypeKind), b.node(a[2], d), span=f.span)


def _f_gpu(b, a, f, d):
    b.min_arity(f, a, 1, "U64 A…")
    return ir.GpuDispatch(b.u64(a[0]), b.nodes(a[1:], d), span=f.span)


def _f_triple(b, a, f, d):
    b.arity(f, a, 3, "U64 PRED U64")
    return ir.Triple(b.u64(a[0]), b.unsigned(a[1], 16, "a predicate id"), b.u64(a[2]), span=f.span)


_FORMS = {
    "scope": _f_scope, "matrix": _f_matrix, "norm": _f_norm, "call": _f_call, "int": _f_int,
    "float": _f_float, "loop": _f_loop, "while": _f_while, "if": _f_if, "cmp": _f_cmp,
    "let": _f_let, "load": _f_load, "store": _f_store, "add": _binary(ir.Add),
    "vecop": _f_vecop, "print": _unary(ir.Print), "return": _unary(ir.Return),
    "break": _f_break, "bitwise": _f_bitwise, "math": _f_math, "mathfunc": _f_mathfunc,
    "peek": _unary(ir.Peek), "poke": _binary(ir.Poke), "gemv": _binary(ir.Gemv),
    "dot": _binary(ir.Dot), "syscall": _f_syscall, "spawn": _f_spawn, "atomic": _f_atomic,
    "alloc": _unary(ir.Alloc), "free": _unary(ir.Free), "regint": _f_regint, "cast": _f_cast,
    "gpu_dispatch": _f_gpu, "triple": _f_triple,
}


def _build(b: "_Builder", items) -> SexprUnit:
    if (len(items) >= 1 and isinstance(items[0], SList) and items[0].items
            and isinstance(items[0].items[0], Atom) and items[0].items[0].text == "module"):
        if len(items) != 1:
            b.fail(items[1].span, "a module must be the only form in a program text")
        form = items[0]
        defs = []
        seen = set()
        for d in form.items[1:]:
            if (not isinstance(d, SList) or len(d.items) != 3 or not isinstance(d.items[0], Atom)
                    or d.items[0].text != "def"):
                b.fail(d.span, "expected (def NAME NODE)")
            nm = b.atom(d.items[1], "a function name")
            if not _IDENT.match(nm.text):
                b.fail(nm.span, f"invalid function name '{nm.text}'")
            if nm.text in seen:
                b.fail(nm.span, f"duplicate definition '{nm.text}'")
            seen.add(nm.text)
            defs.append(ir.Def(nm.text, b.node(d.items[2]), span=d.span))
        return SexprUnit(module=ir.Module(tuple(defs), span=form.span), names=b.names)
    return SexprUnit(sequence=tuple(b.node(x) for x in items), names=b.names)
