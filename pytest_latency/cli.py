"""``pytest-latency``: re-render saved runs, and the A/B gate.

Every subcommand but ``ab`` reads JSON reports only and runs no tests; ``ab`` runs pytest in
child processes (`ab_cli`, `ab_run`) and reads their JSON reports.

pytest-latency show results.json        # the summary table, as pytest printed it
pytest-latency show results.json -v     # plus every target's table and the environment
pytest-latency compare before.json after.json --threshold 10%   # exit 1 on a regression
pytest-latency plot results.json -o report.html         # the HTML report with plots
pytest-latency plot before.json after.json -o cdf.png   # after overlaid on before (png/svg/pdf)
pytest-latency plan p99_ms=10 p999_ms=25 confidence=0.99 rate_rps=50 max_time_s=60
pytest-latency plan p99_ms=10 --call-ms 3               # samples and time per target
pytest-latency ab --base origin/main --rounds 5 -- -m slo   # base vs head, in this job
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Sequence
from pathlib import Path

from .ab_cli import add_parser as add_ab
from .core.plan import DEFAULT_CONFIDENCE, plan, undecidable
from .core.regression import (
    REGRESSION,
    SavedRun,
    describe_differences,
    env_differences,
    parse_threshold,
)
from .core.spec import Spec
from .report import plots
from .report.changes import change_legend, change_table, counts
from .report.html import match_saved_run, write_html
from .report.json_report import load_report
from .report.table import context_line, legend, render_columns, summary_rows, target_table


def _show(args: argparse.Namespace) -> int:
    report = load_report(args.path, rendered=True)
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
        prog="pytest-latency",
        description="Render saved pytest-latency JSON reports; gate head against a base commit.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print the verdict table of a saved run")
    show.add_argument("path", help="a file written by pytest --latency-json=PATH")
    show.add_argument("-v", "--verbose", action="store_true", help="every target and the env")
    show.add_argument("--strict", action="store_true", help="exit 1 when any result is not PASS")
    show.set_defaults(func=_show)
    _add_compare(sub)
    _add_plot_command(sub)
    _add_plan(sub)
    add_ab(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, ImportError) as exc:
        print(f"pytest-latency: error: {exc}", file=sys.stderr)
        return 2


# -- compare: two saved runs (kept in one block so other subcommands merge cleanly) --------


def _add_compare(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    compare = sub.add_parser(
        "compare",
        help="compare two saved runs percentile by percentile; exit 1 on a regression",
        description="Compare AFTER with BEFORE: per percentile a test targets (p50 and p99 "
        "when none), the ratio after/before with confidence bounds, classified regression, "
        "improvement, no change, inconclusive or new. Exit status: 0 no regression, "
        "1 a regression, 2 bad input.",
    )
    compare.add_argument(
        "before", help="the saved run to compare against: a file from --latency-save/--latency-json"
    )
    compare.add_argument(
        "after", help="the run to judge: a file from --latency-save/--latency-json"
    )
    compare.add_argument(
        "--threshold",
        default="10%",
        help="slowdown that counts as a regression, a percentage with a %% sign (default 10%%); "
        "a test's slo(regression=...) still wins",
    )
    compare.add_argument(
        "--confidence",
        type=float,
        default=None,
        help="confidence of each bound, in (0, 1) (default: each result's own, usually 0.95)",
    )
    compare.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> int:
    threshold = parse_threshold(args.threshold)
    if args.confidence is not None and not 0 < args.confidence < 1:
        raise ValueError(
            f"--confidence {args.confidence!r} is not valid; expected a number strictly "
            "between 0 and 1, e.g. 0.95"
        )
    before, after = load_report(args.before), load_report(args.after)
    saved = SavedRun.from_report(before)
    results = [r for r in after["results"] if not r.get("kind")]
    changes = [
        c.to_dict() for c in saved.compare(results, threshold=threshold, confidence=args.confidence)
    ]
    print(f"{args.after} vs {args.before}: {counts(changes)}")
    diffs = env_differences(saved.environment, after.get("environment") or {})
    if diffs:
        print(f"warning: the environments differ: {describe_differences(diffs)}")
    missing = saved.missing(results)
    if missing:
        print(f"{len(missing)} result(s) of {args.before} are not in {args.after}")
    if changes:
        print()
        for line in change_table(changes):
            print(line)
        print()
        confidences = {c["confidence"] for c in changes}
        for line in change_legend(confidences.pop() if len(confidences) == 1 else None):
            print(line)
    return 1 if any(c["classification"] == REGRESSION for c in changes) else 0


# -- plot: saved runs to images or the HTML report (one block, like compare) ---------------


MAX_IMAGE_ROWS = 40  # 5.2 inches a row at 100 dpi; Agg refuses images over 2**16 pixels
PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".html": "html", ".htm": "html"}


def _plot(args: argparse.Namespace) -> int:
    """Draw saved runs: one run, or B (after) overlaid on A (before, the saved run)."""
    if len(args.runs) > 2:
        raise ValueError(f"plot takes one run or two (before, after), not {len(args.runs)}")
    fmt = PLOT_FORMATS.get(Path(args.output).suffix.lower())
    if fmt is None:
        raise ValueError(
            f"-o {args.output!r}: the extension must name the format. Valid: "
            + ", ".join(PLOT_FORMATS)
        )
    threshold = parse_threshold(args.threshold)
    plots.require_matplotlib("pytest-latency plot")
    before = load_report(args.runs[0]) if len(args.runs) == 2 else None
    after = load_report(args.runs[-1], rendered=True)
    if args.match:
        after = {
            **after,
            "results": [r for r in after["results"] if args.match in r.get("nodeid", "")],
            "accuracy": [g for g in after.get("accuracy") or [] if args.match in g["nodeid"]],
            "comparisons": [
                c for c in after.get("comparisons") or [] if args.match in c.get("nodeid", "")
            ],
        }
    if fmt == "html":
        write_html(
            args.output,
            after,
            before,
            title=args.title,
            saved_name=args.runs[0] if before else None,
            threshold=threshold,
        )
        print(f"{args.output}: HTML report of {len(after['results'])} measurement(s)")
        return 0
    results = [r for r in after["results"] if r.get("n")]
    if not results:
        found = len(after["results"])
        raise ValueError(
            f"{args.runs[-1]}: no measurement with samples to plot ({found} result(s)"
            + (f" matching {args.match!r}" if args.match else "")
            + "); list them with: pytest-latency show "
            + args.runs[-1]
        )
    if fmt != "pdf" and len(results) > MAX_IMAGE_ROWS:
        raise ValueError(
            f"{len(results)} measurements make an image too tall to draw (at most "
            f"{MAX_IMAGE_ROWS} rows); pick some with -k TEXT, or write .pdf (a page each) or "
            ".html"
        )
    saved_runs = match_saved_run(results, before)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pdf":  # one page per measurement
        # matplotlib: an optional dependency (the report extra), checked above
        from matplotlib.backends.backend_pdf import PdfPages

        with PdfPages(args.output, metadata={"CreationDate": None, "Creator": None}) as pdf:
            for result, saved in zip(results, saved_runs, strict=True):
                pdf.savefig(plots.measurement_figure(result, saved))
    else:
        figure = plots.runs_figure(results, saved_runs)
        Path(args.output).write_bytes(plots.figure_bytes(figure, fmt))
    overlaid = sum(b is not None for b in saved_runs)
    print(
        f"{args.output}: {len(results)} measurement(s)"
        + (f", {overlaid} overlaid on {args.runs[0]}" if before is not None else "")
    )
    return 0


def _add_plot_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plot = sub.add_parser(
        "plot",
        help="plot saved runs to PNG/SVG/PDF or an HTML report; B is overlaid on A",
        description="Plot saved runs (files written by pytest --latency-json=PATH). With two "
        "runs, the second (after) is drawn over the first (before, in grey). The output's "
        "extension picks the format: " + ", ".join(PLOT_FORMATS) + ".",
    )
    plot.add_argument("runs", nargs="+", metavar="RUN.json", help="A.json [B.json]")
    plot.add_argument("-o", "--output", required=True, help="file to write: .png .svg .pdf .html")
    plot.add_argument("-k", "--match", help="only tests whose node id contains this text")
    plot.add_argument("--title", default="pytest-latency report", help="HTML page title")
    plot.add_argument(
        "--threshold",
        default="10%",
        help="with two runs, the HTML page's change table: a slowdown that counts as a "
        "regression, as in compare (default 10%%)",
    )
    plot.set_defaults(func=_plot)


# -- plan: samples and time each target of a marker needs ------------------------------------


def _add_plan(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plan = sub.add_parser(
        "plan",
        help="how many samples, and how long, each target of a marker needs",
        description="Give the marker's keywords as KEY=VALUE (p99_ms=10 confidence=0.99 "
        "rate_rps=50 max_time_s=60). Exit 1 when a target cannot be decided within the "
        "budget (max_samples, max_time_s).",
    )
    plan.add_argument("keywords", nargs="+", metavar="KEY=VALUE", help="the marker's keywords")
    plan.add_argument(
        "--call-ms",
        type=float,
        help="a closed loop's time per call, for the time column (an open loop uses rate_rps)",
    )
    plan.set_defaults(func=_plan)


def _plan(args: argparse.Namespace) -> int:
    kwargs = {}
    for item in args.keywords:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{item!r} is not KEY=VALUE, e.g. p99_ms=10")
        try:
            kwargs[key.strip()] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            kwargs[key.strip()] = raw.strip()  # a word, e.g. arrivals=constant
    if args.call_ms is not None and not args.call_ms > 0:
        raise ValueError(f"--call-ms {args.call_ms!r} is not valid; expected milliseconds > 0")
    spec = Spec.from_kwargs(**kwargs)
    rows = plan(spec, args.call_ms)
    if not rows:
        raise ValueError("no percentile target to plan: give one, e.g. p99_ms=10")
    header = ["target", "fewest samples", *[f"{k} over" for k, _ in rows[0].with_exceedances]]
    header += ["time (fewest)", "fits the budget"]
    table = []
    for p in rows:
        time_text = "-" if p.seconds is None else f"{p.seconds:,.1f} s"
        fits = {True: "yes", False: "NO", None: "samples yes; time unknown"}[p.fits]
        more = [f"{n:,}" for _, n in p.with_exceedances]
        table.append([p.target, f"{p.min_samples:,}", *more, time_text, fits])
    confidence = spec.confidence if spec.confidence is not None else DEFAULT_CONFIDENCE
    print(
        f"at {confidence * 100:g}% confidence; budget: max_samples={rows[0].max_samples:,}, "
        f"max_time_s={rows[0].max_time_s:g}"
    )
    for line in render_columns(header, table):
        print(line)
    reasons = undecidable(spec, args.call_ms)
    for reason in reasons:
        print(f"cannot be decided: {reason}")
    return 1 if reasons else 0


if __name__ == "__main__":
    raise SystemExit(main())
