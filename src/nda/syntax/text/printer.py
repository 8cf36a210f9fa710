"""Pretty printer: `nda.core.ir.Module` → NDA text, the inverse of `parse_text` on expressible IR.

In: a Module (or a top-level node sequence) and a name_hash → name mapping.
Out: text `s` with `parse_text(s) == module` (structural equality, spans ignored), or an
`InexpressibleError` naming the node kind (and its path) that has no text form, or an
`UnknownNameError` for a name hash the mapping cannot turn back into an identifier.

Text-expressible IR (what the lowering of `language.md` §4.3 can produce):
- every Def has an identifier name (not a keyword, unique) and a Scope node whose children are
  a parameter prologue (leading `Let{p, Scope{}}`, `If{Scope{}, [], absent}` pairs) then
  statements;
- statements: Let, Store, While, If (else absent, empty, a single nested If, or any block),
  Loop (any u32 count), Return, Break, Print, the dynamic loop shape
  `Scope{Let{k, e}, While{k > 0, body + [k = k + -1]}}` with `k = _loop_cnt_{i}` numbered
  0, 1, … in pre-order within each Def, and any expression;
- expressions: Int, Float (not NaN; ±inf print as ±1e39), Load, Add, Math{Sub, Mul, Div},
  Bitwise (Not without rhs; And/Or/Xor/Shl/Shr with rhs), Compare, VecOp, MathFunc, Dot,
  Gemv, Peek, Poke, Cast{Float→Int} / Cast{Int→Float}, synthetic Matrix and Norm (the exact
  planes of `matrix[r, c]` / `norm[n]`, dims 1..65535, scale 0), and calls
  `Scope{args…, Call{NamedRef(f)}}` where `f` is a Def of the same module;
- nesting depth of each Def (`ir.node_depth`) at most `MAX_NESTING` (256).
Everything else — Math{Add}, Syscall, the no-op kinds (Spawn, Atomic, Alloc, Free, RegInt,
GpuDispatch, Triple), non-synthetic Matrix/Norm, NaN, Hash32/GroupRef/Legacy64 targets,
bare Call or Scope, statements in expression position — raises InexpressibleError.

Names: a hash prints as `names[h]` (checked: a valid identifier, not a keyword, and
`name_hash(names[h]) == h`); the hashes of `_loop_cnt_{i}` are recognised without a mapping.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

from nda.core.errors import INPUT_INVALID, NdaError
from nda.core.ir import (
    Add, Bitwise, BitwiseOp, Break, Call, Cast, Compare, Def, Dot, Float, Gemv, If, Int, Let,
    Load, Loop, Math, MathFunc, MathOp, Matrix, Module, NamedRef, Node, Norm, Peek, Poke, Print,
    Return, Scope, Store, VecOp, VecOpKind, While, name_hash, node_depth, walk,
)
from nda.syntax.text import lower as L
from nda.syntax.text.lexer import KEYWORDS
from nda.syntax.text.parser import MAX_NESTING

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INDENT = "    "


class InexpressibleError(NdaError):
    """The IR has no text form. `kind` is the offending node kind, `path` where it sits."""

    code = INPUT_INVALID

    def __init__(self, message: str, kind: str, path: str):
        super().__init__(f"{kind} at {path}: {message}" if path else f"{kind}: {message}")
        self.kind = kind
        self.path = path
        self.reason = message


class UnknownNameError(InexpressibleError):
    """A name hash that the mapping does not turn back into a valid identifier."""

    def __init__(self, message: str, kind: str, path: str, name_hash: int):
        super().__init__(message, kind, path)
        self.name_hash = name_hash


def _is_identifier(name: str) -> bool:
    return bool(_IDENT_RE.match(name)) and name not in KEYWORDS


def format_float_literal(bits: int) -> str | None:
    """Text of an f32 literal that reads back to exactly `bits` (None for NaN)."""
    v = np.array(bits & 0xFFFFFFFF, dtype=np.uint32).view(np.float32)[()]
    if np.isnan(v):
        return None
    sign = "-" if bits & 0x80000000 else ""
    a = np.abs(v)
    if np.isinf(a):
        return sign + "1e39"
    if a == 0 or 1e-4 <= a < 1e16:
        return sign + np.format_float_positional(a, unique=True, trim="0")
    return sign + np.format_float_scientific(a, unique=True, trim="-")


class _Printer:
    def __init__(self, module: Module, names: Mapping[int, str] | None, check_only: bool,
                 signatures: Mapping | None = None, externals=()):
        self.names = names or {}
        self.check_only = check_only and names is None
        self.fns = {d.name for d in module.defs}
        self.signatures = signatures or {}
        self.externals = frozenset(externals)
        self.path: list[str] = []
        self.ok_names: dict[int, str] = {}
        n_scopes = sum(1 for d in module.defs for x in walk(d.node) if isinstance(x, Scope))
        self.loop_names = {name_hash(L.loop_counter_name(i)): L.loop_counter_name(i)
                           for i in range(n_scopes)}
        self.loop_next = 0

    # -- errors and names ----------------------------------------------------------------------

    def fail(self, node: object, message: str) -> InexpressibleError:
        kind = type(node).__name__
        return InexpressibleError(message, kind, " › ".join(self.path))

    def name(self, h: int, node: Node) -> str:
        got = self.ok_names.get(h)
        if got is not None:
            return got
        name = self.names.get(h)
        if name is None:
            name = self.loop_names.get(h)
        if name is None:
            if self.check_only:
                return "_v"
            raise UnknownNameError(f"no name known for hash {h:016x}", type(node).__name__,
                                   " › ".join(self.path), h)
        if not _is_identifier(name) or name_hash(name) != h:
            raise UnknownNameError(f"name {name!r} for hash {h:016x} is not a valid identifier "
                                   "with that hash", type(node).__name__, " › ".join(self.path), h)
        self.ok_names[h] = name
        return name

    # -- functions and statements --------------------------------------------------------------

    def function(self, d: Def) -> str:
        self.path = [f"def {d.name}"]
        self.loop_next = 0
        if not _is_identifier(d.name):
            raise self.fail(d, f"function name {d.name!r} is not an identifier")
        node = d.node
        if not isinstance(node, Scope):
            raise self.fail(node, "a function body must be a Scope")
        depth = node_depth(node)
        if depth > MAX_NESTING:
            raise self.fail(node, f"node nesting {depth} exceeds {MAX_NESTING}")
        ch = node.children
        params: list[str] = []
        i = 0
        while i + 1 < len(ch) and L.is_prologue_pair(ch[i], ch[i + 1]):
            params.append(self.name(ch[i].name, ch[i]))
            i += 2
        ty = "vec" if d.name == "main" else "int"
        types, ret = [ty] * len(params), ""
        sig = self.signatures.get(d.name)
        if sig is not None:  # the signature as written (types are not part of the IR)
            sp, sr = sig
            if sp is not None and [p for p, _ in sp] == params[::-1]:
                types = [t for _, t in sp][::-1]
            ret = f" -> {sr}" if sr else ""
        plist = ", ".join(f"{p}: {t}" for p, t in zip(reversed(params), reversed(types)))
        self.path.append("Scope")
        return f"fn {d.name}({plist}){ret} {self.block(ch[i:], 0)}"

    def block(self, stmts: Sequence[Node], indent: int) -> str:
        if not stmts:
            return "{}"
        texts = []
        for j, s in enumerate(stmts):
            self.path.append(f"[{j}]")
            texts.append(self.stmt(s, indent + 1))
            self.path.pop()
        pad = _INDENT * (indent + 1)
        out = ["{"]
        for j, (s, text) in enumerate(zip(stmts, texts)):
            nxt = texts[j + 1] if j + 1 < len(texts) else ""
            ends_in_expr = not isinstance(s, (While, Loop, If, Break, Print)) and not (
                isinstance(s, Scope) and text.startswith("loop "))
            sep = ";" if ends_in_expr and nxt[:1] in ("-", "(") else ""
            out.append(pad + text + sep)
        out.append(_INDENT * indent + "}")
        return "\n".join(out)

    def stmt(self, n: Node, indent: int) -> str:
        t = type(n)
        self.path.append(t.__name__)
        try:
            if t is Let:
                return f"let {self.name(n.name, n)} = {self.expr(n.init)}"
            if t is Store:
                return f"{self.name(n.name, n)} = {self.expr(n.value)}"
            if t is While:
                return f"while {self.expr(n.cond)} {self.block(n.body, indent)}"
            if t is Loop:
                return f"loop {n.count} {self.block(n.body, indent)}"
            if t is If:
                if n.cond == Scope(()) and not n.then_body and n.else_body is None:
                    raise self.fail(n, "a parameter pop is only expressible in a prologue")
                text = f"if {self.expr(n.cond)} {self.block(n.then_body, indent)}"
                e = n.else_body
                if e is None:
                    return text
                if len(e) == 1 and isinstance(e[0], If):
                    return f"{text} else {self.stmt(e[0], indent)}"
                return f"{text} else {self.block(e, indent)}"
            if t is Return:
                return f"return {self.expr(n.value)}"
            if t is Break:
                return "break"
            if t is Print:
                return f"print({self.expr(n.source)})"
            if t is Scope:
                m = L.match_dynamic_loop(n)
                if m is not None:
                    k, count, body = m
                    want = name_hash(L.loop_counter_name(self.loop_next))
                    if k != want:
                        raise self.fail(n, "dynamic loop counter must be "
                                        f"{L.loop_counter_name(self.loop_next)} here")
                    self.loop_next += 1
                    ctext = self.expr(count)
                    if isinstance(count, Int) and count.value >= 0:
                        ctext = f"({ctext})"  # a bare INT literal would make a static Loop
                    return f"loop {ctext} {self.block(body, indent)}"
            return self.expr(n, 0, pushed=True)
        finally:
            self.path.pop()

    # -- expressions ---------------------------------------------------------------------------

    def expr(self, n: Node, min_prec: int = 0, pushed: bool = False) -> str:
        if not pushed:
            self.path.append(type(n).__name__)
        try:
            text, prec = self._expr(n)
            return f"({text})" if prec < min_prec else text
        finally:
            if not pushed:
                self.path.pop()

    def _binary(self, op: str, lhs: Node, rhs: Node) -> tuple[str, int]:
        p = L.BINARY_PREC[op]
        return f"{self.expr(lhs, p)} {op} {self.expr(rhs, p + 1)}", p

    def _expr(self, n: Node) -> tuple[str, int]:
        t = type(n)
        P = L.PRIMARY_PREC
        if t is Int:
            return str(n.value), P
        if t is Float:
            text = format_float_literal(n.bits)
            if text is None:
                raise self.fail(n, "NaN has no literal")
            return text, P
        if t is Load:
            return self.name(n.name, n), P
        if t is Add:
            return self._binary("+", n.lhs, n.rhs)
        if t is Math:
            if n.op == MathOp.Add:
                raise self.fail(n, "Math{add} has no operator ('+' is Add)")
            return self._binary(L.MATH_SPELLING[n.op], n.lhs, n.rhs)
        if t is Compare:
            return self._binary(L.CMP_SPELLING[n.op], n.lhs, n.rhs)
        if t is Bitwise:
            if n.op == BitwiseOp.Not:
                if n.rhs is not None:
                    raise self.fail(n, "Bitwise{not} with an rhs")
                return "~" + self.expr(n.lhs, L.UNARY_PREC), L.UNARY_PREC
            if n.rhs is None:
                raise self.fail(n, "binary Bitwise without an rhs")
            return self._binary(L.BITWISE_SPELLING[n.op], n.lhs, n.rhs)
        if t is VecOp:
            if n.op == VecOpKind.Negate and not isinstance(n.operand, (Int, Float)):
                inner = self.expr(n.operand, L.UNARY_PREC)  # printed once (no re-printing)
                if not inner.startswith("-"):
                    return "-" + inner, L.UNARY_PREC
                return f"negate({inner})", P  # starts with '-': unparenthesised already
            return f"{L.VECOP_SPELLING[n.op]}({self.expr(n.operand)})", P
        if t is MathFunc:
            return f"{L.MATHFUNC_SPELLING[n.func]}({self.expr(n.operand)})", P
        if t is Peek:
            return f"peek({self.expr(n.addr)})", P
        if t is Cast:
            spelling = L.CAST_SPELLING.get((n.from_type, n.to_type))
            if spelling is None:
                raise self.fail(n, "only Cast{float→int} (int(e)) and Cast{int→float} (float(e))")
            return f"{spelling}({self.expr(n.operand)})", P
        if t in (Dot, Gemv, Poke):
            a, b = (n.lhs, n.rhs) if t is Dot else (n.matrix, n.vector) if t is Gemv else (n.addr, n.value)
            return f"{t.__name__.lower()}({self.expr(a)}, {self.expr(b)})", P
        if t is Matrix:
            if not L.is_synthetic_matrix(n):
                raise self.fail(n, "only the synthetic planes of matrix[r, c] have a text form")
            return f"matrix[{n.rows}, {n.cols}]", P
        if t is Norm:
            if not L.is_synthetic_norm(n):
                raise self.fail(n, "only the synthetic planes of norm[n] have a text form")
            return f"norm[{n.size}]", P
        if t is Scope:
            ch = n.children
            if not ch or not isinstance(ch[-1], Call):
                raise self.fail(n, "a Scope is only expressible as a call, a dynamic loop or a body")
            target = ch[-1].target
            if not isinstance(target, NamedRef):
                raise self.fail(ch[-1], f"call target {target} is not a function of the module")
            if target.name not in self.fns and target.name not in self.externals:
                raise self.fail(ch[-1], f"call to '{target.name}', which the module does not define")
            args = []
            for j, a in enumerate(ch[:-1]):
                self.path.append(f"arg{j}")
                args.append(self.expr(a))
                self.path.pop()
            return f"{target.name}({', '.join(args)})", P
        if t in (Let, Store, While, Loop, If, Return, Break, Print):
            raise self.fail(n, "a statement cannot appear inside an expression")
        raise self.fail(n, "this node kind has no text syntax")


def print_text(module: Module, names: Mapping[int, str] | None = None, *,
               signatures: Mapping | None = None, externals=(), comments=()) -> str:
    """Text of `module` such that `parse_text(text) == module`; raises InexpressibleError.

    `signatures`: def name → ([(param, type), …] or None, return type or None), the types as
    written (printed when the parameter names match; the default is `vec` for main, `int`
    otherwise, no return type). `externals`: names of stored functions that calls may target
    besides the module's defs (the text then parses back with the store, `parse_text_full(…,
    external=True)` + `link.link_names`). `comments`: lines printed first, as `// …`."""
    seen: set[str] = set()
    for d in module.defs:
        if d.name in seen:
            raise InexpressibleError(f"duplicate function '{d.name}'", "Def", f"def {d.name}")
        seen.add(d.name)
    p = _Printer(module, names, check_only=False, signatures=signatures, externals=externals)
    head = "".join(f"// {c}\n" for c in comments)
    return head + "".join(p.function(d) + "\n\n" for d in module.defs).rstrip("\n") + ("\n" if module.defs else "")


def print_text_nodes(nodes: Sequence[Node], names: Mapping[int, str] | None = None,
                     fn_name: str = "main") -> str:
    """A top-level node sequence printed as the body of `fn {fn_name}() {…}`.

    A leading parameter prologue becomes parameters; calls may only target `fn_name` itself.
    """
    return print_text(Module((Def(fn_name, Scope(tuple(nodes))),)), names)


def check_text_expressible(module: Module, names: Mapping[int, str] | None = None) -> None:
    """Raise InexpressibleError if `module` has no text form (names unchecked when None)."""
    seen: set[str] = set()
    for d in module.defs:
        if d.name in seen:
            raise InexpressibleError(f"duplicate function '{d.name}'", "Def", f"def {d.name}")
        seen.add(d.name)
    p = _Printer(module, names, check_only=True)
    for d in module.defs:
        p.function(d)


def is_text_expressible(module: Module, names: Mapping[int, str] | None = None) -> bool:
    """True iff `print_text` would succeed (with `names=None`, name hashes are not checked)."""
    try:
        check_text_expressible(module, names)
    except InexpressibleError:
        return False
    return True
