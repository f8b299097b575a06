"""Latency budgets: per-stage spans inside the measured callable.

Wrap each stage of a pipeline in `stage`; spans are recorded only while a measurement's timed
blocks run (never in warm-up, never outside a test), so production code can keep the calls::

    >>> from pytest_latency import stage
    >>> def handle(text):
    ...     with stage("tokenise"):
    ...         ids = tokenizer(text)
    ...     with stage("inference"):
    ...         return model(ids)

Stages measured elsewhere (say, by a server that reports ``Server-Timing``) are added with
``record_stage("inference", duration_ns)``. ``@pytest.mark.slo(budget={"inference": 25,
"tokenise": 3})`` then decides each stage's p99 against its share of the budget, with the same
order-statistic bounds as the end-to-end targets.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


class StageRecorder:
    """Collects span durations per stage while a measurement is timing."""

    def __init__(self) -> None:
        self._spans: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def add(self, name: str, duration_ns: int) -> None:
        with self._lock:
            self._spans.setdefault(name, []).append(int(duration_ns))

    def arrays(self) -> dict[str, npt.NDArray[np.int64]]:
        with self._lock:
            return {k: np.asarray(v, dtype=np.int64) for k, v in self._spans.items()}


@dataclass
class _Slot:
    """A measurement's place for spans; ``recorder`` is set only while its blocks are timed."""

    recorder: StageRecorder | None = None


# A context variable, not a global: only the measured call's own thread or task (which run
# in a copy of the measuring context) reach the recorder. Another thread of the process --
# a server running in-process, a background flusher -- records nothing into the measurement.
_slot: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar(
    "pytest_latency_stage_slot", default=None
)


@contextmanager
def measuring() -> Iterator[_Slot]:
    """Give the current context a slot for spans for the whole of one measurement.

    Drivers run calls in copies of this context (worker threads, event-loop tasks), so the
    slot reaches them; `recording` switches it on for the timed blocks only.
    """
    token = _slot.set(_Slot())
    try:
        yield _slot.get()  # type: ignore[misc]
    finally:
        _slot.reset(token)


@contextmanager
def recording(recorder: StageRecorder) -> Iterator[StageRecorder]:
    """Make `recorder` the target of `stage` spans for the duration of the block."""
    slot = _slot.get()
    if slot is None:  # used on its own, outside `measuring`
        token = _slot.set(_Slot(recorder))
        try:
            yield recorder
        finally:
            _slot.reset(token)
        return
    previous, slot.recorder = slot.recorder, recorder
    try:
        yield recorder
    finally:
        slot.recorder = previous


def _recorder() -> StageRecorder | None:
    slot = _slot.get()
    return None if slot is None else slot.recorder


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the enclosed code as stage `name` (a no-op when nothing is being measured)."""
    recorder = _recorder()
    if recorder is None:
        yield
        return
    t0 = time.perf_counter_ns()
    try:
        yield
    finally:
        recorder.add(name, time.perf_counter_ns() - t0)


def record_stage(name: str, duration_ns: int) -> None:
    """Add a span measured elsewhere (e.g. parsed from a ``Server-Timing`` header)."""
    recorder = _recorder()
    if recorder is not None:
        recorder.add(name, duration_ns)
