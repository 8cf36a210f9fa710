"""Reusable hypothesis strategies for NDA IR.

In: knobs (depth, list sizes, which call-target forms, which node kinds, plane sizes).
Out: strategies for well-formed nodes of all 34 kinds (`nodes`), top-level sequences
(`programs`), call targets, field values (`i32s`, `u64s`, `f32_bits`, …) and planes.

"Well-formed" means every field is in its declared range and planes have the lengths their
rows/cols/size imply, so every generated node encodes in v2 and hashes; it says nothing about
whether the program runs (stack effects are arbitrary). Example:

    from strategies import nodes, programs
    @given(nodes(max_depth=4))
    def test_something(node): ...
"""

from __future__ import annotations

from typing import Iterable

from hypothesis import strategies as st

from nda.core import ir

# ------------------------------------------------------------------------------ scalars

u8s = st.integers(0, 0xFF)
u16s = st.integers(0, 0xFFFF)
u32s = st.one_of(st.integers(0, 16), st.sampled_from([0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]),
                 st.integers(0, 0xFFFFFFFF))
i32s = st.one_of(st.integers(-8, 8), st.sampled_from([-(2**31), 2**31 - 1, 0x46, 0x54]),
                 st.integers(-(2**31), 2**31 - 1))
u64s = st.one_of(st.integers(0, 16), st.sampled_from([2**64 - 1, 2**63, 0x4D, 0x53]),
                 st.integers(0, 2**64 - 1))
i8s = st.integers(-128, 127)
f32_bits = st.one_of(
    st.sampled_from([0, 0x80000000, 0x3F800000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 1]),
    st.integers(0, 0xFFFFFFFF),
)
names = st.one_of(st.sampled_from([ir.name_hash(n) for n in ("x", "y", "n", "a", "b")]), u64s)


def enum_values(enum: type) -> st.SearchStrategy:
    return st.sampled_from(list(enum))


# ------------------------------------------------------------------------------ call targets

digests = st.binary(min_size=32, max_size=32)


def call_targets(hash32: bool = True, legacy64: bool = True, group_refs: bool = False,
                 max_group_index: int = 3) -> st.SearchStrategy:
    """Call targets of the requested forms (at least one form must be enabled)."""
    forms = []
    if hash32:
        forms.append(st.builds(ir.Hash32, digests))
    if legacy64:
        forms.append(st.builds(ir.Legacy64, u64s))
    if group_refs:
        forms.append(st.builds(ir.GroupRef, st.one_of(st.integers(0, max_group_index),
                                                       st.just(0xFFFFFFFF))))
    if not forms:
        raise ValueError("call_targets: enable at least one target form")
    return st.one_of(*forms)


# ------------------------------------------------------------------------------ planes


@st.composite
def matrices(draw, max_rows: int = 4, max_cols: int = 24) -> ir.Matrix:
    rows = draw(st.integers(0, max_rows))
    cols = draw(st.integers(0, max_cols))
    n = rows * ((cols + 7) // 8)
    return ir.Matrix(rows, cols, draw(i8s), draw(st.binary(min_size=n, max_size=n)),
                     draw(st.binary(min_size=n, max_size=n)))


@st.composite
def norms(draw, max_size: int = 40) -> ir.Norm:
    size = draw(st.integers(0, max_size))
    n = (size + 7) // 8
    return ir.Norm(size, draw(st.binary(min_size=n, max_size=n)), draw(st.binary(min_size=n, max_size=n)))


# ------------------------------------------------------------------------------ nodes

ALL_KINDS = frozenset(c.__name__ for c in ir.NODE_CLASSES)


def _leaves(kinds: frozenset, targets: st.SearchStrategy, max_rows: int, max_cols: int) -> list:
    table = {
        "Matrix": matrices(max_rows, max_cols),
        "Norm": norms(max_cols * 2),
        "Call": st.builds(ir.Call, targets),
        "Int": st.builds(ir.Int, i32s),
        "Break": st.just(ir.Break()),
        "Float": st.builds(ir.Float, f32_bits),
        "Load": st.builds(ir.Load, names),
        "Spawn": st.builds(ir.Spawn, u64s),
        "RegInt": st.builds(ir.RegInt, u32s, u64s),
        "Triple": st.builds(ir.Triple, u64s, u16s, u64s),
    }
    return [s for k, s in table.items() if k in kinds]


def _composites(kinds: frozenset, child: st.SearchStrategy, max_children: int) -> list:
    lst = st.lists(child, max_size=max_children).map(tuple)
    E = enum_values
    table = {
        "Scope": st.builds(ir.Scope, lst),
        "Loop": st.builds(ir.Loop, u32s, lst),
        "While": st.builds(ir.While, child, lst),
        "If": st.builds(ir.If, child, lst, st.none() | lst),
        "Compare": st.builds(ir.Compare, E(ir.CmpOp), child, child),
        "Let": st.builds(ir.Let, names, child),
        "Store": st.builds(ir.Store, names, child),
        "Add": st.builds(ir.Add, child, child),
        "VecOp": st.builds(ir.VecOp, E(ir.VecOpKind), child),
        "Print": st.builds(ir.Print, child),
        "Return": st.builds(ir.Return, child),
        "Bitwise": st.builds(ir.Bitwise, E(ir.BitwiseOp), child, st.none() | child),
        "Math": st.builds(ir.Math, E(ir.MathOp), child, child),
        "MathFunc": st.builds(ir.MathFunc, E(ir.MathFuncKind), child),
        "Peek": st.builds(ir.Peek, child),
        "Poke": st.builds(ir.Poke, child, child),
        "Gemv": st.builds(ir.Gemv, child, child),
        "Dot": st.builds(ir.Dot, child, child),
        "Syscall": st.builds(ir.Syscall, u32s, lst),
        "Atomic": st.builds(ir.Atomic, E(ir.AtomicOp), child, child),
        "Alloc": st.builds(ir.Alloc, child),
        "Free": st.builds(ir.Free, child),
        "Cast": st.builds(ir.Cast, E(ir.TypeKind), E(ir.TypeKind), child),
        "GpuDispatch": st.builds(ir.GpuDispatch, u64s, lst),
    }
    return [s for k, s in table.items() if k in kinds]


def nodes(max_depth: int = 4, max_children: int = 3, *, kinds: Iterable[str] | None = None,
          exclude: Iterable[str] = (), hash32: bool = True, legacy64: bool = True,
          group_refs: bool = False, targets: st.SearchStrategy | None = None,
          max_rows: int = 4, max_cols: int = 24) -> st.SearchStrategy:
    """Well-formed nodes of depth ≤ `max_depth` (a leaf has depth 1).

    `kinds` / `exclude` restrict node kinds by class name (at least one leaf kind must remain);
    call targets come from `targets`, else from `call_targets(hash32, legacy64, group_refs)`.
    """
    allowed = (frozenset(kinds) if kinds is not None else ALL_KINDS) - frozenset(exclude)
    unknown = allowed - ALL_KINDS
    if unknown:
        raise ValueError(f"unknown node kinds {sorted(unknown)}")
    if targets is None and "Call" in allowed:
        targets = call_targets(hash32, legacy64, group_refs)
    leaves = _leaves(allowed, targets, max_rows, max_cols)
    if not leaves:
        raise ValueError("nodes: no leaf kind allowed")
    level = st.one_of(*leaves)
    for _ in range(max_depth - 1):
        comps = _composites(allowed, level, max_children)
        if not comps:
            break
        level = st.one_of(st.one_of(*leaves), *comps)
    return level


def programs(max_len: int = 4, **node_kwargs) -> st.SearchStrategy:
    """Top-level sequences (tuples of nodes); `node_kwargs` go to `nodes`."""
    return st.lists(nodes(**node_kwargs), max_size=max_len).map(tuple)


def deep_chain(depth: int, leaf: ir.Node | None = None) -> ir.Node:
    """A Return(Return(…leaf…)) chain of exactly `depth` levels (for nesting-limit tests)."""
    node = leaf if leaf is not None else ir.Int(0)
    for _ in range(depth - 1):
        node = ir.Return(node)
    return node
