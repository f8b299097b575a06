"""The garbage collector's pauses in a server process, counted per generation.

A full (generation 2) collection walks every tracked object the process holds; in a front that
has imported FastAPI, numpy, onnxruntime's bindings or gRPC that is hundreds of thousands of
objects, and the request that triggers it waits for all of them. `GcPauses` times each
collection through ``gc.callbacks`` (a few microseconds per collection) and keeps per
generation the count, total and longest pause, plus the last few pauses with their instants,
so ``/metrics`` can say whether a slow request met one. `freeze_startup_heap` is the fix the
measurements in docs/serving.md chose: ``gc.freeze()`` once start-up is done, which moves every
object alive then into a permanent generation that collections no longer walk.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import deque
from typing import Any

__all__ = ["GcPauses", "freeze_startup_heap"]


class GcPauses:
    """Times every collection of this process while installed.

    The callback never waits for a lock. A collection runs in whichever thread allocated past
    the threshold, and that can be a thread holding this object's lock: `snapshot` builds its
    dicts under the lock, and an allocation there may start a collection whose callback, in the
    same thread, would wait on that lock for ever (a ``/metrics`` request hung this way, and
    with it every later collection of the process). So a callback that cannot take the lock at
    once leaves its pause in `_pending` (``deque.append`` is atomic), and whoever next holds
    the lock folds it in.
    """

    def __init__(self, recent: int = 64) -> None:
        self._lock = threading.Lock()
        self._started: int | None = None
        self._pending: deque[tuple[float, int, int]] = deque()
        self.count = [0, 0, 0]
        self.total_ns = [0, 0, 0]
        self.max_ns = [0, 0, 0]
        self.recent: deque[tuple[float, int, float]] = deque(maxlen=recent)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter_ns()
        if phase == "start":
            self._started = now
            return
        if self._started is None:
            return
        took, self._started = now - self._started, None
        self._pending.append((time.time(), int(info.get("generation", 2)), took))
        if self._lock.acquire(blocking=False):
            try:
                self._fold()
            finally:
                self._lock.release()

    def _fold(self) -> None:
        """Move the pending pauses into the totals; the caller holds `_lock`."""
        while True:
            try:
                unix_s, gen, took = self._pending.popleft()
            except IndexError:
                return
            self.count[gen] += 1
            self.total_ns[gen] += took
            self.max_ns[gen] = max(self.max_ns[gen], took)
            self.recent.append((unix_s, gen, took / 1e6))

    def install(self) -> GcPauses:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        return self

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self._fold()
            count, total, longest = list(self.count), list(self.total_ns), list(self.max_ns)
            recent = list(self.recent)
        return {
            "collections": count,
            "total_ms": [round(t / 1e6, 3) for t in total],
            "max_ms": [round(t / 1e6, 3) for t in longest],
            "recent": [
                {"unix_s": round(t, 4), "generation": g, "ms": round(ms, 3)} for t, g, ms in recent
            ],
            "frozen": gc.get_freeze_count(),
        }


def freeze_startup_heap() -> int:
    """Collect once, then freeze what is alive: later collections skip the start-up heap.
    Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
