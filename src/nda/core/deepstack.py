"""Running deep recursive work safely: a worker thread with a large C stack.

In: a zero-argument callable and the number of Python frames it may need.
Out: its result (or its exception, re-raised in the caller). `call_with_frames(fn, frames)`
runs `fn` directly when the caller's stack has room under the current recursion limit, else
in a worker thread with a 512 MiB C stack.

The recursion limit is process-wide. It is raised only while at least one deep worker runs and
restored to its previous value when the last one finishes, so code on the main thread (8 MiB C
stack) never runs under a limit its C stack cannot honour once deep work is over. (While a deep
worker runs, other threads see the raised limit; that window is as short as the deep work.)
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable

STACK_BYTES = 512 * 1024 * 1024
_MARGIN = 50


class _LimitGuard:
    """Reference-counted raise of the recursion limit (the one process-wide setting)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._saved = 0
        self._raised_to = 0

    def acquire(self, limit: int) -> None:
        with self._lock:
            if self._active == 0:
                self._saved = sys.getrecursionlimit()
                self._raised_to = self._saved
            self._active += 1
            if limit > self._raised_to:
                sys.setrecursionlimit(limit)
                self._raised_to = limit

    def release(self) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0 and sys.getrecursionlimit() == self._raised_to:
                sys.setrecursionlimit(self._saved)


_GUARD = _LimitGuard()


def frames_in_use() -> int:
    f, n = sys._getframe(), 0
    while f is not None:
        n += 1
        f = f.f_back
    return n


def fits(frames: int) -> bool:
    """Whether `frames` more Python frames fit under the current limit on this thread."""
    return frames_in_use() + frames < sys.getrecursionlimit() - _MARGIN


def call_with_frames(fn: Callable[[], Any], frames: int) -> Any:
    """`fn()` on this thread if `frames` fit, else on a big-stack worker (see module doc)."""
    if fits(frames):
        return fn()
    return call_in_big_thread(fn, frames)


def call_in_big_thread(fn: Callable[[], Any], frames: int) -> Any:
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised in the caller
            box["error"] = e

    _GUARD.acquire(frames + 1000)
    try:
        old = threading.stack_size()
        try:
            threading.stack_size(STACK_BYTES)
            t = threading.Thread(target=target, name="nda-deep", daemon=True)
            t.start()
        finally:
            threading.stack_size(old)
        t.join()
    finally:
        _GUARD.release()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def call_nested(fn: Callable[[], Any], st, callee_depth: int) -> Any:
    """Run a callee of nesting `callee_depth` (`fn()`) for a run whose state `st` tracks the
    Python frames still free on its thread (`st.stack_room`, −1 when unknown: measured here,
    keeping room for the deepest caller `st.limits.max_node_depth` allows). When the callee
    may need more (4 frames per nesting level), it runs on a big-stack worker sized for every
    call level the run may still nest; otherwise on this thread. Either way the room is
    restored afterwards, so sibling calls see the same budget."""
    room = st.stack_room
    if room < 0:
        room = max(0, sys.getrecursionlimit() - frames_in_use() - 250 - 4 * st.limits.max_node_depth)
    need = 4 * callee_depth + 64
    if need <= room:
        st.stack_room = room - need
        try:
            return fn()
        finally:
            st.stack_room = room
    lim = st.limits
    frames = (4 * (lim.max_node_depth + 1) + 64) * (lim.max_call_depth - st.call_depth + 1) + 400

    def hop():
        st.stack_room = frames - 400 - need
        return fn()
    try:
        return call_in_big_thread(hop, frames)
    finally:
        st.stack_room = room
