"""Sandbox limits and the per-run state every tier shares.

In: `Limits` (runtime.md §5), the conditioning vector, a call resolver.
Out: `RunState` — value stack with exact memory accounting, simulated machine, output log,
counters, deadline/fuel bookkeeping — and the error constructors for limit failures, so that
every tier raises the same codes and messages at the same points.

Nothing here is global: a `RunState` is created per run and dropped afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

from nda.core import errors as E
from nda.core.dag import MAX_NODES, TooManyNodes
from nda.core.errors import NdaRuntimeError

HEAP_BYTES = 65536
DEADLINE_CHECK_INTERVAL = 1024  # node evaluations between deadline checks (power of two)
# A kernel that processes at least this many elements (Matrix: its plane bytes, ≈ weights / 4,
# as a weight costs far less than a vector element; Gemv: matrix elements; Dot, Norm, VecOp,
# Print, Syscall print and every other Vector kernel: its Vector's length) checks the clock
# right after it runs, in every tier (docs/decisions.md #5): one such node may cost
# milliseconds to seconds, far more than 1,024 ordinary nodes.
HEAVY_WORK = 1 << 16
# Counting a node of one of these kinds keeps tier 2's lazy stack segments (`RunState.lazy`):
# they only push one value. "native" is the boundary check after a native region (it only
# pushed). Any other kind, and `charge`, materializes the segments first.
LAZY_KEEP_KINDS = frozenset(("Int", "Float", "Load", "native"))
_monotonic_ns = time.monotonic_ns


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit of runtime.md §5 with its default."""

    fuel: int = 100_000_000
    deadline_ms: int = 10_000
    max_memory_bytes: int = 268_435_456
    max_output_bytes: int = 1_048_576
    max_call_depth: int = 64
    max_while_iterations: int = 10_000_000
    max_input_len: int = 1_048_576
    max_node_depth: int = 256
    max_nodes: int = MAX_NODES  # nodes of the expanded tree (a DAG built through the API)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, d: dict) -> "Limits":
        known = set(cls.field_names())
        bad = [k for k in d if k not in known]
        if bad:
            raise ValueError(f"unknown limit(s): {', '.join(bad)}")
        for k, v in d.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"limit {k} must be a non-negative integer, got {v!r}")
        return cls(**d)

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.field_names()}


# ---------------------------------------------------------------------------------------------
# Error constructors (one place for every limit message)


def fuel_error(fuel: int) -> NdaRuntimeError:
    return NdaRuntimeError(f"fuel exhausted after {fuel} nodes", E.FUEL_EXHAUSTED)


def deadline_error(ms: int) -> NdaRuntimeError:
    return NdaRuntimeError(f"deadline exceeded after {ms} ms", E.DEADLINE_EXCEEDED)


def memory_error(used: int, limit: int) -> NdaRuntimeError:
    return NdaRuntimeError(f"memory limit exceeded: {used} > {limit} bytes", E.MEMORY_LIMIT)


def output_error(used: int, limit: int) -> NdaRuntimeError:
    return NdaRuntimeError(f"output limit exceeded: {used} > {limit} bytes", E.OUTPUT_LIMIT)


def call_depth_error(n: int) -> NdaRuntimeError:
    return NdaRuntimeError(f"call depth limit exceeded ({n})", E.CALL_DEPTH)


def while_limit_error(n: int) -> NdaRuntimeError:
    return NdaRuntimeError(f"while loop exceeded MAX_WHILE_ITERATIONS ({n})", E.WHILE_LIMIT)


def target_not_found(target) -> NdaRuntimeError:
    return NdaRuntimeError(f"call target {target} not found", E.CALL_TARGET_NOT_FOUND)


def underflow(message: str) -> NdaRuntimeError:
    return NdaRuntimeError(message, E.STACK_UNDERFLOW)


def undefined_variable(name: int) -> NdaRuntimeError:
    return NdaRuntimeError(f"undefined variable (hash {name:016x})", E.UNDEFINED_VARIABLE)


def type_error(message: str) -> NdaRuntimeError:
    return NdaRuntimeError(message, E.TYPE_ERROR)


def nesting_error(n: int) -> NdaRuntimeError:
    return NdaRuntimeError(f"node nesting exceeds {n}", E.VALIDATION_ERROR)


def node_count_error(limit: int, nodes: int) -> TooManyNodes:
    return TooManyNodes(limit, nodes)


class RunState:
    """Mutable state of one run, shared by the tiers (tier 1 adds its own fast fields).

    `executed` counts node evaluations. `mem_extra` is Σ value_size over the stack beyond
    8 bytes per entry (i.e. the plane bytes of Vectors); tiers keep it exact at every push/pop
    of a Vector so that the statement-boundary check is O(1).

    `lazy` (tier 2 only, else None) holds stack segments of native-pushed Scalars that are not
    Python ints yet: each occupies one list entry and adds 8·(n − 1) to `mem_extra`, so memory
    accounting is exact. While `lazy` is set, `next_check` is −1 and `slow_check` materializes
    them (`lazy.materialize(self)`) before any node other than a pure push runs (`nda.tiers.native`).
    """

    __slots__ = (
        "limits", "stack", "mem_extra", "max_entries", "_machine", "log", "out_bytes",
        "executed", "matrix_count", "norm_count", "loop_iterations", "kind_counts", "resolver",
        "group", "call_depth", "input_len", "deadline_ns", "deadline_mark", "next_check", "t0_ns",
        "lazy", "stack_room", "native_ran",
    )

    def __init__(self, limits: Limits, resolver, input_len: int, collect_kinds: bool = False):
        self.limits = limits
        self.stack: list = []
        self.max_entries = (limits.max_memory_bytes - HEAP_BYTES) // 8
        self.log: list[str] = []
        self.mem_extra = self.out_bytes = self.executed = self.matrix_count = self.norm_count = 0
        self.loop_iterations = self.call_depth = 0
        self._machine = self.group = self.lazy = None  # _machine: made on first Peek/Poke (`machine`)
        self.kind_counts: dict | None = {} if collect_kinds else None
        self.resolver = resolver
        self.input_len = input_len
        self.t0_ns = t0 = _monotonic_ns()
        self.deadline_ns = t0 + limits.deadline_ms * 1_000_000
        self.deadline_mark = DEADLINE_CHECK_INTERVAL
        # Every tier counts a node with:  executed += 1; if executed > next_check: slow_check(kind)
        # next_check is the next fuel/deadline checkpoint, or -1 when kind counts are collected.
        fuel = limits.fuel
        self.next_check = -1 if collect_kinds else (fuel if fuel < DEADLINE_CHECK_INTERVAL else DEADLINE_CHECK_INTERVAL)
        # Python frames still free on this thread for Calls (runner sets it; −1: unknown, the
        # first Call measures). A Call whose callee may need more runs on a big-stack worker
        # (`nda.core.deepstack.call_nested`).
        self.stack_room = -1
        self.native_ran = False  # set by tier 2 when native code ran (the result's tier says so)

    @property
    def machine(self):
        """The simulated heap and MMIO map (`kernels.Machine`), made on first use."""
        m = self._machine
        if m is None:
            from nda.runtime.kernels import Machine

            m = self._machine = Machine()
        return m

    # -- counting
    def slow_check(self, kind: str) -> None:
        """Called when `executed` (already incremented) has passed `next_check`."""
        if self.lazy is not None and kind not in LAZY_KEEP_KINDS:
            self.lazy.materialize(self)
        n = self.executed
        fuel = self.limits.fuel
        if n > fuel:
            self.executed = fuel
            raise fuel_error(fuel)
        if n > self.deadline_mark:
            self.check_deadline()
            self.deadline_mark = (n // DEADLINE_CHECK_INTERVAL + 1) * DEADLINE_CHECK_INTERVAL
        kc = self.kind_counts
        if kc is not None:
            kc[kind] = kc.get(kind, 0) + 1
        else:
            self.next_check = -1 if self.lazy is not None else min(fuel, self.deadline_mark)

    def charge(self, k: int, kinds: dict | None = None) -> None:
        """Count `k` node evaluations at once (optimizer annotations): all of them or a fuel error."""
        if self.lazy is not None:
            self.lazy.materialize(self)
        n = self.executed + k
        fuel = self.limits.fuel
        if n > fuel:
            self.executed = fuel
            raise fuel_error(fuel)
        self.executed = n
        if n > self.deadline_mark:
            self.check_deadline()
            self.deadline_mark = (n // DEADLINE_CHECK_INTERVAL + 1) * DEADLINE_CHECK_INTERVAL
        kc = self.kind_counts
        if kc is not None:
            for kind, c in (kinds or {}).items():
                kc[kind] = kc.get(kind, 0) + c
        else:
            self.next_check = min(fuel, self.deadline_mark)

    def check_deadline(self) -> None:
        if time.monotonic_ns() > self.deadline_ns:
            raise deadline_error(self.limits.deadline_ms)

    # -- memory
    def memory_used(self) -> int:
        m = self._machine
        return HEAP_BYTES + 8 * len(self.stack) + self.mem_extra + (m.mmio_bytes if m is not None else 0)

    def recompute_max_entries(self) -> None:
        """Largest stack length that keeps `memory_used() <= limit` (tier 1's O(1) check)."""
        m = self._machine
        room = (self.limits.max_memory_bytes - HEAP_BYTES - self.mem_extra
                - (m.mmio_bytes if m is not None else 0))
        self.max_entries = room // 8

    def check_memory(self) -> None:
        m = self._machine
        used = HEAP_BYTES + 8 * len(self.stack) + self.mem_extra + (m.mmio_bytes if m is not None else 0)
        if used > self.limits.max_memory_bytes:
            raise memory_error(used, self.limits.max_memory_bytes)

    # -- output
    def emit(self, line: str) -> None:
        used = self.out_bytes + len(line.encode("utf-8")) + 1
        if used > self.limits.max_output_bytes:
            raise output_error(used, self.limits.max_output_bytes)
        self.out_bytes = used
        self.log.append(line)
