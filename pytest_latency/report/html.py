"""The HTML report (``--latency-html=PATH``, ``pytest-latency plot ... -o report.html``).

One self-contained file: CSS inline, plots embedded as base64 PNG (drawn by matplotlib, see
`plots`), no scripts, nothing fetched. Input is a saved report's dict (`json_report`), so a
live run and ``pytest-latency plot`` render the same page. With a saved run to compare
against, each measurement is matched to the saved run's by test id and name, its plots overlay
the two runs and its percentile table gains the saved run and the change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.regression import DEFAULT_THRESHOLD, SavedRun, compare_result
from . import plots
from .html_parts import (
    accuracy_section,
    changes_table,
    classification,
    comparisons_table,
    environment_table,
    esc,
    facts_line,
    img,
    num,
    percentiles_table,
    stages_table,
    table,
    targets_table,
    verdict,
)

Row = Mapping[str, Any]

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: #1f2328; margin: 0 auto; max-width: 1340px; padding: 16px 24px; }
h1 { font-size: 24px; margin: 4px 0 6px; } h2 { font-size: 20px; margin: 28px 0 8px;
     border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 26px 0 4px; word-break: break-all; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: right; }
th { background: #f6f8fa; } td.l, th.l { text-align: left; }
.PASS { color: #1a7f37; } .FAIL { color: #cf222e; } .INCONCLUSIVE { color: #9a6700; }
.badge { font-weight: 600; padding: 1px 8px; border-radius: 10px; border: 1px solid; }
.muted { color: #59636e; font-size: 13px; } .summary { font-weight: 600; margin: 2px 0; }
img { width: 100%; height: auto; display: block; margin: 4px 0; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12px; }
.grid { display: flex; gap: 28px; flex-wrap: wrap; align-items: flex-start; }
"""

LEGEND = (
    "Plots: <b>latency distribution</b> (share of samples per bin); <b>tail</b> (share of "
    "samples at or over each latency, log scale: a target p<i>q</i> &le; <i>T</i> is met "
    "when the curve passes left of <i>T</i> at height 1&minus;<i>q</i>; the dot is the "
    "nearest-rank estimate, the bar its one-sided confidence bounds, open-ended where the "
    "sample count gives no bound); <b>every sample</b> in completion order with the cold "
    "start (first call) as a star. Dashed lines are targets, coloured by verdict. Latency "
    "axes turn logarithmic when the tail needs it: the histogram's when the maximum is over "
    "10&times; the median; the others' also when p99 is over 3&times; p50 or a target is "
    "over 3&times; away from the median. A saved run, when given, is drawn in grey."
)


def label(result: Row) -> str:
    nodeid = result.get("nodeid") or result.get("name") or "?"
    return f"{nodeid} ({result['name']})" if result.get("named") else str(nodeid)


def match_saved_run(results: Sequence[Row], saved: Row | None) -> list[Row | None]:
    """For each result, the saved run's result of the same test id and name, else ``None``;
    a test measured twice under one name pairs up in order. The same rule as the regression
    check's (`core.regression.SavedRun`), so what is overlaid is what was compared."""
    if not saved:
        return [None] * len(results)
    index = SavedRun.from_report(saved)
    seen: list[tuple[Any, Any]] = []
    out: list[Row | None] = []
    for r in results:
        key = (r.get("nodeid"), r.get("name"))
        out.append(index.counterpart(r, seen.count(key)))
        seen.append(key)
    return out


def saved_run_changes(
    results: Sequence[Row], matched: Sequence[Row | None], threshold: float | None
) -> list[Row]:
    """Each result's change against its counterpart in the saved run (`core.regression`): the
    one the live run recorded under ``--latency-compare``, else computed here
    (``pytest-latency plot`` with two runs) at `threshold` (default 10 %; a test's
    ``slo(regression=)`` wins)."""
    limit = DEFAULT_THRESHOLD if threshold is None else threshold
    return [
        r.get("regression") or compare_result(b, r, threshold=limit).to_dict()
        for r, b in zip(results, matched, strict=True)
    ]


def _measurement(index: int, result: Row, saved: Row | None, change: Row | None) -> str:
    outcome = result.get("outcome")
    shown = f" ({outcome})" if outcome in ("xfailed", "skipped") else ""
    parts = [
        f'<h3 id="m{index}">{esc(label(result))} {verdict(result["decision"], shown)}</h3>',
        f'<p class="summary {esc(result["decision"])}">{esc(result.get("summary", ""))}</p>',
        facts_line(result),
    ]
    if change is not None and saved is None:
        parts.append('<p class="muted">saved run: no measurement with this test id and name</p>')
    if result.get("n"):
        fig = plots.measurement_figure(result, saved, title=False)
        parts.append(img(plots.figure_bytes(fig), f"latency plots of {label(result)}"))
    else:
        parts.append('<p class="muted">no successful samples: nothing to plot</p>')
    parts.append(
        '<div class="grid">'
        + "<div><b>targets</b>"
        + targets_table(result)
        + "</div><div><b>percentiles</b>"
        + percentiles_table(result, saved)
        + "</div>"
        + stages_table(result)
        + (changes_table(change) if change is not None and saved is not None else "")
        + "</div>"
    )
    for problem in result.get("problems") or []:
        parts.append(f'<p class="FAIL">{esc(problem)}</p>')
    if result.get("first_error"):
        parts.append(f"<b>first error</b><pre>{esc(result['first_error'])}</pre>")
    return "\n".join(parts)


def _overview(results: Sequence[Row], changes: Sequence[Row] | None) -> str:
    rows = []
    for i, r in enumerate(results):
        pct = r.get("percentiles_ms") or {}
        lo, hi = (r.get("percentile_bounds_ms") or {}).get("p99") or (None, None)
        rows.append(
            [
                f'<a href="#m{i}">{esc(label(r))}</a>',
                str(r.get("n")),
                num(pct.get("p50")),
                num(pct.get("p99")),
                f"[{num(lo)}, {num(hi)}]",
                verdict(r["decision"]),
                esc(r.get("outcome", "")),
                *([classification(changes[i]["classification"])] if changes else []),
            ]
        )
    header = ["test", "n", "p50 ms", "p99 ms", "p99 bounds", "verdict", "test outcome"]
    return table(header + (["vs saved run"] if changes else []), rows)


def render_html(
    report: Row,
    saved: Row | None = None,
    *,
    title: str = "pytest-latency report",
    saved_name: str | None = None,
    notes: Sequence[str] = (),
    threshold: float | None = None,
) -> str:
    """The whole page as a string (needs matplotlib; see `plots.require_matplotlib`)."""
    plots.require_matplotlib("the HTML report's plots")
    results = list(report.get("results") or [])
    gates = list(report.get("accuracy") or [])
    comparisons = list(report.get("comparisons") or [])
    matched = match_saved_run(results, saved)
    changes = saved_run_changes(results, matched, threshold) if saved is not None else None
    counts = {d: sum(r["decision"] == d for r in [*results, *gates]) for d in plots.COLOURS}
    env = report.get("environment") or {}
    git = env.get("git") or {}
    head = (
        f"{len(results)} measurement(s), {len(gates)} accuracy gate(s), "
        f"{len(comparisons)} comparison(s); "
        + ", ".join(f'<span class="{d}">{n} {d}</span>' for d, n in counts.items() if n)
        + f"; created {esc(env.get('created', '?'))}, commit "
        f"{esc((git.get('commit') or '-')[:12])}{' (dirty)' if git.get('dirty') else ''}"
    )
    body = [f"<h1>{esc(title)}</h1>", f'<p class="muted">{head}</p>']
    if saved is not None:
        found = sum(m is not None for m in matched)
        body.append(
            f'<p class="muted">saved run: {esc(saved_name or "given run")} '
            f"({found} of {len(results)} measurement(s) matched by test id and name), created "
            f"{esc((saved.get('environment') or {}).get('created', '?'))}</p>"
        )
    body += [f'<p class="muted">{esc(note)}</p>' for note in notes]
    if results:
        body += [
            "<h2>Latency measurements</h2>",
            _overview(results, changes),
            f'<p class="muted">{LEGEND}</p>',
        ]
        body += [
            _measurement(i, r, b, changes[i] if changes else None)
            for i, (r, b) in enumerate(zip(results, matched, strict=True))
        ]
    if comparisons:
        body += ["<h2>Same-run comparisons</h2>", comparisons_table(comparisons)]
    if gates:
        body += ["<h2>Accuracy gates</h2>", accuracy_section(gates)]
    body += ["<h2>Environment</h2>", environment_table(report)]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_html(
    path: str | os.PathLike[str],
    report: Row,
    saved: Row | None = None,
    **kwargs: Any,
) -> Path:
    """Render and write atomically (a reader never sees half a page)."""
    text = render_html(report, saved, **kwargs)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target
