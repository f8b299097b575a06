"""``pytest-latency ab`` end to end: a tiny git repository whose head commit is slower than
its base, measured in alternating rounds of real pytest runs; the A/A case; a run that hangs;
bad input; the environment check."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_latency.ab_run import ABRunError, Run, _check_environment, side_env
from pytest_latency.cli import main

SUITE = """
import pytest

FACTOR = {factor}


def spin(n):
    total = 0
    for i in range(n):
        total += i
    return total


@pytest.mark.slo(p50_ms={ms}, p99_ms={ms}, min_samples=1500, max_samples=1500, warmup=50)
def test_spin(latency):
    latency(spin, 400 * FACTOR)
"""
# Short runs: only the plugins the suite needs.
FAST = ["-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:xdist"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, timeout=60
    ).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """base: the spin loop; head (HEAD): the same loop three times as long, and targets
    it cannot meet (its runs end with pytest status 1, and still compare)."""
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "ab@example.invalid")
    _git(root, "config", "user.name", "ab")
    (root / "test_spin.py").write_text(SUITE.format(factor=1, ms=1000))
    _git(root, "add", "test_spin.py")
    _git(root, "commit", "-qm", "base")
    (root / "test_spin.py").write_text(SUITE.format(factor=3, ms=0.001))
    _git(root, "commit", "-qam", "head: three times the work")
    monkeypatch.chdir(root)
    scratch = tmp_path / "scratch"  # the worktree's temporary folder lands here
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return root


def _no_worktree_left(repo: Path) -> None:
    assert len(_git(repo, "worktree", "list").splitlines()) == 1
    assert not list((repo.parent / "scratch").iterdir())


def test_a_slower_head_fails_the_gate_and_every_report_says_so(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = repo.parent / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = repo.parent / "out"
    status = main(
        ["ab", "--base", "HEAD~1", "--rounds", "3", "--json", str(out / "ab.json"),
         "--markdown", str(out / "ab.md"), "--html", str(out / "ab.html"), "--", *FAST]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert status == 1, captured.out + captured.err
    doc = json.loads((out / "ab.json").read_text())
    assert doc["mode"] == "A/B"
    assert [r["side"] for r in doc["runs"]] == ["base", "head", "head", "base", "base", "head"]
    (result,) = doc["results"]
    assert result["nodeid"] == "test_spin.py::test_spin"
    p50 = result["changes"][0]
    assert p50["metric"] == "p50"
    assert p50["classification"] == "regression"
    assert p50["lower"] > 1.05
    assert p50["rounds"] == 3
    assert p50["n_base"] == p50["n_head"] == 3 * 1500
    assert "1 regression" in captured.out
    assert "test_spin.py::test_spin  p50" in captured.out
    assert "round 3/3 head: " in captured.err
    assert "note: 0 base and 3 head run(s) had failing tests" in captured.out
    markdown = (out / "ab.md").read_text()
    assert markdown.startswith("## pytest-latency A/B gate\n\n❌ A/B gate")
    assert summary.read_text() == "earlier step\n\n" + markdown
    assert "regression</span>" in (out / "ab.html").read_text()
    _no_worktree_left(repo)


def test_a_a_gate_passes_and_reports_the_noise_floor(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The mechanics of A/A, on the p50 alone: one CI run (tox, 3 rounds of 25 us calls) read
    # a p99 of 1.32x [1.23, 1.42] between two checkouts of the same commit, consistent over
    # the rounds and not reproduced since; the p99 in A/A is an open question (docs/ci.md).
    suite = SUITE.replace("p50_ms={ms}, p99_ms={ms}", "p50_ms={ms}")
    (repo / "test_spin.py").write_text(suite.format(factor=3, ms=1000))
    _git(repo, "commit", "-qam", "p50 only")
    status = main(["ab", "--base", "HEAD", "--rounds", "3", "--", *FAST])
    captured = capsys.readouterr()
    assert status == 0, captured.out + captured.err
    assert captured.out.startswith("A/A gate: head ")
    assert "regression" not in captured.out.splitlines()[0]
    assert "noise floor: the smallest slowdown caught 9 times in 10 at threshold 0" in captured.out
    assert "3 rounds  5 rounds  8 rounds" in captured.out
    _no_worktree_left(repo)


def test_a_run_past_its_timeout_is_stopped_and_the_worktree_removed(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "test_spin.py").write_text("import time\n\ndef test_hangs():\n    time.sleep(60)\n")
    status = main(["ab", "--base", "HEAD", "--rounds", "3", "--timeout-s", "4", "--", *FAST])
    err = capsys.readouterr().err
    assert status == 3, err
    assert "round 1/3 head: pytest ran past --timeout-s 4 and was stopped" in err
    assert "round 1/3 base: " in err  # the base ran first, and normally
    _no_worktree_left(repo)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--base", "no-such-branch"], "--base 'no-such-branch' is not a commit of"),
        (["--base", "HEAD", "--rounds", "2"], "--rounds 2 is not valid; expected 3 to 50"),
        (["--base", "HEAD", "--threshold", "0.05"], "'0.05' is not a valid threshold"),
        (["--base", "HEAD", "--confidence", "1"], "--confidence 1.0 is not valid"),
        (["--base", "HEAD", "--", "--latency-json=x.json"], "writes each run's report itself"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(
    repo: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["ab", *args]) == 2
    assert message in capsys.readouterr().err
    _no_worktree_left(repo)


def test_outside_a_git_checkout_the_command_says_where_to_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert main(["ab", "--base", "main"]) == 2
    assert "is not inside a git repository" in capsys.readouterr().err


def _run(side: str, **env: Any) -> Run:
    fingerprint = {"cpu_model": "X", "cpu_count": 2, "cpu_affinity": 2, "python": "3.11.7"}
    return Run(1, side, 1.0, 0, {"results": [], "environment": fingerprint | env})


def test_runs_on_different_machines_are_refused_with_the_differing_fields() -> None:
    _check_environment([_run("base"), _run("head")])  # the same machine: accepted
    with pytest.raises(ABRunError, match=r"cpu_count 2 -> 4.*one machine"):
        _check_environment([_run("base"), _run("head", cpu_count=4)])


def test_pythonpath_entries_in_the_head_checkout_point_into_the_base_worktree(
    tmp_path: Path,
) -> None:
    head, base = tmp_path / "head", tmp_path / "wt" / "base"
    env = {"PYTHONPATH": f"{head / 'src'}:/opt/lib", "HOME": "/root"}
    out = side_env(env, head, base)
    assert out["PYTHONPATH"] == f"{base / 'src'}:/opt/lib"
    assert out["HOME"] == "/root"
    assert side_env(env, head, head) == env


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_gate_stops_its_run_and_removes_the_worktree(
    repo: Path, sig: signal.Signals
) -> None:
    """Ctrl-C at the terminal, or a CI runner cancelling the job, mid-run."""
    (repo / "test_spin.py").write_text("import time\n\ndef test_waits():\n    time.sleep(60)\n")
    env = {**os.environ, "TMPDIR": str(repo.parent / "scratch")}
    cmd = [sys.executable, "-m", "pytest_latency.cli", "ab", "--base", "HEAD", "--", *FAST]
    # A shell without job control starts background jobs with SIGINT ignored, and Python keeps
    # an ignored SIGINT: give the command the default, so the Ctrl-C reaches it however this
    # run was started (a CI run started with `cmd &` in a script failed here with status 3).
    proc = subprocess.Popen(
        cmd,
        cwd=repo,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_git(repo, "worktree", "list").splitlines()) < 2:  # the base is checked out
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(3)  # into round 1: the base's run, then the head's that never ends
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "pytest-latency ab: interrupted" in err
    _no_worktree_left(repo)
