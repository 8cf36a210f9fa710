"""The S-expression printer (language.md §5): IR → canonical text.

In: nodes, a top-level sequence, a `Module` or a `SexprUnit`, and an optional name dictionary
(hash → identifier; names it lacks print as `#x:` + 16 hex digits).
Out: the canonical S-expression text, so that `parse(print(ir)) == ir` for every IR.
`nda.syntax.sexpr` re-exports `print_node`, `print_sexpr`, `print_module`, `print_unit`.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

from nda.core import ir

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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


def print_unit(unit, names: Mapping[int, str] | None = None) -> str:
    names = {**unit.names, **(names or {})}
    if unit.module is not None:
        return print_module(unit.module, names)
    return print_sexpr(unit.sequence or (), names)

