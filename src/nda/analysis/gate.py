"""The commit gate's static validation (runtime.md §7 step 2).

In: a program's top-level sequence, the conditioning length (or None), `Limits`, an optional
`has_target(target) -> bool` (store or same commit), and the other linked functions of the
commit as `(name, node, GroupInfo | None)`.
Out: `validate(...)` → every finding at once as `Diagnostic(code, message, span, hint,
stage="gate")` whose code is the one the run gives for the same failure (UNDEFINED_VARIABLE,
STACK_UNDERFLOW, DIMENSION_MISMATCH, …; VALIDATION_ERROR for rule findings) and, given the
source's `names`, whose variables are named as spelt, with a did-you-mean hint (`gate_names`);
`validate_or_raise(...)` raises `ValidationError("validation: {first message}", diagnostics)`;
`analyze(...)` → the same findings as `Finding` records (node, kind, unit) for tools and tests;
`validate_triples(...)` → the original's triple-batch messages.

Checks, per unit (the program, then each function):
1. Structure: node types and child fields, integer fields in range (i8 … u64), enum values,
   plane lengths (Matrix rows·⌈cols/8⌉, Norm ⌈size/8⌉), rows/cols/size ≥ 1, Bitwise Not without
   rhs and binary Bitwise with one, nesting ≤ `max_node_depth` (`node nesting exceeds {n}`;
   per top-level node for the program, as the sandbox does), call targets (GroupRef only inside
   a group member with index < group size, NamedRef never, Hash32/Legacy64 must satisfy
   `has_target`: `call target {t} not found`), and the unit's batch of Triple nodes (every child
   field walked, no-op children included) with the messages of formats.md §4.
2. Abstract interpretation (`gate_absint`): pops from a definitely empty stack, known Vec(n)
   into Matrix/Norm of other width, definite Vector into Math/MathFunc/Cast-to-scalar/Peek/Poke
   addresses, definite non-Vector into Dot/Gemv, known unequal lengths in Dot and Vector+Vector
   Add, unbound Loads. Messages are tier 0's. The program starts from `[Vec(input_len)]`;
   functions from an unknown stack (so for them only structure, targets and unbound Loads).
3. Provable limits (program only): fuel (the cheapest run of the program executes more than
   `limits.fuel` nodes), memory at a statement boundary, a While that can never end.

Before all of these, a unit's expanded node count (`dag.check_nodes`: a subtree shared by
several parents, as IR built through the API may share, counts once per occurrence; measured
when the structural walk has met `dag.check_point` nodes) is compared with `limits.max_nodes`;
a unit over it is the only finding ("size": `node count exceeds {n}`, nothing else is checked,
docs/decisions.md #34).

Finding kinds: "size", "structure", "nesting", "triple" (rejected by rule; a run may still succeed),
"target" and "runtime" (the node fails every time it is reached, with this message — except
that a call-depth or fuel limit may strike first, and a Bitwise without rhs may find its lhs pop
empty), "limit" (every run that reaches the node fails; the message is the limit hit first when
that can be told), "fuel" (every run of the program fails; the node is the top-level statement
by whose end the cheapest run has used more than the fuel). Unbound-Load rule and the other
choices: see `gate_absint`. Diagnostics come out in program order (unit, then pre-order
position; a triple batch stays together in the original's order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from nda.core import ir
from nda.core.dag import TooManyNodes, check_point, walk_check
from nda.core.errors import Diagnostic, ValidationError
from nda.core.gcpause import gc_paused
from nda.analysis.gate_absint import Frame, Syntax, UNK, program_start
from nda.analysis.gate_names import Namer, code_for
from nda.analysis.gate_walk import Bail, make_walkers, walk_roots
from nda.runtime.state import Limits

STRUCTURE, NESTING, TRIPLE, TARGET, RUNTIME, LIMIT, FUEL, SIZE = (
    "structure", "nesting", "triple", "target", "runtime", "limit", "fuel", "size")
PROGRAM = "<program>"

_INT_RANGES = {
    "i8": (-128, 127), "u8": (0, 0xFF), "u16": (0, 0xFFFF), "u32": (0, 0xFFFFFFFF),
    "i32": (-(1 << 31), (1 << 31) - 1), "u64": (0, (1 << 64) - 1), "f32": (0, 0xFFFFFFFF),
}
_NODE_TYPES = frozenset(ir.NODE_CLASSES)
_ABSINT_BUDGET = 200_000  # node visits (plus 50 per node of the unit) before degrading


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding with its node (None only when there is no node to point at)."""

    node: ir.Node | None
    diagnostic: Diagnostic
    kind: str
    unit: str

    @property
    def message(self) -> str:
        return self.diagnostic.message


# ---------------------------------------------------------------------------------------------
# Triples (formats.md §4; order and texts of the original's validate_triples)


def _triple_issues(triples: Sequence[tuple[int, int, int]]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for i, (s, _p, o) in enumerate(triples):
        if s == 0:
            out.append((i, f"triple[{i}]: subject_hash is zero (null reference)"))
        if o == 0:
            out.append((i, f"triple[{i}]: object_hash is zero (null reference)"))
        if s == o:
            out.append((i, f"triple[{i}]: subject and object have same hash (self-reference)"))
    seen: set = set()
    for i, t in enumerate(triples):
        key = tuple(t)
        if key in seen:
            out.append((i, f"triple[{i}] is a duplicate"))
        seen.add(key)
    return out


def validate_triples(triples: Sequence[tuple[int, int, int]]) -> list[str]:
    """Every issue of a batch of (subject, predicate, object) triples; [] when valid."""
    return [m for _, m in _triple_issues(triples)]


# ---------------------------------------------------------------------------------------------
# Structure


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_node(v) -> bool:
    return type(v) in _NODE_TYPES


def _plan(fname: str, fk: str) -> tuple:
    """(field, kind, category, a, b) — category 1 node, 2 nodes, 3 int in [a, b], 4 enum class a
    with values b, 0 anything else (checked by `_Unit.check_field` alone)."""
    if fk == "node":
        return fname, fk, 1, None, None
    if fk == "nodes":
        return fname, fk, 2, None, None
    if fk in _INT_RANGES:
        return (fname, fk, 3) + _INT_RANGES[fk]
    if fk.startswith("enum:"):
        enum = ir.ENUMS[fk[5:]]
        return fname, fk, 4, enum, frozenset(enum._value2member_map_)
    return fname, fk, 0, None, None


_PLANS = {cls: tuple(_plan(f, k) for f, k in cls.FIELDS) for cls in ir.NODE_CLASSES}
_POST_CHECKED = frozenset((ir.Matrix, ir.Norm, ir.Bitwise, ir.Triple))
_LOOPS = frozenset((ir.Loop, ir.While))


class _Unit:
    """Structural walk of one unit: findings, pre-order positions, Triple batch, safety."""

    def __init__(self, name: str, roots: Sequence, group, limits: Limits,
                 has_target: Callable | None, fast: bool = True):
        self.name = name
        self.fast = fast  # False: every node by the full `check` (the tests' oracle)
        self.roots = roots
        self.group = group
        self.limits = limits
        self.has_target = has_target
        self.findings: list[Finding] = []
        self._order: dict[int, int] | None = None
        self.triples: list[ir.Triple] = []
        self.safe = True  # every child is a node and every int field is an int
        self.too_deep = False
        self.max_depth = 0
        self.size = 0
        self.loops = False  # a Loop or While occurs
        self.root_sizes: list = []  # per root (when all are nodes): (its size, a Loop or While in it)

    def add(self, node, message: str, kind: str, hint: str | None = None) -> None:
        span = getattr(node, "span", None) if node is not None else None
        self.findings.append(Finding(node, Diagnostic(code_for(message, kind), message, span, hint=hint,
                                                      stage="gate"), kind, self.name))

    def walk(self) -> None:
        """Size, depth, loops and structure findings of every root: `gate_walk` first (it
        calls `check` only on nodes with something to report), the general walk below when
        a node is too deep (the finding is the general walk's) or a root is not a node."""
        if self.fast and all(type(r) in _NODE_TYPES for r in self.roots):
            nf, nt, safe = len(self.findings), len(self.triples), self.safe
            try:
                sizes, depth = walk_roots(_WALKERS, self, self.roots, self.limits.max_node_depth,
                                          check_point(self.limits.max_nodes))
            except (Bail, RecursionError):
                del self.findings[nf:]
                del self.triples[nt:]
                self.safe = safe
            else:
                self.root_sizes.extend(sizes)
                self.size += sum(n for n, _ in sizes)
                if self.size > self.limits.max_nodes:  # (only leaves were counted on the way)
                    raise TooManyNodes(self.limits.max_nodes, self.size)
                self.max_depth = max(self.max_depth, depth)
                self.loops = self.loops or any(lp for _, lp in sizes)
                return
        self.walk_general()

    def size_check(self, count: int) -> None:
        """`count` occurrences met: measure the unit once (linear; `dag.walk_check`)."""
        walk_check(self.roots, self.limits.max_nodes, count)

    def walk_general(self) -> None:
        """The iterative walk: one (node, depth) pair per node, each checked by `check` (for
        a tree deeper than the stack, a non-node root, and as the tests' oracle of `walk`)."""
        limit = self.limits.max_node_depth
        size, max_depth, loops = self.size, self.max_depth, self.loops
        check_at = check_point(self.limits.max_nodes)
        for i, root in enumerate(self.roots):
            if not _is_node(root):
                self.safe = False
                self.add(None, f"element {i} of {self.name} is not a node ({type(root).__name__})",
                         STRUCTURE)
                continue
            reported = False
            size0, loops0, loops = size, loops, False
            stack = [(root, 1)]
            pop, push = stack.pop, stack.append
            while stack:
                n, d = pop()
                size += 1
                if size == check_at:  # measure the unit once (linear) before walking on
                    self.size_check(size)
                if d > max_depth:
                    max_depth = d
                if d > limit and not reported:
                    reported = self.too_deep = True
                    self.add(n, f"node nesting exceeds {limit}", NESTING,
                             f"this node is at depth {d}")
                if type(n) in _LOOPS:
                    loops = True
                kids = self.check(n)
                if kids:
                    d += 1
                    for c in kids[::-1]:  # not reversed(): mypyc 2.4 crashes on it here
                        push((c, d))
            self.root_sizes.append((size - size0, loops))
            loops = loops or loops0
        self.size, self.max_depth, self.loops = size, max_depth, loops

    @property
    def order(self) -> dict[int, int]:
        """id(node) → pre-order position of its first occurrence (computed when first asked:
        only a unit with findings needs it)."""
        if self._order is None:
            order: dict[int, int] = {}
            stack = [r for r in reversed(self.roots) if _is_node(r)]
            while stack:
                n = stack.pop()
                order.setdefault(id(n), len(order))
                kids = []
                for fname, fk, _c, _a, _b in _PLANS[type(n)]:  # the children `check` walked
                    if fk in ("node", "optnode"):
                        v = getattr(n, fname)
                        if _is_node(v):
                            kids.append(v)
                    elif fk in ("nodes", "optnodes"):
                        v = getattr(n, fname)
                        if isinstance(v, (tuple, list)):
                            kids.extend(c for c in v if _is_node(c))
                stack.extend(reversed(kids))
            self._order = order
        return self._order

    def check(self, n) -> list:
        """Check one node's fields; → its child nodes (only well-typed ones)."""
        kids: list = []
        for fname, fk, cat, lo, hi in _PLANS[type(n)]:
            v = getattr(n, fname)
            # fast paths for well-formed fields; anything else goes through `check_field`
            if cat == 1:  # node
                if type(v) in _NODE_TYPES:
                    kids.append(v)
                    continue
            elif cat == 2:  # nodes
                if type(v) is tuple and all(type(c) in _NODE_TYPES for c in v):
                    kids.extend(v)
                    continue
            elif cat == 3:  # int field
                if type(v) is int and lo <= v <= hi:
                    continue
            elif cat == 4:  # enum field
                if type(v) is lo or (type(v) is int and v in hi):
                    continue
            self.check_field(n, fname, fk, v, kids)
        t = type(n)
        if t in _POST_CHECKED:
            self.post_check(n, t)
        return kids

    def check_field(self, n, fname: str, fk: str, v, kids: list) -> None:
        """The full check of one field (findings in field order); appends well-typed children."""
        kind = type(n).__name__
        if fk in ("node", "optnode"):
            if v is None and fk == "optnode":
                return
            if _is_node(v):
                kids.append(v)
            else:
                self.safe = False
                self.add(n, f"{kind} {fname} is not a node ({type(v).__name__})", STRUCTURE)
        elif fk in ("nodes", "optnodes"):
            if v is None and fk == "optnodes":
                return
            if not isinstance(v, (tuple, list)):
                self.safe = False
                self.add(n, f"{kind} {fname} is not a node list ({type(v).__name__})", STRUCTURE)
                return
            for j, c in enumerate(v):
                if _is_node(c):
                    kids.append(c)
                else:
                    self.safe = False
                    self.add(n, f"{kind} {fname}[{j}] is not a node ({type(c).__name__})", STRUCTURE)
        elif fk in _INT_RANGES:
            lo, hi = _INT_RANGES[fk]
            if not _is_int(v):
                self.safe = False
                self.add(n, f"invalid {fname} {v!r} in {kind} (expected {fk})", STRUCTURE)
            elif not lo <= v <= hi:
                self.add(n, f"invalid {fname} {v} in {kind} (out of {fk} range)", STRUCTURE)
        elif fk.startswith("enum:"):
            enum = ir.ENUMS[fk[5:]]
            if not _is_int(v):
                self.safe = False
                self.add(n, f"invalid {fname} {v!r} in {kind} (expected {enum.__name__})", STRUCTURE)
            elif v not in enum._value2member_map_:
                self.add(n, f"invalid {fname} {v} in {kind} (not a {enum.__name__})", STRUCTURE,
                         f"valid values: 0..{len(enum) - 1}")
        elif fk == "bytes":
            if not isinstance(v, (bytes, bytearray, memoryview)):
                self.safe = False
                self.add(n, f"{kind} {fname} plane is not bytes ({type(v).__name__})", STRUCTURE)
        elif fk == "target":
            self.check_target(n, v)

    def post_check(self, n, t) -> None:
        if t is ir.Matrix:
            self.check_dims(n, ("rows", "cols"), ("sign", "extra"))
        elif t is ir.Norm:
            self.check_dims(n, ("size",), ("weight", "bias"))
        elif t is ir.Bitwise and _is_int(n.op):
            if n.op == ir.BitwiseOp.Not and n.rhs is not None:
                self.add(n, "Bitwise Not must not have an rhs", STRUCTURE,
                         "the rhs of Not is never evaluated; drop it")
            elif n.op != ir.BitwiseOp.Not and n.rhs is None:
                self.add(n, "Missing rhs for binary Bitwise op", RUNTIME,
                         "And/Or/Xor/Shl/Shr need an rhs")
        elif t is ir.Triple and _is_int(n.subject_hash) and _is_int(n.predicate_id) and _is_int(n.object_hash):
            self.triples.append(n)  # (an ill-typed one has its STRUCTURE finding; not batched)

    def check_dims(self, n, dims: tuple, planes: tuple) -> None:
        kind = type(n).__name__
        vals = [getattr(n, d) for d in dims]
        for d, v in zip(dims, vals):
            if _is_int(v) and v < 1:
                self.add(n, f"{kind} {d} must be at least 1, got {v}", STRUCTURE,
                         "a zero-sized Norm divides by zero in the original" if kind == "Norm" else None)
        if not all(_is_int(v) and v >= 0 for v in vals):
            return
        need = n.plane_len
        for p in planes:
            b = getattr(n, p)
            if isinstance(b, (bytes, bytearray, memoryview)) and len(b) != need:
                self.add(n, f"{kind} {p} plane has {len(b)} bytes, expected {need}", STRUCTURE)

    def check_target(self, n, t) -> None:
        tt = type(t)
        if tt is ir.Hash32:
            if not isinstance(t.digest, (bytes, bytearray)) or len(t.digest) != 32:
                self.add(n, "invalid Hash32 call target (digest must be 32 bytes)", STRUCTURE)
                return
        elif tt is ir.Legacy64:
            if not _is_int(t.value) or not 0 <= t.value < 1 << 64:
                self.add(n, f"invalid Legacy64 call target {t.value!r}", STRUCTURE)
                return
        elif tt is ir.GroupRef:
            if not _is_int(t.index) or not 0 <= t.index <= 0xFFFFFFFF:
                self.add(n, f"invalid GroupRef call target {t.index!r}", STRUCTURE)
            elif self.group is None:
                self.add(n, f"call target {t} not found", TARGET,
                         "GroupRef is only valid inside a recursive group member")
            elif t.index >= len(self.group.members):
                self.add(n, f"call target {t} not found", TARGET,
                         f"the group has {len(self.group.members)} members")
            return
        elif tt is ir.NamedRef:
            self.add(n, f"call target {t} not found", TARGET,
                     "unlinked @name reference: link the module before validation")
            return
        else:
            self.add(n, f"invalid call target {t!r}", STRUCTURE)
            return
        if self.has_target is not None and not self.has_target(t):
            self.add(n, f"call target {t} not found", TARGET,
                     "the target is neither in the store nor in this commit")

    def check_triples(self) -> None:
        ts = self.triples
        for i, msg in _triple_issues([(t.subject_hash, t.predicate_id, t.object_hash) for t in ts]):
            self.add(ts[i], msg, TRIPLE)


# one recursive walker per kind (`gate_walk`), `_Unit.walk`'s fast path
_WALKERS = make_walkers(_PLANS, _POST_CHECKED | {ir.Call}, _LOOPS, _NODE_TYPES)


# ---------------------------------------------------------------------------------------------
# Entry points


def fuel_check(syntax: Syntax, sequence, stop_index: int | None, fuel: int):
    """(node, lower bound) when the program provably executes more than `fuel` nodes, else None.

    Only the prefix that can run is counted: up to the first top-level element that may signal
    (Return ends the program), or up to `stop_index` (after which nothing can run).
    """
    total = 0
    for i, e in enumerate(sequence):
        total += syntax.min_cost(e)
        if total > fuel:
            return e, total
        if syntax.signals(e) or (stop_index is not None and i >= stop_index):
            return None
    return None


def _fuel_upper_bound(syntax: Syntax, unit: _Unit, fuel: int) -> int:
    """An upper bound of what `fuel_check` can sum (it stops as soon as it passes `fuel`): a
    top-level node without Loop or While runs each of its nodes at most once (a Call counts
    2), so 2 × its size; one with a loop counts its exact `min_cost`."""
    total = 0
    for e, (size, loops) in zip(unit.roots, unit.root_sizes):
        total += syntax.min_cost(e) if loops else 2 * size
        if total > fuel:
            break
    return total


def _run_unit_absint(unit: _Unit, syntax: Syntax, limits: Limits, input_len, is_program: bool,
                     fast: bool = True) -> None:
    if not unit.safe or unit.too_deep:
        return
    frame = Frame(syntax, limits, input_len if is_program else None, is_program,
                  _ABSINT_BUDGET + 50 * unit.size, fast)
    frame.run(unit.roots, program_start(input_len) if is_program else UNK)
    for node, message, hint, kind in frame.findings():
        unit.add(node, message, kind, hint)
    if is_program:
        maybe = not unit.fast or _fuel_upper_bound(syntax, unit, limits.fuel) > limits.fuel
        hit = fuel_check(syntax, unit.roots, frame.stop_index, limits.fuel) if maybe else None
        fuel_msg = f"fuel exhausted after {limits.fuel} nodes"
        if hit is not None and not any(f.node is hit[0] and f.message == fuel_msg for f in unit.findings):
            node, lo = hit
            unit.add(node, fuel_msg, FUEL,
                     f"every run of the program executes at least {lo} nodes by here")


def _with_deep_stack(fn: Callable[[], list], depth: int) -> list:
    """Run `fn` directly, or in a big-stack worker thread when the tree is deep."""
    from nda.core.deepstack import call_with_frames

    return call_with_frames(fn, 10 * depth + 300)


def analyze(sequence: Sequence[ir.Node], *, input_len: int | None, limits: Limits = Limits(),
            has_target: Callable[[ir.CallTarget], bool] | None = None,
            functions: Sequence[tuple] = (), names: Mapping[int, str] | None = None) -> list[Finding]:
    """Every finding as a `Finding`, in program order (see the module docstring).

    `names` (hash → identifier, as the source spelt them): variables and call targets in the
    messages are then named, and an unbound variable's hint says "did you mean 'x'?" when a
    bound name is close (`gate_names`)."""
    with gc_paused():
        return _analyze(sequence, input_len, limits, has_target, functions, names)


def _analyze(sequence, input_len, limits, has_target, functions, names, fast: bool = True) -> list[Finding]:
    """`analyze` without the GC pause; `fast=False` runs every node through the general paths
    (the oracle of the fast paths in tests/test_gate_fast.py)."""
    units = [_Unit(PROGRAM, tuple(sequence), None, limits, has_target, fast)]
    for name, node, group in functions:
        units.append(_Unit(name, (node,), group, limits, has_target, fast))
    for u in units:
        try:
            u.walk()
        except TooManyNodes:  # (a DAG built through the API): the one finding, nothing else
            u.findings = []
            u.add(None, f"node count exceeds {limits.max_nodes}", SIZE,
                  "a subtree shared by several parents counts once per occurrence")
            return u.findings
        u.check_triples()
    depth = max(u.max_depth for u in units)

    def abstract() -> list:
        syntax = Syntax(limits)
        for i, u in enumerate(units):
            _run_unit_absint(u, syntax, limits, input_len, i == 0, fast)
        return units

    _with_deep_stack(abstract, depth)
    out: list[Finding] = []
    for ui, u in enumerate(units):
        # a triple batch stays together, in the original's order, at its first Triple
        batch_at = u.order.get(id(u.triples[0]), -1) if u.triples else -1
        keyed = [(batch_at if f.kind == TRIPLE else
                  u.order.get(id(f.node), -1) if f.node is not None else -1, k, f)
                 for k, f in enumerate(u.findings)]
        keyed.sort(key=lambda x: (x[0], x[1]))
        out.extend(f for _, _, f in keyed)
    if names and out:
        roots = {u.name: u.roots for u in units}
        namer = Namer(names, roots.__getitem__)
        out = [Finding(f.node, namer.named(f.diagnostic, f.node, f.unit), f.kind, f.unit)
               if f.node is not None else f for f in out]
    return out


def validate(sequence: Sequence[ir.Node], *, input_len: int | None, limits: Limits = Limits(),
             has_target: Callable[[ir.CallTarget], bool] | None = None,
             functions: Sequence[tuple] = (), names: Mapping[int, str] | None = None) -> list[Diagnostic]:
    """All findings of the gate's static validation as diagnostics ([] = pass), each with the
    run's error code for that failure (`gate_names.code_for`) and stage "gate".

    `functions`: the commit's other linked defs as (name, node, GroupInfo | None) — not the
    program itself (its Triples and Loads would be checked twice).
    """
    return [f.diagnostic for f in analyze(sequence, input_len=input_len, limits=limits,
                                          has_target=has_target, functions=functions, names=names)]


def validate_or_raise(sequence: Sequence[ir.Node], *, input_len: int | None,
                      limits: Limits = Limits(),
                      has_target: Callable[[ir.CallTarget], bool] | None = None,
                      functions: Sequence[tuple] = ()) -> None:
    """Raise `ValidationError("validation: {first message}", diagnostics)` on any finding."""
    diags = validate(sequence, input_len=input_len, limits=limits, has_target=has_target,
                     functions=functions)
    if diags:
        raise ValidationError(f"validation: {diags[0].message}", diags)


__all__ = [
    "Finding", "analyze", "validate", "validate_or_raise", "validate_triples",
    "STRUCTURE", "NESTING", "TRIPLE", "TARGET", "RUNTIME", "LIMIT", "FUEL", "SIZE", "PROGRAM",
]
