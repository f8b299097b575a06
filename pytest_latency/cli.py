"""``pytest-latency``: re-render saved runs. Reads JSON reports only; runs no tests.

pytest-latency show results.json        # the summary table, as pytest printed it
pytest-latency show results.json -v     # plus every target's table and the environment
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .report.json_report import load_report
from .report.table import context_line, legend, summary_rows, target_table


def _show(args: argparse.Namespace) -> int:
    report = load_report(args.path)
    results = report["results"]
    env = report.get("environment", {})
    git = env.get("git") or {}
    print(
        f"{args.path}: {len(results)} measurement(s); {env.get('cpu_model')} x"
        f"{env.get('cpu_affinity')}, Python {env.get('python')}, "
        f"commit {(git.get('commit') or '-')[:12]}{' (dirty)' if git.get('dirty') else ''}, "
        f"{env.get('created')}"
    )
    if not results:
        return 0
    for line in summary_rows(results):
        print(line)
    if args.verbose:
        for r in results:
            print(f"\n{r['nodeid']} ({r['name']}): {r['summary']}")
            for line in target_table(r):
                print("  " + line)
            print("  " + context_line(r))
        print("\nenvironment:")
        for key, value in env.items():
            print(f"  {key}: {value}")
    print()
    confidences = {r["confidence"] for r in results}
    for line in legend(confidences.pop() if len(confidences) == 1 else None):
        print(line)
    return 1 if any(r["decision"] != "PASS" for r in results) and args.strict else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pytest-latency", description="Render saved pytest-latency JSON reports."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print the verdict table of a saved run")
    show.add_argument("path", help="a file written by pytest --latency-json=PATH")
    show.add_argument("-v", "--verbose", action="store_true", help="every target and the env")
    show.add_argument("--strict", action="store_true", help="exit 1 when any result is not PASS")
    show.set_defaults(func=_show)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ValueError as exc:
        print(f"pytest-latency: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
