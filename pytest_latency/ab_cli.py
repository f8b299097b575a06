"""The ``pytest-latency ab`` subcommand: options, the run, the reports, the exit status.

Exit statuses: 0 no regression, 1 a regression, 2 bad input (a bad option, an unknown base
revision, not a git checkout), 3 the measurement failed (a run errored, timed out or ran in
another environment than the others), 130 interrupted (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .ab_run import ABRunError, measure_rounds, repo_root, resolve_commit, rounds_of
from .core.ab import MAX_ROUNDS, MIN_ROUNDS, compare_rounds
from .core.env import git_info
from .core.regression import REGRESSION, parse_threshold
from .report import ab as render
from .report.markdown import write

EXIT_MEASUREMENT_FAILED = 3
EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by Ctrl-C
DEFAULT_ROUNDS = 5
DEFAULT_THRESHOLD = "5%"
DEFAULT_TIMEOUT_S = 900.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ab = sub.add_parser(
        "ab",
        help="measure base and head in alternating rounds in this job; exit 1 on a regression",
        description="Check out BASE in a temporary git worktree and run the selected tests of "
        "base and head (this checkout) alternately, ROUNDS times each (A B, B A, ...), each run "
        "an ordinary pytest --latency-json in a subprocess. Per test and targeted percentile "
        "(p50 and p99 when none): the ratio head/base with bounds from the per-round ratios. "
        "With --base HEAD (A/A) it reports the runner's noise floor. Exit status: 0 no "
        "regression, 1 a regression, 2 bad input, 3 a run failed or timed out, 130 interrupted.",
    )
    ab.add_argument("--base", required=True, help="the revision to compare with: origin/main")
    ab.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"rounds, each one run per side, 3 to 50 (default {DEFAULT_ROUNDS})",
    )
    ab.add_argument(
        "--threshold",
        default=DEFAULT_THRESHOLD,
        help="slowdown that counts as a regression, a percentage with a %% sign (default "
        f"{DEFAULT_THRESHOLD.replace('%', '%%')}); a test's slo(regression=...) still wins",
    )
    ab.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        help="confidence of each bound, in (0, 1), split over a test's percentiles (default 0.95)",
    )
    ab.add_argument(
        "--timeout-s",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"limit of each pytest run in seconds (default {DEFAULT_TIMEOUT_S:g})",
    )
    ab.add_argument("--json", metavar="PATH", help="write the gate's result document here")
    ab.add_argument(
        "--markdown",
        metavar="PATH",
        help="write a markdown summary; appended to $GITHUB_STEP_SUMMARY too when set",
    )
    ab.add_argument("--html", metavar="PATH", help="write an HTML report")
    ab.add_argument("-v", "--verbose", action="store_true", help="also the noise-floor table")
    ab.add_argument(
        "pytest_args",
        nargs=argparse.REMAINDER,
        metavar="-- PYTEST_ARGS",
        help="the pytest arguments of every run, after --: -- -m slo -p no:xdist",
    )
    ab.set_defaults(func=command)


def _validate(args: argparse.Namespace) -> tuple[float, list[str]]:
    threshold = parse_threshold(args.threshold)
    if not MIN_ROUNDS <= args.rounds <= MAX_ROUNDS:
        raise ValueError(
            f"--rounds {args.rounds!r} is not valid; expected {MIN_ROUNDS} to {MAX_ROUNDS}"
        )
    if not 0 < args.confidence < 1:
        raise ValueError(
            f"--confidence {args.confidence!r} is not valid; expected a number strictly "
            "between 0 and 1, e.g. 0.95"
        )
    if not 0 < args.timeout_s <= 86_400:
        raise ValueError(
            f"--timeout-s {args.timeout_s!r} is not valid; expected seconds in (0, 86400]"
        )
    pytest_args = list(args.pytest_args)
    if pytest_args[:1] == ["--"]:
        pytest_args = pytest_args[1:]
    for arg in pytest_args:
        if arg.startswith(("--latency-json", "--latency-save")):
            raise ValueError(
                f"{arg!r}: pytest-latency ab writes each run's report itself; use --json "
                "PATH for the gate's result"
            )
    return threshold, pytest_args


def command(args: argparse.Namespace) -> int:
    threshold, pytest_args = _validate(args)
    cwd = Path.cwd().resolve()
    repo = repo_root(cwd).resolve()
    base_commit = resolve_commit(repo, args.base)
    head = git_info(repo) or {"commit": "", "dirty": False}
    mode = "A/A" if base_commit == head["commit"] and not head["dirty"] else "A/B"
    print(
        f"pytest-latency ab: {mode}, base {args.base} ({base_commit[:12]}) vs head "
        f"{head['commit'][:12]}{' (dirty)' if head['dirty'] else ''}, {args.rounds} rounds",
        file=sys.stderr,
    )
    try:
        runs = measure_rounds(
            repo,
            cwd,
            base_commit,
            args.rounds,
            pytest_args,
            timeout_s=args.timeout_s,
            progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True),
        )
    except ABRunError as exc:
        print(f"pytest-latency ab: measurement failed: {exc}", file=sys.stderr)
        return EXIT_MEASUREMENT_FAILED
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM; the runs and worktree are gone
        print(f"pytest-latency ab: interrupted ({exc or 'Ctrl-C'})", file=sys.stderr)
        return EXIT_INTERRUPTED
    results = compare_rounds(rounds_of(runs), threshold=threshold, confidence=args.confidence)
    doc: dict[str, Any] = {
        "schema": render.SCHEMA,
        "mode": mode,
        "base": {"rev": args.base, "commit": base_commit},
        "head": {"commit": head["commit"], "dirty": bool(head["dirty"])},
        "rounds": args.rounds,
        "threshold": threshold,
        "confidence": args.confidence,
        "pytest_args": pytest_args,
        "runs": [r.to_dict() for r in runs],
        "environment": runs[0].report.get("environment") or {},
        "results": [r.to_dict() for r in results],
    }
    for line in render.terminal(doc, verbose=args.verbose):
        print(line)
    _write_outputs(args, doc)
    return 1 if any(r.classification == REGRESSION for r in results) else 0


def _write_outputs(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    if args.json:
        write(args.json, json.dumps(doc, indent=1) + "\n")
    if args.markdown:  # as --latency-markdown: the step summary gets the same text
        text = render.markdown(doc)
        write(args.markdown, text)
        if os.environ.get("GITHUB_STEP_SUMMARY"):
            write(os.environ["GITHUB_STEP_SUMMARY"], text, append=True)
    if args.html:
        write(args.html, render.html(doc))
