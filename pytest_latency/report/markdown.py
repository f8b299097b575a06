"""GitHub-flavoured markdown summary (``--latency-markdown=PATH``, and appended to
``$GITHUB_STEP_SUMMARY`` when that is set): regressions first, then every verdict, then the
environment in one line. Input is the JSON form of results, as for the other renderers."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.verdict import HIGHER_IS_BETTER, INFO_METRICS
from .changes import counts, ms, ratio_text, sort_key

Row = Mapping[str, Any]
ICONS = {"PASS": "✅", "FAIL": "❌", "INCONCLUSIVE": "⚠️"}


def _cell(text: object) -> str:
    """Table cells: pipes and newlines would break the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: object) -> str:
    return f"`{_cell(text).replace('`', '')}`"


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]
) -> list[str]:
    align = ["---:" if r else ":---" for r in right]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _label(result: Row) -> str:
    nodeid = result.get("nodeid") or result.get("name") or ""
    return f"{nodeid} ({result['name']})" if result.get("named") else nodeid


def _value(value: Any, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "":
        return f"{value:.2%}"
    if unit == "rps":
        return f"{value:,.1f} rps"
    return f"{ms(value)} ms"


def regression_section(comparisons: Sequence[Row], saved_run: str) -> list[str]:
    """Regressions against the saved run, worst first; a one-line all-clear when none."""
    regressed = [c for c in comparisons if c["classification"] == "regression"]
    head = f"### Regressions vs {_code(saved_run)}"
    if not regressed:
        return [head, "", f"No regressions ({counts(comparisons)}).", ""]
    rows = []
    for comparison in sorted(regressed, key=sort_key):
        for c in comparison["changes"]:
            if c["classification"] != "regression":
                continue
            rows.append(
                [
                    _code(comparison.get("label") or comparison.get("nodeid")),
                    c["metric"],
                    f"{ms(c['before_ms'])} ms",
                    f"{ms(c['after_ms'])} ms",
                    ratio_text(c),
                    f"±{comparison['threshold']:.0%}",
                ]
            )
    header = ["test", "percentile", "before", "after", "ratio [bounds]", "threshold"]
    return [
        head,
        "",
        f"**{len(regressed)} test(s) slower than the saved run** ({counts(comparisons)}).",
        "",
        *_table(header, rows, [False, False, True, True, True, True]),
        "",
    ]


def comparison_details(comparisons: Sequence[Row]) -> list[str]:
    """Every compared percentile, collapsed."""
    rows = []
    for comparison in sorted(comparisons, key=sort_key):
        label = _code(comparison.get("label") or comparison.get("nodeid"))
        if not comparison["changes"]:
            rows.append([label, "–", "–", "–", "–", comparison["classification"]])
        for c in comparison["changes"]:
            rows.append(
                [
                    label,
                    c["metric"],
                    f"{ms(c['before_ms'])} ms",
                    f"{ms(c['after_ms'])} ms",
                    ratio_text(c),
                    c["classification"],
                ]
            )
    header = ["test", "percentile", "before", "after", "ratio [bounds]", "change"]
    return [
        "<details><summary>All comparisons</summary>",
        "",
        *_table(header, rows, [False, False, True, True, True, False]),
        "",
        "</details>",
        "",
    ]


def verdict_section(results: Sequence[Row]) -> list[str]:
    """One row per target: test, target, estimate, bounds, verdict."""
    rows = []
    for r in results:
        for t in r["targets"]:
            if t["metric"] in INFO_METRICS:
                continue
            unit = t["unit"]
            op = "≥" if t["metric"] in HIGHER_IS_BETTER else "≤"
            bounds = (
                "–"
                if t["lower"] is None and t["upper"] is None
                else f"[{_value(t['lower'], unit)}, {_value(t['upper'], unit)}]"
            )
            target = f"{t['target']:g} ms" if unit == "ms" else _value(t["target"], unit)
            rows.append(
                [
                    _code(_label(r)),
                    f"{t['metric']} {op} {target}",
                    _value(t["observed"], unit),
                    bounds,
                    f"{ICONS.get(t['decision'], '')} {t['decision']}".strip(),
                ]
            )
    if not rows:
        return ["### Latency verdicts", "", "No latency measurements.", ""]
    decisions = [r["decision"] for r in results]
    tally = ", ".join(
        f"{decisions.count(d)} {d}" for d in ("FAIL", "INCONCLUSIVE", "PASS") if d in decisions
    )
    return [
        f"### Latency verdicts ({tally})",
        "",
        *_table(
            ["test", "target", "estimate", "bounds", "verdict"],
            rows,
            [False, False, True, True, False],
        ),
        "",
    ]


def environment_line(env: Row) -> str:
    git = env.get("git") or {}
    pkgs = env.get("packages") or {}
    stack = ", ".join(
        f"{k} {pkgs[k]}" for k in ("numpy", "onnxruntime", "onnxruntime-gpu", "torch") if k in pkgs
    )
    commit = (git.get("commit") or "")[:12]
    parts = [
        f"{env.get('cpu_model')} ×{env.get('cpu_affinity')} (of {env.get('cpu_count')})",
        f"Python {env.get('python')}",
        stack,
        f"commit `{commit}`{' (dirty)' if git.get('dirty') else ''}" if commit else "",
    ]
    return "Environment: " + "; ".join(p for p in parts if p)


def render(
    results: Sequence[Row],
    environment: Row,
    *,
    saved_run: str | None = None,
    env_differences: str = "",
) -> str:
    """The whole summary. ``saved_run`` (a path) adds the regression sections first."""
    lines = ["## pytest-latency", ""]
    measured = [r for r in results if not r.get("kind")]
    comparisons = [r["regression"] for r in measured if r.get("regression")]
    if saved_run is not None:
        lines += regression_section(comparisons, saved_run)
        if env_differences:
            lines += [f"⚠️ The environment differs from the saved run's: {env_differences}.", ""]
        if comparisons:
            lines += comparison_details(comparisons)
    lines += verdict_section(measured)
    lines += [environment_line(environment), ""]
    return "\n".join(lines)


def write(path: str | os.PathLike[str], text: str, *, append: bool = False) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a" if append else "w", encoding="utf-8") as f:
        f.write(text if not append else "\n" + text)
    return target
