"""Building blocks of the HTML report: escaped cells, tables and embedded images, and the
tables of one measurement, the accuracy gates, same-run comparisons and the environment.
Inputs are the JSON forms of results (`Result.to_dict`), as in `table`."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from ..core.verdict import HIGHER_IS_BETTER, INFO_METRICS
from .accuracy_plot import accuracy_figure
from .changes import ratio_text
from .plots import figure_bytes
from .table import context_line

Row = Mapping[str, Any]


def esc(value: Any) -> str:
    return escape(str(value))


def num(value: Any, unit: str = "ms") -> str:
    if value is None:
        return "-"
    if unit == "":
        return f"{value:.2%}"
    if unit == "rps":
        return f"{value:,.1f}"
    return f"{value:,.1f}" if value >= 100 else f"{value:.3g}" if value < 1 else f"{value:.2f}"


def verdict(decision: str, extra: str = "") -> str:
    return f'<span class="badge {esc(decision)}">{esc(decision)}{esc(extra)}</span>'


def table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """Cells are already HTML; the first `left` columns align left."""
    head = "".join(f"<th{' class=l' if i < left else ''}>{h}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=l' if i < left else ''}>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table>{f'<tr>{head}</tr>' if header else ''}{body}</table>"


def img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def targets_table(result: Row) -> str:
    targets = result.get("targets") or []
    notes = any(t.get("note") for t in targets)
    rows = []
    for t in targets:
        unit = t.get("unit", "ms")
        op = "&ge;" if t["metric"] in HIGHER_IS_BETTER else "&le;"
        info = t["metric"] in INFO_METRICS
        margin = t.get("margin")
        rows.append(
            [
                esc(t["metric"]),
                "-" if info else f"{op} {num(t['target'], unit)} {esc(unit)}",
                num(t.get("observed"), unit),
                num(t.get("lower"), unit),
                num(t.get("upper"), unit),
                esc(t.get("n", "-")),
                "-" if margin is None else f"{margin:+.1%}",
                "info" if info else verdict(t["decision"]),
                *([esc(t.get("note") or "")] if notes else []),
            ]
        )
    header = ["metric", "target", "estimate", "lower", "upper", "n", "margin", "verdict"]
    return table(header + (["note"] if notes else []), rows)


def percentiles_table(result: Row, saved: Row | None) -> str:
    """One column per percentile; rows: this run, its bounds, the saved run and the change."""
    pct = result.get("percentiles_ms") or {}
    bounds = result.get("percentile_bounds_ms") or {}
    keys = [k for k in ("p50", "p90", "p95", "p99", "p999", "max", "mean") if k in pct]
    rows = [
        ["ms", *(num(pct[k]) for k in keys)],
        [
            "bounds",
            *(f"[{num(bounds[k][0])}, {num(bounds[k][1])}]" if bounds.get(k) else "" for k in keys),
        ],
    ]
    if saved:
        base = saved.get("percentiles_ms") or {}
        rows.append(["saved run ms", *(num(base.get(k)) for k in keys)])
        rows.append(
            [
                "change",
                *(f"{(pct[k] - base[k]) / base[k]:+.1%}" if base.get(k) else "-" for k in keys),
            ]
        )
    return table(["", *keys], rows)


def stages_table(result: Row) -> str:
    stages = result.get("stages_ms") or {}
    if not stages:
        return ""
    budget = (result.get("spec") or {}).get("budget") or {}
    verdicts = {t["metric"]: t["decision"] for t in result.get("targets") or []}
    rows = [
        [
            esc(name),
            str(int(s["n"])),
            num(s["p50"]),
            num(s["p99"]),
            num(s["mean"]),
            num(budget.get(name)) if name in budget else "-",
            verdict(verdicts[f"{name}.p99"]) if f"{name}.p99" in verdicts else "-",
        ]
        for name, s in stages.items()
    ]
    header = ["stage", "n", "p50 ms", "p99 ms", "mean ms", "p99 budget ms", "verdict"]
    return "<div><b>stages</b>" + table(header, rows) + "</div>"


CLASSIFICATION_CSS = {"regression": "FAIL", "improvement": "PASS", "inconclusive": "INCONCLUSIVE"}


def classification(name: str) -> str:
    """A saved-run comparison's classification, coloured like the verdict it resembles."""
    return f'<span class="{CLASSIFICATION_CSS.get(name, "muted")}">{esc(name)}</span>'


def changes_table(change: Row) -> str:
    """Percentile by percentile against the saved run: ratio after/before with its bounds and
    the classification (`core.regression`), or the note saying why nothing was compared."""
    rows = [
        [
            esc(c["metric"]),
            num(c.get("before_ms")),
            num(c.get("after_ms")),
            esc(ratio_text(c)),
            classification(c["classification"]),
        ]
        for c in change.get("changes") or []
    ]
    title = f"<b>vs saved run</b> (threshold &plusmn;{change['threshold']:.0%})"
    note = f'<p class="muted">{esc(change["note"])}</p>' if change.get("note") else ""
    if not rows:
        return f"<div>{title}: {classification(change['classification'])}{note}</div>"
    header = ["percentile", "before ms", "after ms", "ratio [bounds]", "change"]
    return f"<div>{title}{table(header, rows)}{note}</div>"


def facts_line(result: Row) -> str:
    """Sample count, stop reason, load mode, throughput, warm-up and cold start in one line."""
    load = result.get("load") or {}
    achieved = (
        f"; achieved {num(load['achieved_rps'], 'rps')} rps"
        if load.get("mode") == "open" and load.get("achieved_rps")
        else ""
    )
    outcome = f"test {esc(result['outcome'])}; " if result.get("outcome") else ""
    return (
        f'<p class="muted">{outcome}{result.get("n")} timed samples, '
        f"{result.get('errors', 0)} errors, "
        f"stopped: {esc(result.get('stopped_by'))} after {esc(result.get('looks'))} look(s); "
        f"{esc(context_line(result))}{achieved}</p>"
    )


def accuracy_section(gates: Sequence[Row]) -> str:
    rows = []
    for g in gates:
        t = {row["metric"]: row for row in g["targets"]}
        acc, ref, drop = t["accuracy"], t["reference_accuracy"], t["drop"]
        agree = t.get("agreement")
        rows.append(
            [
                esc(g["nodeid"] if g.get("name") == "accuracy" else f"{g['nodeid']} ({g['name']})"),
                str(g.get("n")),
                f"{num(ref['observed'], '')} [{num(ref['lower'], '')}, {num(ref['upper'], '')}]",
                f"{num(acc['observed'], '')} [{num(acc['lower'], '')}, {num(acc['upper'], '')}]",
                f"{num(drop['observed'], '')} [{num(drop['lower'], '')}, {num(drop['upper'], '')}]",
                num(drop["target"], ""),
                "-" if agree is None else num(agree["observed"], ""),
                verdict(g["decision"]),
            ]
        )
    header = [
        "test",
        "n",
        "reference accuracy [interval]",
        "accuracy [interval]",
        "drop [bounds]",
        "max drop",
        "agreement",
        "verdict",
    ]
    notes = "".join(
        f'<p class="muted">{esc(g["nodeid"])}: {esc(t["note"])}</p>'
        for g in gates
        for t in g["targets"]
        if t["metric"] == "drop" and t.get("note")
    )
    fig = accuracy_figure(gates)
    return (
        table(header, rows)
        + notes
        + img(figure_bytes(fig), "accuracy gates")
        + '<p class="muted">accuracies: two-sided Clopper-Pearson intervals; drop: one-sided '
        "bounds from Newcombe's score interval for paired proportions (both models saw the "
        "same examples).</p>"
    )


def comparisons_table(items: Sequence[Row]) -> str:
    # The JSON keeps schema pytest-latency/1's names: "baseline" is the reference's name.
    rows = [
        [
            esc(c.get("nodeid", "")),
            f"{esc(c['baseline'])} vs {esc(c['candidate'])}",
            f"p{c['quantile'] * 100:g}",
            num(c.get("baseline_q_ms")),
            num(c.get("candidate_q_ms")),
            "-" if c.get("ratio") is None else f"{c['ratio']:.2f}x",
            _ratio_bounds(c),
            f"{c['min_speedup']:g}x",
            verdict(c["decision"]),
        ]
        for c in items
    ]
    header = ["test", "pair", "quantile", "ref ms", "cand ms", "speed-up", "bounds", "min", ""]
    return table(header, rows, left=2)


def _ratio_bounds(c: Row) -> str:
    lo, hi = c.get("lower"), c.get("upper")
    return f"[{'-' if lo is None else f'{lo:.2f}'}, {'-' if hi is None else f'{hi:.2f}'}]"


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def environment_table(report: Row) -> str:
    env = dict(report.get("environment") or {})
    packages = env.pop("packages", {}) or {}
    rows = [[esc(k), esc(_value(v))] for k, v in env.items()]
    rows.append(["packages", esc(", ".join(f"{k} {v}" for k, v in packages.items()))])
    rows.append(["settings", esc(_value(report.get("settings") or {}))])
    return table([], rows, left=2)
