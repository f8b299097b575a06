"""Plain-text tables of changes against a saved run. Input is the JSON form
(`ResultChange.to_dict`), so the terminal summary, a failing test's message and
``pytest-latency compare`` render the same rows the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .table import render_columns

Row = Mapping[str, Any]
ORDER = {"regression": 0, "inconclusive": 1, "improvement": 2, "no change": 3, "new": 4}


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value >= 100 else f"{value:.3g}" if value < 1 else f"{value:.2f}"


def ratio_text(change: Row) -> str:
    """``1.31x [1.17, 1.46]``; a missing bound shows as ``-``."""
    if change.get("ratio") is None:
        return "-"
    lo, hi = change.get("lower"), change.get("upper")
    return (
        f"{change['ratio']:.2f}x [{'-' if lo is None else f'{lo:.2f}'}, "
        f"{'-' if hi is None else f'{hi:.2f}'}]"
    )


def change_cells(comparison: Row) -> list[list[str]]:
    """Cells of every percentile row of one result's comparison (one row when ``new``)."""
    label = comparison.get("label") or comparison.get("nodeid", "")
    band = f"+/-{comparison['threshold']:.0%}"
    if not comparison["changes"]:
        return [[label, "-", "-", "-", "-", band, comparison["classification"]]]
    return [
        [
            label,
            c["metric"],
            ms(c["before_ms"]),
            ms(c["after_ms"]),
            ratio_text(c),
            band,
            c["classification"],
        ]
        for c in comparison["changes"]
    ]


def sort_key(comparison: Row) -> tuple[int, str]:
    return ORDER.get(comparison["classification"], 9), str(comparison.get("label", ""))


def change_table(comparisons: Sequence[Row], *, only: frozenset[str] | None = None) -> list[str]:
    """test, percentile, before, after, ratio [bounds], threshold, change; worst first.

    ``only`` keeps the percentile rows of those classifications (e.g. ``{"regression"}``).
    """
    rows = []
    for comparison in sorted(comparisons, key=sort_key):
        rows += [r for r in change_cells(comparison) if only is None or r[-1] in only]
    if not rows:
        return []
    return render_columns(
        ["test", "percentile", "before ms", "after ms", "ratio [bounds]", "threshold", "change"],
        rows,
        [False, False, True, True, True, True, False],
    )


def counts(comparisons: Sequence[Row]) -> str:
    """``1 regression, 2 no change, 1 new`` (per result, worst percentile decides)."""
    found: dict[str, int] = {}
    for c in comparisons:
        found[c["classification"]] = found.get(c["classification"], 0) + 1
    return ", ".join(f"{found[k]} {k}" for k in ORDER if k in found) or "nothing compared"


def change_legend(confidence: float | None = None) -> list[str]:
    conf = f"{confidence * 100:g}%" if confidence else "the stated confidence"
    return [
        "legend: ratio = after / before of the nearest-rank percentile; bounds = one-sided "
        f"{conf} each, from order-statistic bounds",
        "  of both runs (error split over the compared percentiles); regression: lower bound "
        "> 1 + threshold; improvement:",
        "  upper bound < 1 / (1 + threshold); no change: both bounds within; inconclusive: "
        "neither; new: not in the saved run.",
    ]
