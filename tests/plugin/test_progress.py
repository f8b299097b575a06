"""The live progress line (``--latency-progress=auto|on|off``): shown on a real terminal, rewritten
in place and erased before pytest's own output continues; silent with -q, when piped, on
pytest-xdist workers, and when turned off."""

from __future__ import annotations

import gc
import importlib.util
import os
import select
import subprocess
import sys
import time

import pytest

from pytest_latency.core.runner import Progress, measure
from pytest_latency.core.spec import Spec
from pytest_latency.plugin.progress import LiveProgress, format_progress

# Three or more timed blocks (about 200 ms each): the runner reports between them.
SLOW = """
import time
import pytest

@pytest.mark.slo(p99_ms=50, warmup=0, min_samples=450)
def test_slow(latency):
    latency(time.sleep, 0.0015)
"""
PROGRESS_TEXT = "latency test_p.py::test_slow | n="


def run_on_a_terminal(pytester: pytest.Pytester, *args: str) -> str:
    """Run pytest in a subprocess whose stdout is a pseudo-terminal; return what it showed."""
    master, slave = os.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    env.pop("PY_COLORS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=pytester.path,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 120
    # Read until the child has exited and the terminal is drained. Not until EOF/EIO alone:
    # that comes only once every copy of the slave end is closed, and one CI run hung here
    # with the child gone and a copy still open in this process.
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif proc.poll() is not None:
            break  # exited, and nothing more to read
    else:
        proc.kill()
    proc.wait(timeout=60)
    os.close(master)
    return b"".join(chunks).decode(errors="replace")


def test_progress_line_is_shown_on_a_terminal_and_erased_before_the_result(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_p=SLOW)
    out = run_on_a_terminal(pytester)
    assert "\r" + PROGRESS_TEXT in out, out
    shown = out[out.index(PROGRESS_TEXT) :]
    assert "to look 1" in shown
    assert "s left" in shown
    # Erased with blanks, then pytest's own line is written back and continues.
    erased = shown.index("\r" + " " * 50)
    assert "test_p.py " in shown[erased:].split("\n", 1)[0]
    assert "1 passed" in out


@pytest.mark.parametrize("args", [("-q",), ("--latency-progress=off",)])
def test_terminal_shows_no_progress_line_with_quiet_or_off(
    pytester: pytest.Pytester, args: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_p=SLOW)
    out = run_on_a_terminal(pytester, *args)
    assert "1 passed" in out
    assert PROGRESS_TEXT not in out


def test_forced_on_shows_the_progress_line_when_output_is_not_a_terminal(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_p=SLOW)
    result = pytester.runpytest("--latency-progress=on")
    result.assert_outcomes(passed=1)
    assert PROGRESS_TEXT in result.stdout.str()  # (LineMatcher splits lines at "\r")


def test_forced_on_overrides_quiet(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_p=SLOW)
    result = pytester.runpytest("--latency-progress=on", "-q")
    assert PROGRESS_TEXT in result.stdout.str()


def test_no_progress_line_by_default_when_output_is_not_a_terminal(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_p=SLOW)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert PROGRESS_TEXT not in result.stdout.str()


def test_progress_mode_from_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nlatency_progress = on\n")
    pytester.makepyfile(test_p=SLOW)
    assert PROGRESS_TEXT in pytester.runpytest().stdout.str()


def test_a_bad_progress_mode_is_a_usage_error_naming_the_valid_ones(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_p=SLOW)
    result = pytester.runpytest("--latency-progress=sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*'sometimes' is not a valid --latency-progress / ini latency_progress. "
            "Valid: auto, on, off*"
        ]
    )


@pytest.mark.skipif(
    importlib.util.find_spec("xdist") is None,
    reason="needs pytest-xdist: pip install 'pytest-latency[test]'",
)
def test_xdist_workers_show_no_progress_line_even_when_forced_on(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_p=SLOW)
    result = pytester.runpytest_subprocess(
        "-n", "1", "-p", "xdist", "-p", "no:hypothesispytest", "--latency-progress=on"
    )
    result.assert_outcomes(passed=1)
    assert PROGRESS_TEXT not in result.stdout.str()


def test_runner_reports_between_timed_blocks_with_gc_back_on_and_ends_with_done() -> None:
    reports: list[tuple[Progress, bool]] = []
    spec = Spec(p99_ms=50, warmup=0, min_samples=450).resolved({})
    measure(
        time.sleep,
        (0.0015,),
        spec=spec,
        progress=lambda p: reports.append((p, gc.isenabled())),
    )
    assert len(reports) >= 3
    # GC is off inside timed blocks: seeing it on proves no report came from inside one.
    assert all(enabled for _, enabled in reports)
    assert [p.done for p, _ in reports] == [False] * (len(reports) - 1) + [True]
    assert reports[0][0].verdict is None
    assert reports[0][0].next_look == 450
    assert reports[-1][0].verdict is not None
    assert reports[-1][0].look >= 1
    ns = [p.n for p, _ in reports]
    assert ns == sorted(ns)


class _Writer:
    fullwidth = 60

    def __init__(self) -> None:
        self.out = ""
        self._current_line = "test_p.py .."

    def write(self, text: str, flush: bool = False) -> None:
        self.out += text


class _Reporter:
    def __init__(self) -> None:
        self._tw = _Writer()


def test_live_line_throttles_block_updates_but_shows_each_new_look_at_once() -> None:
    now = [0.0]
    reporter = _Reporter()
    line = LiveProgress(reporter, None, "t.py::test", clock=lambda: now[0])
    spec = Spec(p99_ms=50, warmup=0).resolved({})
    verdict = measure(sorted, ([2, 1],), spec=spec).verdict
    for i in range(10):  # ten block reports within 0.1 s: one write
        now[0] = i * 0.01
        line(Progress(100 + i, 0, None, now[0], 10.0, 348))
    assert reporter._tw.out.count("\r") == 1
    line(Progress(348, 1, verdict, 0.1, 9.9, 696))  # a new look: written at once
    assert reporter._tw.out.count("\r") == 2
    assert "look 1" in reporter._tw.out
    line(Progress(696, 2, verdict, 0.2, 9.8, 1392, done=True))
    # Erased, and pytest's own text for the line (and its width count) put back.
    assert reporter._tw.out.endswith("\rtest_p.py ..")
    assert reporter._tw._current_line == "test_p.py .."


def test_progress_text_names_the_binding_target_with_bounds_and_the_time_left() -> None:
    spec = Spec(p99_ms=50, p50_ms=40, warmup=0).resolved({})
    verdict = measure(sorted, ([2, 1],), spec=spec).verdict
    text = format_progress("t.py::test", Progress(1392, 2, verdict, 3.14, 26.86, 2784))
    binding = verdict.binding
    assert binding is not None
    assert text.startswith(f"latency t.py::test | n=1,392 look 2 | {binding.metric} ")
    assert " ms [" in text
    assert f"vs {binding.target:g} ms" in text
    assert text.endswith("PASS so far | 3.1 s, <= 26.9 s left")
    narrow = format_progress("tests/deep/dir/t.py::test_x", Progress(1, 0, None, 0, 1), 50)
    assert narrow == "latency test_x | n=1 | 0.0 s, <= 1.0 s left"
    assert len(format_progress("t.py::" + "x" * 300, Progress(1, 0, None, 0, 1), 80)) == 80
