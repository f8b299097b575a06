"""Renderers of an A/B gate (``pytest-latency ab``): terminal table, markdown, HTML.

Input is the document the command writes with ``--json`` (`document`): its ``results`` are
`core.ab.ABResult.to_dict` forms, so every renderer shows the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core.ab import detectable_at
from .changes import ms, sort_key
from .html_parts import esc, table
from .markdown import _table, environment_line
from .table import render_columns

Row = Mapping[str, Any]
SCHEMA = "pytest-latency-ab/1"
PROJECTED_ROUNDS = (3, 5, 8, 12, 20)


def ratio_text(c: Row) -> str:
    """``1.12x [1.06, 1.18]``: the ratio head/base and its one-sided bounds."""
    if c.get("ratio") is None:
        return "-"
    if c.get("lower") is None:
        return f"{c['ratio']:.3f}x [-, -]"
    return f"{c['ratio']:.3f}x [{c['lower']:.3f}, {c['upper']:.3f}]"


def percent(value: float | None) -> str:
    """A noise floor: ``9.5%``; past 1000 % the figure says only that nothing is detectable."""
    if value is None:
        return "-"
    return ">1000%" if value > 10 else f"{value:.1%}"


def _floor(c: Row) -> str:
    return percent(c.get("detectable"))


def cells(results: Sequence[Row]) -> list[list[str]]:
    """test, percentile, base ms, head ms, ratio [bounds], rounds, noise floor, change."""
    rows = []
    for r in sorted(results, key=sort_key):
        if not r["changes"]:
            rows.append([r["label"], "-", "-", "-", "-", "-", "-", r["classification"]])
        for c in r["changes"]:
            rows.append(
                [
                    r["label"],
                    c["metric"],
                    ms(c["base_ms"]),
                    ms(c["head_ms"]),
                    ratio_text(c),
                    str(c["rounds"]),
                    _floor(c),
                    c["classification"],
                ]
            )
    return rows


HEADER = [
    "test",
    "percentile",
    "base ms",
    "head ms",
    "head/base [bounds]",
    "rounds",
    "noise floor",
    "change",
]
RIGHT = [False, False, True, True, True, True, True, False]


def counts(results: Sequence[Row]) -> str:
    found: dict[str, int] = {}
    for r in results:
        found[r["classification"]] = found.get(r["classification"], 0) + 1
    order = ("regression", "inconclusive", "improvement", "no change")
    return ", ".join(f"{found[k]} {k}" for k in order if k in found) or "nothing compared"


def headline(doc: Row) -> str:
    base, head = doc["base"], doc["head"]
    return (
        f"{doc['mode']} gate: head {head['commit'][:12]}{' (dirty)' if head['dirty'] else ''}"
        f" vs base {base['rev']} ({base['commit'][:12]}), {doc['rounds']} rounds, threshold "
        f"{doc['threshold']:.1%}: {counts(doc['results'])}"
    )


def legend(doc: Row) -> list[str]:
    conf = f"{doc['confidence'] * 100:g}%"
    return [
        "legend: head/base = exp(mean over rounds of ln(head percentile / base percentile)), "
        "each round's percentile from",
        f"  that round's samples; bounds = one-sided {conf} each (Student's t over the rounds; "
        "the error split over the percentiles);",
        "  regression: lower bound > 1 + threshold; improvement: upper < 1 / (1 + threshold); "
        "no change: both within;",
        "  noise floor: the slowdown these rounds would catch 9 times in 10 at threshold 0.",
    ]


def noise_rows(results: Sequence[Row], alpha_of: float) -> list[list[str]]:
    """Per test and percentile: the noise floor projected to other round counts."""
    rows = []
    for r in results:
        for c in r["changes"]:
            if c.get("sd_log") is None:
                continue
            alpha = c.get("alpha", alpha_of)
            rows.append(
                [r["label"], c["metric"], f"{c['sd_log']:.3f}"]
                + [percent(detectable_at(c["sd_log"], n, alpha)) for n in PROJECTED_ROUNDS]
            )
    return rows


NOISE_TITLE = "the smallest slowdown caught 9 times in 10 at threshold 0"
NOISE_HEADER = ["test", "percentile", "sd ln-ratio", *[f"{n} rounds" for n in PROJECTED_ROUNDS]]


def terminal(doc: Row, *, verbose: bool = False) -> list[str]:
    lines = [headline(doc)]
    if doc["results"]:
        lines += ["", *render_columns(HEADER, cells(doc["results"]), RIGHT)]
    notes = [r for r in doc["results"] if r.get("note")]
    lines += [f"  {r['label']}: {r['note']}" for r in notes]
    if doc["mode"] == "A/A" or verbose:
        rows = noise_rows(doc["results"], 1 - doc["confidence"])
        if rows:
            lines += [
                "",
                f"noise floor: {NOISE_TITLE}, by rounds; with a threshold T a change must",
                "  exceed about (1 + T) x (1 + floor) - 1",
                *render_columns(NOISE_HEADER, rows, [False, False] + [True] * 6),
            ]
    minutes = sum(r["seconds"] for r in doc["runs"]) / 60
    lines += ["", *legend(doc), f"cost: {len(doc['runs'])} pytest runs, {minutes:.1f} min"]
    return lines + failing_runs(doc)


def failing_runs(doc: Row) -> list[str]:
    """A line when some runs had failing tests: their measurements compare, but say so."""
    failed = [r for r in doc["runs"] if r["exit_status"]]
    if not failed:
        return []
    by_side = {side: sum(r["side"] == side for r in failed) for side in ("base", "head")}
    return [
        f"note: {by_side['base']} base and {by_side['head']} head run(s) had failing tests "
        "(pytest exit status 1: an SLO missed, or a test failed); their measurements compare"
    ]


def markdown(doc: Row) -> str:
    """The step summary: the headline, the table (regressions first), the noise floor in A/A
    mode, and the environment."""
    icon = "❌" if any(r["classification"] == "regression" for r in doc["results"]) else "✅"
    lines = ["## pytest-latency A/B gate", "", f"{icon} {headline(doc)}", ""]
    lines += _table(HEADER, cells(doc["results"]), RIGHT)
    lines += [""] + [f"- `{r['label']}`: {r['note']}" for r in doc["results"] if r.get("note")]
    if doc["mode"] == "A/A":
        rows = noise_rows(doc["results"], 1 - doc["confidence"])
        if rows:
            lines += ["", f"### Noise floor: {NOISE_TITLE}", ""]
            lines += _table(NOISE_HEADER, rows, [False, False] + [True] * 6)
    minutes = sum(r["seconds"] for r in doc["runs"]) / 60
    lines += ["", f"{len(doc['runs'])} pytest runs, {minutes:.1f} min.", *failing_runs(doc), ""]
    lines += [environment_line(doc.get("environment") or {}), ""]
    return "\n".join(lines)


CSS = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1f2328; margin: 0 auto;
       max-width: 1340px; padding: 16px 24px; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: right; }
th { background: #f6f8fa; } td.l, th.l { text-align: left; }
.regression { color: #cf222e; font-weight: 600; } .improvement { color: #1a7f37; }
.inconclusive { color: #9a6700; } .muted { color: #59636e; font-size: 13px; }
"""


def html(doc: Row, title: str = "pytest-latency A/B gate") -> str:
    rows = [
        [esc(c) for c in row[:-1]] + [f'<span class="{esc(row[-1])}">{esc(row[-1])}</span>']
        for row in cells(doc["results"])
    ]
    body = [f"<h1>{esc(title)}</h1>", f"<p>{esc(headline(doc))}</p>", table(HEADER, rows, 2)]
    body += [
        f'<p class="muted">{esc(r["label"])}: {esc(r["note"])}</p>'
        for r in doc["results"]
        if r.get("note")
    ]
    noise = noise_rows(doc["results"], 1 - doc["confidence"])
    if noise:
        body += [
            "<h2>Noise floor by rounds</h2>",
            f'<p class="muted">{NOISE_TITLE.capitalize()}, from the spread of the per-round '
            "ratios measured here.</p>",
            table(NOISE_HEADER, [[esc(c) for c in row] for row in noise], 2),
        ]
    runs = [
        [esc(r["round"]), esc(r["side"]), esc(f"{r['seconds']:.1f} s"), esc(r["exit_status"])]
        for r in doc["runs"]
    ]
    body += ["<h2>Runs</h2>", table(["round", "side", "time", "pytest exit"], runs, 2)]
    body += [f'<p class="muted">{"<br>".join(esc(x) for x in legend(doc))}</p>']
    body += [f'<p class="muted">{esc(environment_line(doc.get("environment") or {}))}</p>']
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
