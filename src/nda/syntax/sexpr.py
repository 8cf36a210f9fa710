"""The lossless S-expression form (language.md §5): text ⇄ IR.

In: S-expression text (zero or more node forms, or one `(module (def NAME NODE)…)` form).
Out: `SexprUnit` — either a top-level sequence of nodes or a `Module` (whose `@name` targets are
`NamedRef`s, resolved later by `link.link_module`), plus the name dictionary seen while parsing
(hash → identifier). `print_sexpr` / `print_node` / `print_unit` write the canonical form, so
`parse(print(ir)) == ir` for every IR and `print(parse(text))` is canonical.

Errors are `ParseError`s whose message starts with `line:col`; nothing else escapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from nda.core import ir
from nda.core.errors import ParseError, Span

DEFAULT_MAX_DEPTH = 256
MAX_PLANE_BYTES = 64 * 1024 * 1024  # total expanded plane bytes per parse (a resource guard)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DEC = re.compile(r"[-+]?[0-9]+\Z")
_HEX32 = re.compile(r"0[xX][0-9a-fA-F]{1,8}\Z")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")
_HEXPLANE = re.compile(r"(?:[0-9a-fA-F]{2})+\Z")
_ATOM_CHARS = re.compile(r"[^\s();\"]+")


@dataclass(frozen=True, slots=True)
class Atom:
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class SList:
    items: tuple
    span: Span


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
    top: list = []
    stack: list[tuple[list, Span]] = []
    cur = top
    i, n = 0, len(src)
    line, col = 1, 1

    def span_here(l=None, c=None):
        return Span(line if l is None else l, col if c is None else c, file=file)

    while i < n:
        ch = src[i]
        if ch == "\n":
            i += 1
            line += 1
            col = 1
        elif ch.isspace():
            i += 1
            col += 1
        elif ch == ";":
            while i < n and src[i] != "\n":
                i += 1
                col += 1
        elif ch == "(":
            if len(stack) >= max_lists:
                raise ParseError(f"{line}:{col}: nesting too deep", span_here())
            stack.append((cur, span_here()))
            cur = []
            i += 1
            col += 1
        elif ch == ")":
            if not stack:
                raise ParseError(f"{line}:{col}: unexpected ')'", span_here())
            parent, sp = stack.pop()
            parent.append(SList(tuple(cur), sp))
            cur = parent
            i += 1
            col += 1
        elif ch == '"':
            raise ParseError(f"{line}:{col}: strings are not supported", span_here())
        else:
            m = _ATOM_CHARS.match(src, i)
            text = m.group(0)
            cur.append(Atom(text, Span(line, col, line, col + len(text), file=file)))
            i = m.end()
            col += len(text)
    if stack:
        sp = stack[-1][1]
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
        if _HEX32.match(t):
            v = int(t, 16)
            return v - (1 << 32) if v >= 1 << 31 else v
        if _DEC.match(t):
            v = int(t)
            if -(1 << 31) <= v < (1 << 31):
                return v
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
        if t.startswith("@") and _IDENT.match(t[1:]):
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


def parse_sexpr(src: str, file: str | None = None, max_depth: int = DEFAULT_MAX_DEPTH,
                max_plane_bytes: int = MAX_PLANE_BYTES) -> SexprUnit:
    """Parse a program text: a top-level sequence, or one `(module …)` form.

    `max_plane_bytes` bounds the total size of the planes the text expands to (a plane is
    written as its shortest period, so a few bytes of source could otherwise ask for
    gigabytes)."""
    if not isinstance(src, str):
        raise ParseError("1:1: S-expression source must be text")
    items = _read(src, file, max_lists=3 * max_depth + 8)
    b = _Builder(max_depth, max_plane_bytes)
    try:
        return _build(b, items)
    except RecursionError:
        # a max_depth far above the default: build again on a big-stack worker
        from nda.core.deepstack import call_in_big_thread

        return call_in_big_thread(lambda: _build(_Builder(max_depth, max_plane_bytes), items),
                                  8 * max_depth + 400)


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


def parse_node(src: str, file: str | None = None, max_depth: int = DEFAULT_MAX_DEPTH) -> ir.Node:
    """Parse exactly one node form."""
    unit = parse_sexpr(src, file, max_depth)
    if unit.sequence is None or len(unit.sequence) != 1:
        raise ParseError("1:1: expected exactly one node form")
    return unit.sequence[0]


# ---------------------------------------------------------------------------------------------
# Printer


def _period(data: bytes) -> bytes:
    """The shortest prefix whose repetition (cut to length) gives `data` (KMP border, O(n))."""
    n = len(data)
    if n == 0:
        return data
    fail = [0] * n
    k = 0
    for i in range(1, n):
        while k and data[i] != data[k]:
            k = fail[k - 1]
        if data[i] == data[k]:
            k += 1
        fail[i] = k
    return data[: n - fail[-1]]


def _fmt_float_bits(bits: int) -> str:
    from nda.runtime.values import fmt_f32
    import numpy as np

    x = np.array(bits, dtype=np.uint32).view(np.float32)[()]
    if x != x:
        return f"f32:0x{bits:08x}"
    return fmt_f32(x)


class _Printer:
    def __init__(self, names: Mapping[int, str] | None):
        self.names = names or {}

    def name(self, h: int) -> str:
        n = self.names.get(h)
        if n is not None and _IDENT.match(n) and ir.name_hash(n) == h:
            return n
        return f"#x:{h:016x}"

    @staticmethod
    def target(t) -> str:
        if isinstance(t, ir.Hash32):
            return "#" + t.digest.hex()
        if isinstance(t, ir.Legacy64):
            return f"#x:{t.value:016x}"
        if isinstance(t, ir.GroupRef):
            return f"#g:{t.index}"
        if isinstance(t, ir.NamedRef):
            return "@" + t.name
        raise TypeError(f"not a call target: {t!r}")

    @staticmethod
    def plane(data: bytes) -> str:
        return _period(data).hex() if data else "_"

    def seq(self, nodes) -> str:
        return "".join(" " + self.node(c) for c in nodes)

    def node(self, n: ir.Node) -> str:
        E = ir.ENUM_SPELLING
        t = type(n)
        if t is ir.Scope:
            return f"(scope{self.seq(n.children)})"
        if t is ir.Matrix:
            sc = f" :scale {n.scale}" if n.scale else ""
            return f"(matrix {n.rows} {n.cols}{sc} :sign {self.plane(n.sign)} :extra {self.plane(n.extra)})"
        if t is ir.Norm:
            return f"(norm {n.size} :weight {self.plane(n.weight)} :bias {self.plane(n.bias)})"
        if t is ir.Call:
            return f"(call {self.target(n.target)})"
        if t is ir.Int:
            return f"(int {n.value})"
        if t is ir.Float:
            return f"(float {_fmt_float_bits(n.bits)})"
        if t is ir.Loop:
            return f"(loop {n.count}{self.seq(n.body)})"
        if t is ir.While:
            return f"(while {self.node(n.cond)}{self.seq(n.body)})"
        if t is ir.If:
            s = f"(if {self.node(n.cond)} (then{self.seq(n.then_body)})"
            if n.else_body is not None:
                s += f" (else{self.seq(n.else_body)})"
            return s + ")"
        if t is ir.Compare:
            return f"(cmp {E[ir.CmpOp][n.op]} {self.node(n.lhs)} {self.node(n.rhs)})"
        if t is ir.Let:
            return f"(let {self.name(n.name)} {self.node(n.init)})"
        if t is ir.Load:
            return f"(load {self.name(n.name)})"
        if t is ir.Store:
            return f"(store {self.name(n.name)} {self.node(n.value)})"
        if t is ir.VecOp:
            return f"(vecop {E[ir.VecOpKind][n.op]} {self.node(n.operand)})"
        if t is ir.Break:
            return "(break)"
        if t is ir.Bitwise:
            r = f" {self.node(n.rhs)}" if n.rhs is not None else ""
            return f"(bitwise {E[ir.BitwiseOp][n.op]} {self.node(n.lhs)}{r})"
        if t is ir.Math:
            return f"(math {E[ir.MathOp][n.op]} {self.node(n.lhs)} {self.node(n.rhs)})"
        if t is ir.MathFunc:
            return f"(mathfunc {E[ir.MathFuncKind][n.func]} {self.node(n.operand)})"
        if t is ir.Syscall:
            return f"(syscall {n.num}{self.seq(n.args)})"
        if t is ir.Spawn:
            return f"(spawn #x:{n.scope_hash:016x})"
        if t is ir.Atomic:
            return f"(atomic {E[ir.AtomicOp][n.op]} {self.node(n.addr)} {self.node(n.val)})"
        if t is ir.RegInt:
            return f"(regint {n.vector} #x:{n.handler_hash:016x})"
        if t is ir.Cast:
            return f"(cast {E[ir.TypeKind][n.from_type]} {E[ir.TypeKind][n.to_type]} {self.node(n.operand)})"
        if t is ir.GpuDispatch:
            return f"(gpu_dispatch #x:{n.shader_hash:016x}{self.seq(n.args)})"
        if t is ir.Triple:
            return f"(triple #x:{n.subject_hash:016x} {n.predicate_id} #x:{n.object_hash:016x})"
        simple = _SIMPLE.get(t)
        if simple is not None:
            head, fields = simple
            return f"({head}" + "".join(" " + self.node(getattr(n, f)) for f in fields) + ")"
        raise TypeError(f"not an NDA node: {n!r}")


_SIMPLE = {
    ir.Add: ("add", ("lhs", "rhs")), ir.Print: ("print", ("source",)),
    ir.Return: ("return", ("value",)), ir.Peek: ("peek", ("addr",)),
    ir.Poke: ("poke", ("addr", "value")), ir.Gemv: ("gemv", ("matrix", "vector")),
    ir.Dot: ("dot", ("lhs", "rhs")), ir.Alloc: ("alloc", ("size",)), ir.Free: ("free", ("addr",)),
}


def print_node(node: ir.Node, names: Mapping[int, str] | None = None) -> str:
    """The canonical S-expression of one node."""
    return _Printer(names).node(node)


def print_sexpr(sequence: Iterable[ir.Node], names: Mapping[int, str] | None = None) -> str:
    """A top-level sequence, one node form per line."""
    p = _Printer(names)
    return "\n".join(p.node(n) for n in sequence)


def print_module(module: ir.Module, names: Mapping[int, str] | None = None) -> str:
    p = _Printer(names)
    body = "\n".join(f"  (def {d.name} {p.node(d.node)})" for d in module.defs)
    return f"(module\n{body})" if module.defs else "(module)"


def print_unit(unit: SexprUnit, names: Mapping[int, str] | None = None) -> str:
    names = {**unit.names, **(names or {})}
    if unit.module is not None:
        return print_module(unit.module, names)
    return print_sexpr(unit.sequence or (), names)

