"""A live progress line while a measurement runs (``--latency-progress=auto|on|off``).

The runner reports a `Progress` between timed blocks (about every 200 ms) and after every
look, never inside a timed block. `LiveProgress` turns those reports into one terminal line,
rewritten in place with a carriage return at most `MIN_INTERVAL_S` apart, and erases it when
the measurement ends (and again before pytest reports the test), so pytest's own output
continues where it left off::

    latency test_model.py::test_p99 | n=1,392 look 2 | p99 2.21 ms [2.20, 3.88] <= 10 ms
      PASS so far | 3.1 s, <= 26.9 s left

``auto`` (the default) shows it only on an interactive terminal that takes markup (not with
``-q``, not when output is piped or ``TERM=dumb``); ``on`` forces it, ``off`` silences it.
pytest-xdist workers never show it: their output is not the terminal.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from .keys import PROGRESS_PLUGIN, SETTINGS_KEY

if TYPE_CHECKING:  # the runner imports numpy: not at configure time (``pytest --help``)
    from ..core.runner import Progress

# Rewrites at most this often: often enough to look alive, rarely enough to cost nothing.
MIN_INTERVAL_S = 0.25


def configure(config: pytest.Config) -> None:
    """Register the hook that erases a live line before a test is reported (unless
    ``--latency-progress=off``, and never on an xdist worker)."""
    if config.stash[SETTINGS_KEY].progress != "off" and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Lines(), PROGRESS_PLUGIN)


def enabled(config: pytest.Config) -> bool:
    """Whether measurements in this process show a live line."""
    mode = config.stash[SETTINGS_KEY].progress
    if mode == "off" or hasattr(config, "workerinput"):
        return False
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return False
    if mode == "on":
        return True
    # `isatty` is a method since pytest 8.2 (a callable bool); a plain bool before.
    isatty = reporter.isatty() if callable(reporter.isatty) else reporter.isatty
    return bool(isatty) and bool(reporter.hasmarkup) and reporter.verbosity >= 0


def live_progress(config: pytest.Config, nodeid: str) -> LiveProgress | None:
    """A `LiveProgress` for the test `nodeid`, or ``None`` when the line is off."""
    lines = config.pluginmanager.get_plugin(PROGRESS_PLUGIN)
    if lines is None or not enabled(config):
        return None
    line = LiveProgress(
        config.pluginmanager.get_plugin("terminalreporter"),
        config.pluginmanager.get_plugin("capturemanager"),
        nodeid,
    )
    lines.active.append(line)
    return line


class _Lines:
    """Keeps this session's live lines, to erase any left behind before pytest reports."""

    def __init__(self) -> None:
        self.active: list[LiveProgress] = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """A measurement that raised may have left its line: erase it before the report."""
        while self.active:
            self.active.pop().clear()


class LiveProgress:
    """One rewritable terminal line. Call it with each `Progress`; it throttles itself."""

    def __init__(
        self,
        reporter: Any,
        capman: Any,
        nodeid: str,
        clock: Callable[[], float] = time.monotonic,
        min_interval_s: float = MIN_INTERVAL_S,
    ) -> None:
        self._reporter = reporter
        self._capman = capman
        self._nodeid = nodeid
        self._clock = clock
        self._min_interval_s = min_interval_s
        self._last = -float("inf")
        self._last_look = 0
        self._shown = False
        self._saved_line = ""

    def __call__(self, progress: Progress) -> None:
        if progress.done:
            self.clear()
            return
        now = self._clock()
        # A new look's verdict is shown at once; block-by-block updates are throttled.
        if now - self._last < self._min_interval_s and progress.look == self._last_look:
            return
        self._last, self._last_look = now, progress.look
        self._write(format_progress(self._nodeid, progress, self._width()))

    def clear(self) -> None:
        """Erase the line and put back what pytest had written on it (``file.py ..``)."""
        if not self._shown:
            return
        self._shown = False
        self._write("", erase=True)

    def _width(self) -> int:
        return max(20, int(getattr(self._reporter._tw, "fullwidth", 80)) - 1)

    def _write(self, text: str, erase: bool = False) -> None:
        tw = self._reporter._tw
        with self._suspended():
            if not erase and not self._shown:
                # pytest tracks the text of its current line to right-align "[ 50%]"; keep
                # it, and write it back when the progress line goes away.
                self._saved_line = getattr(tw, "_current_line", "")
            width = self._width()
            out = "\r" + text[:width].ljust(width)
            if erase:
                out += "\r" + self._saved_line
            tw.write(out, flush=True)
            if hasattr(tw, "_current_line"):
                tw._current_line = self._saved_line
        self._shown = not erase

    def _suspended(self) -> Any:
        if self._capman is None:
            return contextlib.nullcontext()
        return self._capman.global_and_fixture_disabled()


def format_progress(nodeid: str, p: Progress, width: int = 120) -> str:
    """The progress line's text: test, samples, the binding target's estimate and bounds,
    elapsed and remaining budget, look number."""
    parts = [f"latency {nodeid}", f"n={p.n:,}"]
    verdict = p.verdict
    if verdict is None:
        parts[-1] += f"/{p.next_look:,} to look 1" if p.next_look else ""
    else:
        parts[-1] += f" look {p.look}"
        target = verdict.binding or next(iter(verdict.targets), None)
        if target is not None:
            unit = target.unit
            est = "-" if target.observed is None else f"{target.observed:.3g}"
            bounds = ""
            if target.quantile is not None:
                lo = "-" if target.lower is None else f"{target.lower:.3g}"
                hi = "-" if target.upper is None else f"{target.upper:.3g}"
                bounds = f" [{lo}, {hi}]"
            parts.append(f"{target.metric} {est} {unit}{bounds} vs {target.target:g} {unit}")
        parts.append(f"{verdict.decision.value} so far")
    parts.append(f"{p.elapsed_s:.1f} s, <= {p.time_left_s:.1f} s left")
    line = " | ".join(parts)
    if len(line) > width:  # the test's own name is enough, then keep the numbers
        line = " | ".join([f"latency {nodeid.rsplit('::', 1)[-1]}", *parts[1:]])
    if len(line) > width:
        line = "..." + line[len(line) - width + 3 :]
    return line
