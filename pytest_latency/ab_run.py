"""``pytest-latency ab``: measure base and head in one job, in alternating rounds.

    pytest-latency ab --base origin/main --rounds 5 --threshold 5% -- -m slo -p no:xdist

The base commit is checked out in a temporary git worktree (removed on every path, Ctrl-C
and SIGTERM included); each round runs the selected tests once per side, in the order A B,
B A, A B, ... (`core.ab.schedule`), each run an ordinary ``pytest --latency-json`` in a
subprocess with a timeout. The statistics are `core.ab`'s; the renderers `report.ab`'s.

Runs no pytest in this process and imports no plugin: a run is a child process, and what
comes back is its JSON report.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from .core.ab import BASE, HEAD, schedule
from .core.regression import describe_differences, env_differences
from .report.json_report import load_report

GIT_TIMEOUT_S = 120.0  # a worktree checkout of a large repository takes a while
KILL_GRACE_S = 5.0
# pytest's exit statuses that still leave a report worth comparing: all passed, some failed
# (an SLO missed still measured its samples).
USABLE_EXIT = {0: "passed", 1: "some tests failed"}


class ABRunError(Exception):
    """A run could not be measured or compared (exit status 3 of the CLI)."""


def _git(repo: Path, *args: str) -> str:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
        )
    except FileNotFoundError:
        raise ValueError(
            "git is not installed or not on PATH; pytest-latency ab needs it"
        ) from None
    except subprocess.TimeoutExpired:
        raise ABRunError(f"git {' '.join(args)} took over {GIT_TIMEOUT_S:g} s") from None
    if proc.returncode:
        raise ValueError(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout.strip()


def repo_root(cwd: Path) -> Path:
    try:
        return Path(_git(cwd, "rev-parse", "--show-toplevel"))
    except ValueError:
        raise ValueError(
            f"{cwd} is not inside a git repository; run pytest-latency ab from the checkout "
            "of the head (the version to judge)"
        ) from None


def resolve_commit(repo: Path, rev: str) -> str:
    """``origin/main`` -> its full commit id, or a `ValueError` naming the revision."""
    if not rev or rev.startswith("-"):
        raise ValueError(f"--base {rev!r} is not a valid revision; expected e.g. origin/main")
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except ValueError:
        raise ValueError(
            f"--base {rev!r} is not a commit of {repo}; expected a branch, tag or commit id "
            "(fetch it first in a shallow CI checkout: git fetch origin main)"
        ) from None


@contextmanager
def base_worktree(repo: Path, commit: str) -> Iterator[Path]:
    """A detached worktree of `commit` in a temporary folder, removed however the block ends."""
    holder = Path(tempfile.mkdtemp(prefix="pytest-latency-ab-"))
    path = holder / "base"
    try:
        _git(repo, "worktree", "add", "--detach", "--quiet", str(path), commit)
        yield path
    finally:
        removed = False
        try:
            if path.exists():
                _git(repo, "worktree", "remove", "--force", str(path))
                removed = True
        except (ValueError, ABRunError):
            pass  # deleted below, and git's record of it pruned
        finally:
            shutil.rmtree(holder, ignore_errors=True)
            if not removed:  # prune only then: it also drops other stale worktrees' records
                with suppress(ValueError, ABRunError):
                    _git(repo, "worktree", "prune")


@dataclass
class Run:
    """One pytest run of one side in one round."""

    round: int  # from 1
    side: str
    seconds: float
    exit_status: int
    report: dict[str, Any] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "side": self.side,
            "seconds": round(self.seconds, 3),
            "exit_status": self.exit_status,
            "measurements": len(self.report.get("results") or []),
        }


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the run's process group, then SIGKILL whatever is left of it (servers the tests
    started and did not stop)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def side_env(env: dict[str, str], head_root: Path, side_root: Path) -> dict[str, str]:
    """The child's environment: PYTHONPATH entries inside the head's checkout point into the
    side's own checkout, so each side imports its own code from there."""
    raw = env.get("PYTHONPATH")
    if not raw or side_root == head_root:
        return dict(env)
    out = []
    for entry in raw.split(os.pathsep):
        p = Path(entry or ".").resolve()
        if p == head_root or head_root in p.parents:
            out.append(str(side_root / p.relative_to(head_root)))
        else:
            out.append(entry)
    return {**env, "PYTHONPATH": os.pathsep.join(out)}


def run_pytest(
    cwd: Path,
    pytest_args: Sequence[str],
    json_path: Path,
    *,
    timeout_s: float,
    env: dict[str, str],
    label: str,
) -> tuple[int, float, dict[str, Any]]:
    """One ``pytest --latency-json`` in a child process group: (exit status, seconds, report)."""
    log = json_path.with_suffix(".log")
    cmd = [sys.executable, "-m", "pytest", *pytest_args, f"--latency-json={json_path}"]
    start = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            status = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise ABRunError(
                f"{label}: pytest ran past --timeout-s {timeout_s:g} and was stopped; raise "
                f"--timeout-s or select fewer tests. Its output ended:\n{_tail(log)}"
            ) from None
        except BaseException:  # Ctrl-C, SIGTERM: take the run's processes down with us
            _kill_group(proc)
            raise
        with suppress(ProcessLookupError):  # nothing of a run may live into the next one
            os.killpg(proc.pid, signal.SIGKILL)
    seconds = time.monotonic() - start
    if status not in USABLE_EXIT:
        why = {2: "interrupted or a collection error", 4: "a usage error", 5: "no tests ran"}
        raise ABRunError(
            f"{label}: pytest exited with status {status} ({why.get(status, 'an error')}); "
            f"command: {' '.join(cmd)}\nits output ended:\n{_tail(log)}"
        )
    try:
        report = load_report(json_path)
    except ValueError as exc:
        raise ABRunError(f"{label}: no usable --latency-json report: {exc}") from None
    if not [r for r in report["results"] if not r.get("kind")]:
        raise ABRunError(
            f"{label}: the selected tests made no latency measurement; select SLO tests "
            "after --, e.g. -- -m slo"
        )
    return status, seconds, report


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A CI runner cancels with SIGTERM: unwind like Ctrl-C so the worktree goes too."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def measure_rounds(
    repo: Path,
    cwd: Path,
    base_commit: str,
    rounds: int,
    pytest_args: Sequence[str],
    *,
    timeout_s: float,
    progress: Callable[[str], None] = lambda line: None,
    env: dict[str, str] | None = None,
) -> list[Run]:
    """Run the rounds (head in `cwd` of the checkout `repo`, base in a worktree of
    `base_commit`); refuse runs whose environment fingerprints differ."""
    order = schedule(rounds)
    env = dict(os.environ if env is None else env)
    runs: list[Run] = []
    with _sigterm_as_interrupt(), base_worktree(repo, base_commit) as base_root:
        where = {HEAD: cwd, BASE: base_root / cwd.relative_to(repo)}
        envs = {HEAD: env, BASE: side_env(env, repo.resolve(), base_root)}
        with tempfile.TemporaryDirectory(prefix="pytest-latency-ab-runs-") as tmp:
            for i, sides in enumerate(order, start=1):
                for side in sides:
                    label = f"round {i}/{rounds} {side}"
                    status, seconds, report = run_pytest(
                        where[side],
                        pytest_args,
                        Path(tmp) / f"round{i}-{side}.json",
                        timeout_s=timeout_s,
                        env=envs[side],
                        label=label,
                    )
                    runs.append(Run(i, side, seconds, status, report))
                    progress(f"{label}: {seconds:.1f} s, {USABLE_EXIT[status]}")
                    _check_environment(runs)
    return runs


def _check_environment(runs: Sequence[Run]) -> None:
    first, last = runs[0], runs[-1]
    diffs = env_differences(
        first.report.get("environment") or {}, last.report.get("environment") or {}
    )
    if diffs:
        raise ABRunError(
            f"round {last.round} {last.side} ran in another environment than round "
            f"{first.round} {first.side}: {describe_differences(diffs)}. Both sides must run "
            "on one machine with one set of packages for their latencies to compare."
        )


def rounds_of(runs: Sequence[Run]) -> list[dict[str, list[dict[str, Any]]]]:
    """Runs -> ``[{"base": results, "head": results}, ...]`` for `core.ab.compare_rounds`."""
    out: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for run in runs:
        out.setdefault(run.round, {})[run.side] = list(run.report.get("results") or [])
    return [out[k] for k in sorted(out)]
