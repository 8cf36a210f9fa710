"""Tier 2 scratch memory: the blocks native code reads its entry state from and pushes into.

In: a region's variable count, push-buffer size and node count; an engine's pool budget.
Out: `_Scratch` (one block: control words, variables, bound flags, i32 push buffer, laid out as
`native_codegen` expects), `_Segment` (a block's pushes left on the stack as one lazy entry),
and the per-region spare-block pools `_Pool`, whose total per engine is bounded by a
`_PoolBudget` (cached units keep their regions, and so their pools, alive: docs/decisions.md
#13, T2.4).
"""

from __future__ import annotations

import ctypes
import mmap

VARS_OFFSET = 64           # = native_codegen.VARS_OFFSET
POOL_MAX_BYTES = 8 << 20   # larger scratch blocks are not kept for the next execution
POOL_BUDGET = 64 << 20     # spare scratch bytes all regions of one engine's units may keep


def buffer_offset(k: int) -> int:
    """Byte offset of the push buffer in a region's scratch block (native_codegen layout)."""
    return (VARS_OFFSET + 5 * k + 7) & ~7


class _Scratch:
    """One scratch block: control words, variables, bound flags, push buffer (`entries` i32).

    Blocks of 1 MiB or more are anonymous memory maps: their pages are zero-filled lazily, as
    native code first writes them, so a big push buffer costs nothing until it is used (and
    never delays a deadline by a long memset).
    """

    __slots__ = ("buf", "addr", "pushes", "room", "_c")

    def __init__(self, k: int, entries: int, nodes: int):
        off = buffer_offset(k)
        size = off + 4 * entries
        self.buf = mmap.mmap(-1, size) if size >= (1 << 20) else bytearray(size)
        self._c = (ctypes.c_char * size).from_buffer(self.buf)  # pins the buffer
        self.addr = ctypes.addressof(self._c)
        self.pushes = memoryview(self.buf)[off:].cast("i")
        self.room = entries - nodes  # boundary limit that keeps every push inside the buffer


class _PoolBudget:
    """Spare scratch bytes held by the pools of every region compiled for one engine. Cached
    units keep their regions (and pools) alive, so without this bound a cache of distinct
    programs would pin up to 4 × `POOL_MAX_BYTES` per region (docs/decisions.md #13)."""

    __slots__ = ("bytes", "limit")

    def __init__(self, limit: int = POOL_BUDGET):
        self.bytes, self.limit = 0, limit


class _Pool:
    """A region's spare scratch blocks: at most 4, each ≤ `POOL_MAX_BYTES`, within the
    engine's `_PoolBudget`; their bytes return to the budget when the pool is dropped."""

    __slots__ = ("blocks", "budget")

    def __init__(self, budget: _PoolBudget):
        self.blocks: list = []
        self.budget = budget

    def take(self):
        blocks = self.blocks
        if blocks:
            sc = blocks.pop()
            self.budget.bytes -= len(sc.buf)
            return sc
        return None

    def give(self, sc: _Scratch) -> None:
        n = len(sc.buf)
        b = self.budget
        if len(self.blocks) < 4 and n <= POOL_MAX_BYTES and b.bytes + n <= b.limit:
            self.blocks.append(sc)
            b.bytes += n

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> _Scratch:
        return self.blocks[i]

    def __del__(self):
        self.budget.bytes -= sum(len(sc.buf) for sc in self.blocks)


class _Segment:
    """`n` Scalar(x, 0) values pushed by one native execution, still i32 in its scratch block:
    one stack entry standing for n. Dropping it (materialized, or at the end of the run)
    returns the scratch block to its region's pool."""

    __slots__ = ("sc", "n", "pool")

    def __init__(self, sc: _Scratch, n: int, pool: _Pool):
        self.sc, self.n, self.pool = sc, n, pool

    def __del__(self):
        self.pool.give(self.sc)

    def values(self, st):
        return self.sc.pushes[:self.n]
