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

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt

_lock = threading.Lock()
_active: StageRecorder | None = None


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


@contextmanager
def recording(recorder: StageRecorder) -> Iterator[StageRecorder]:
    """Make `recorder` the target of `stage` spans for the duration of the block."""
    global _active
    with _lock:
        previous, _active = _active, recorder
    try:
        yield recorder
    finally:
        with _lock:
            _active = previous


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the enclosed code as stage `name` (a no-op when nothing is being measured)."""
    recorder = _active
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
    recorder = _active
    if recorder is not None:
        recorder.add(name, duration_ns)
