"""The accuracy gates' plot for the HTML report: each model's accuracy with its two-sided
interval, and the paired drop with its one-sided bounds against the gate's ``max_drop``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .plots import COLOURS, DPI, REFERENCE, THIS_RUN

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Row = Mapping[str, Any]


def gate_label(gate: Row) -> str:
    return (
        gate["nodeid"] if gate.get("name") == "accuracy" else f"{gate['nodeid']} ({gate['name']})"
    )


def _padded(values: Sequence[float], pad: float) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    return lo - span * pad, hi + span * pad


def accuracy_figure(gates: Sequence[Row]) -> Figure:
    """One row per gate; points in percent (accuracy) and percentage points (drop)."""
    # matplotlib: an optional dependency (the report extra)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 1.5 + 0.5 * len(gates)), dpi=DPI, layout="constrained")
    acc_ax, drop_ax = fig.subplots(1, 2, sharey=True)
    acc_x: list[float] = []
    drop_x: list[float] = [0.0]
    for i, gate in enumerate(gates):
        rows = {t["metric"]: t for t in gate["targets"]}
        for key, colour, dy, name in (
            ("reference_accuracy", REFERENCE, -0.12, "reference"),
            ("accuracy", THIS_RUN, 0.12, "candidate"),
        ):
            t = rows[key]
            obs, lo, hi = (
                100 * (t[k] if t[k] is not None else t["observed"])
                for k in ("observed", "lower", "upper")
            )
            acc_ax.errorbar(
                [obs],
                [i + dy],
                xerr=[[obs - lo], [hi - obs]],
                fmt="o",
                color=colour,
                capsize=3,
                label=name if i == 0 else None,
            )
            acc_x += [lo, hi]
        drop = rows["drop"]
        colour = COLOURS.get(drop["decision"], "#000000")
        lo, hi = (
            100 * (drop[k] if drop[k] is not None else drop["observed"]) for k in ("lower", "upper")
        )
        drop_ax.plot([lo, hi], [i, i], color=colour, linewidth=4, alpha=0.5, solid_capstyle="butt")
        drop_ax.plot(
            [100 * drop["observed"]],
            [i],
            "o",
            color=colour,
            label="drop [one-sided bounds]" if i == 0 else None,
        )
        drop_ax.plot(
            [100 * drop["target"]],
            [i],
            marker="|",
            markersize=20,
            color="#cf222e",
            markeredgewidth=2.5,
            linestyle="none",
            label="max drop" if i == 0 else None,
        )
        drop_x += [lo, hi, 100 * drop["target"]]
    drop_ax.axvline(0, color="#999999", linewidth=0.8)
    acc_ax.set_xlim(*_padded(acc_x, 0.08))
    drop_ax.set_xlim(*_padded(drop_x, 0.08))
    acc_ax.set_yticks(range(len(gates)), [gate_label(g) for g in gates], fontsize=8)
    acc_ax.set_ylim(len(gates) - 0.5, -0.5)
    acc_ax.set_xlabel("accuracy (%), two-sided Clopper-Pearson interval", fontsize=9)
    drop_ax.set_xlabel("accuracy drop (percentage points)", fontsize=9)
    for ax in (acc_ax, drop_ax):
        ax.grid(True, axis="x", alpha=0.3)
        ax.tick_params(labelsize=9)
        ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.01), ncols=3, frameon=False)
    return fig
