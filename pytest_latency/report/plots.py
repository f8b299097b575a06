"""Latency plots for the HTML report and ``pytest-latency plot``, drawn with matplotlib.

Input is the JSON form of results (`Result.to_dict`, as saved by ``--latency-json``), so a live
run and a saved one plot alike. matplotlib is an optional extra, imported only here and only
when a plot is drawn. Figures are built on matplotlib's object API (``Figure``, rendered by Agg),
never pyplot: nothing global (backend, rcParams, open-figure registry) changes in the user's
process.

One measurement is three panels: the latency histogram, the tail (share of samples at or over
each latency, log scale: a percentile target is a point the curve must pass to the left of) and
every sample in completion order (stalls and drift). A saved run is overlaid in grey.
"""

from __future__ import annotations

import importlib.util
import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

INSTALL = "pip install 'pytest-latency[report]'  (or: pip install matplotlib)"
COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "INCONCLUSIVE": "#9a6700"}
THIS_RUN, SAVED_RUN = "#0969da", "#6e7781"
REFERENCE = SAVED_RUN  # the side compared against is grey, saved run or reference model
DPI = 100
Row = Mapping[str, Any]


class MissingDependency(ImportError):
    """An optional extra (matplotlib) is needed for what was asked and is not installed."""


def require_matplotlib(what: str = "latency plots") -> None:
    """Raise `MissingDependency` naming the install command when matplotlib is absent.

    Only looks the package up (no import), so it is cheap enough for ``pytest_configure``.
    """
    if importlib.util.find_spec("matplotlib") is None:
        raise MissingDependency(
            f"{what} need matplotlib, which is not installed in this environment; run: {INSTALL}"
        )


def _ms(result: Row) -> Any:
    # numpy: keeps `pytest --help` light (the plugin imports this module)
    import numpy as np

    return np.sort(np.asarray(result.get("samples_ns") or [], dtype=np.int64)) / 1e6


def _label(result: Row) -> str:
    nodeid = result.get("nodeid") or result.get("name") or "?"
    return f"{nodeid} ({result['name']})" if result.get("named") else str(nodeid)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 1 else f"{value:.2f}"


def latency_targets(result: Row) -> list[Row]:
    """End-to-end latency targets that belong on the distribution plots: percentiles and max
    (stage budgets are over other spans; cold start is one call, shown on its own)."""
    return [
        t
        for t in result.get("targets") or []
        if t.get("unit") == "ms"
        and "." not in t["metric"]
        and (t.get("quantile") is not None or t["metric"] == "max")
    ]


def use_log_x(result: Row, saved: Row | None = None) -> bool:
    """Log latency axis when the tail needs it: p99 over 3x p50, the maximum over 10x p50, or
    a target that far from the median (a linear axis would squash the body into one bin)."""
    ratios = []
    for r in (result, saved):
        if not r or not r.get("n"):
            continue
        pct = r.get("percentiles_ms") or {}
        p50 = pct.get("p50") or 0
        if p50 <= 0:
            continue
        highs = [t["target"] for t in latency_targets(r)]
        ratios += [pct.get("p99", p50) / p50 / 3, pct.get("max", p50) / p50 / 10]
        ratios += [max(h, p50) / max(min(h, p50), 1e-9) / 3 for h in highs]
    return any(r > 1 for r in ratios)


def _style(ax: Axes, log_x: bool) -> None:
    if log_x:
        ax.set_xscale("log")
    ax.grid(True, which="major", alpha=0.3)
    ax.tick_params(labelsize=9)


def _log_ticks(axis: Any, lo: float, hi: float) -> None:
    """Plain-number ticks on a log axis, as many as its span can label without crowding
    (matplotlib's default labels only powers of ten: none at all within one decade)."""
    # matplotlib: an optional dependency (the report extra)
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    decades = math.log10(max(hi, 1e-12) / max(lo, 1e-12))
    subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0) if decades < 1.2 else (1.0, 2.0, 5.0)
    axis.set_major_locator(LogLocator(base=10, subs=subs if decades < 3 else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _legend_below(ax: Axes) -> None:
    """Legends go under the axes: inside, they hid the very tail they annotate."""
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), frameon=False)


def _x_range(runs: Sequence[Any], targets: Sequence[Row], log_x: bool) -> tuple[float, float]:
    values = [float(v) for ms in runs if len(ms) for v in (ms[0], ms[-1])]
    values += [float(t["target"]) for t in targets]
    lo, hi = min(values), max(values)
    if log_x:
        return lo / 1.15, hi * 1.15
    pad = (hi - lo) * 0.05 or hi * 0.05 or 1.0
    return max(0.0, lo - pad), hi + pad


def _hist(ax: Axes, runs: Sequence[tuple[str, str, Any]], targets: Sequence[Row]) -> None:
    """The body of the distribution: the x-axis spans the samples only (a far target would
    squash them into one bin); targets off the axis are named at its edge with an arrow."""
    # numpy: keeps `pytest --help` light (the plugin imports this module)
    import numpy as np

    data = [ms for _, _, ms in runs if len(ms)]
    lo, hi = min(float(ms[0]) for ms in data), max(float(ms[-1]) for ms in data)
    p50 = min(float(np.median(ms)) for ms in data)
    log_x = hi / max(p50, 1e-9) > 10 and lo > 0
    hi = hi if hi > lo else lo * 1.01 + 1e-6
    edges = np.geomspace(lo, hi * 1.0001, 61) if log_x else np.linspace(lo, hi, 61)
    _style(ax, log_x)
    for label, colour, ms in runs:
        counts, _ = np.histogram(ms, bins=edges)
        share = counts / max(len(ms), 1) * 100
        saved = colour == SAVED_RUN
        ax.stairs(
            share,
            edges,
            fill=not saved,
            color=colour,
            alpha=0.9 if saved else 0.45,
            linewidth=1.5 if saved else 1.0,
            label=label,
        )
    pad = (hi - lo) * 0.04
    x_lo, x_hi = (lo / 1.05, hi * 1.05) if log_x else (max(0.0, lo - pad), hi + pad)
    ax.set_xlim(x_lo, x_hi)
    if log_x:
        _log_ticks(ax.xaxis, x_lo, x_hi)
    for t in targets:
        colour = COLOURS.get(t["decision"], "#000000")
        text = f"{t['metric']} target {t['target']:g} ms"
        if x_lo <= t["target"] <= x_hi:
            ax.axvline(t["target"], color=colour, linestyle="--", linewidth=1.4, label=text)
        else:  # named in the legend only: drawing it would squash the samples
            side = "right" if t["target"] > x_hi else "left"
            ax.plot([], [], color=colour, linestyle="--", label=f"{text} (off axis, {side})")
    ax.set_xlabel("latency (ms)" + (", log scale" if log_x else ""), fontsize=9)
    ax.set_ylabel("share of samples per bin (%)", fontsize=9)
    ax.set_title("latency distribution", fontsize=10)
    _legend_below(ax)


def _tail_points(ms: Any) -> tuple[Any, Any]:
    """(latency, share of samples >= latency), thinned geometrically so the tail keeps every
    point and the body a few hundred."""
    # numpy: keeps `pytest --help` light (the plugin imports this module)
    import numpy as np

    n = len(ms)
    at_or_over = np.unique(np.geomspace(1, n, min(n, 2000)).round().astype(np.int64))
    index = n - at_or_over[::-1]
    return ms[index], (n - index) / n


def _tail(ax: Axes, runs: Sequence[tuple[str, str, Any]], result: Row) -> None:
    for label, colour, ms in runs:
        if len(ms):
            x, y = _tail_points(ms)
            ax.plot(x, y, drawstyle="steps-post", color=colour, linewidth=1.6, label=label)
    ax.set_yscale("log")
    n = max((len(ms) for _, _, ms in runs), default=1)
    ax.set_ylim(1 / max(n, 10) / 1.5, 1.3)
    # matplotlib: an optional dependency (the report extra)
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v * 100:g}%"))
    for q, name in ((0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")):
        if 1 - q >= 1 / n:
            ax.axhline(1 - q, color="#999999", linewidth=0.6, linestyle=":")
            ax.annotate(
                name,
                (1, 1 - q),
                xycoords=("axes fraction", "data"),
                xytext=(2, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                color="#555555",
            )
    for t in latency_targets(result):
        _draw_target(ax, t, n)
    ax.set_ylabel("share of samples ≥ latency", fontsize=9)
    ax.set_title("tail: targets are points the curve must pass left of", fontsize=10)


def _draw_target(ax: Axes, t: Row, n: int) -> None:
    """Vertical line at the target; the estimate with its one-sided confidence bounds as a
    horizontal bar at the target's percentile level (an open end: no bound at this n)."""
    colour = COLOURS.get(t["decision"], "#000000")
    q = t.get("quantile")
    level = 1 - q if q is not None else 1 / max(n, 1)
    name = t["metric"]
    ax.axvline(t["target"], color=colour, linestyle="--", linewidth=1.4)
    label = f"{name} ≤ {t['target']:g} ms: {t['decision']}"
    if t.get("observed") is None:
        ax.plot([], [], color=colour, linestyle="--", label=label)
        return
    lo, hi = t.get("lower"), t.get("upper")
    x_lo, x_hi = ax.get_xlim()
    left = lo if lo is not None else x_lo
    right = hi if hi is not None else x_hi
    ax.plot(
        [left, right], [level, level], color=colour, linewidth=3, alpha=0.55, solid_capstyle="butt"
    )
    ax.plot(
        [t["observed"]],
        [level],
        marker="o",
        color=colour,
        markersize=6,
        linestyle="--",
        label=f"{label} (est. {_fmt(t['observed'])} [{_fmt(lo)}, {_fmt(hi)}])",
    )


def _series(ax: Axes, result: Row, log_x: bool) -> None:
    # numpy: keeps `pytest --help` light (the plugin imports this module)
    import numpy as np

    ms = np.asarray(result.get("samples_ns") or [], dtype=np.int64) / 1e6
    ax.plot(
        np.arange(1, len(ms) + 1),
        ms,
        ".",
        markersize=2 if len(ms) <= 5000 else 1,  # thousands of points would merge into a blob
        color=THIS_RUN,
        alpha=0.5 if len(ms) <= 20000 else 0.25,
        rasterized=True,
        label="timed sample",
    )
    cold = result.get("cold_start_ms")
    if cold is not None:
        ax.plot(
            [0],
            [cold],
            marker="*",
            markersize=11,
            color="#8250df",
            linestyle="none",
            label=f"cold start {_fmt(cold)} ms",
        )
    for t in latency_targets(result):
        ax.axhline(
            t["target"],
            color=COLOURS.get(t["decision"], "#000"),
            linestyle="--",
            linewidth=1.2,
            label=f"{t['metric']} target {t['target']:g} ms",
        )
    if log_x:
        ax.set_yscale("log")
        _log_ticks(ax.yaxis, *ax.get_ylim())
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=9)
    ax.set_xlabel("sample, in completion order", fontsize=9)
    ax.set_ylabel("latency (ms)", fontsize=9)
    ax.set_title("every sample (stalls, drift)", fontsize=10)
    _legend_below(ax)


def draw_measurement(
    fig: Figure | SubFigure, result: Row, saved: Row | None = None, title: bool = True
) -> None:
    """Draw one measurement's three panels on `fig` (a figure or a subfigure)."""
    log_x = use_log_x(result, saved)
    runs = [("this run", THIS_RUN, _ms(result))]
    if saved is not None:
        runs.insert(0, ("saved run", SAVED_RUN, _ms(saved)))
    targets = latency_targets(result)
    x_range = _x_range([ms for _, _, ms in runs], targets, log_x)
    hist_ax, tail_ax, series_ax = fig.subplots(1, 3, width_ratios=[1, 1.25, 1])
    _hist(hist_ax, runs, targets)
    _style(tail_ax, log_x)
    tail_ax.set_xlim(*x_range)
    tail_ax.set_xlabel("latency (ms)" + (", log scale" if log_x else ""), fontsize=9)
    _tail(tail_ax, runs, result)
    tail_ax.set_xlim(*x_range)
    if log_x:
        _log_ticks(tail_ax.xaxis, *x_range)
    _legend_below(tail_ax)
    _series(series_ax, result, log_x)
    if title:
        fig.suptitle(
            f"{_label(result)}: {result['decision']}",
            fontsize=11,
            color=COLOURS.get(result["decision"], "#000"),
        )


def measurement_figure(result: Row, saved: Row | None = None, title: bool = True) -> Figure:
    """One measurement as a 13 x 4 inch figure (histogram, tail, time series)."""
    # matplotlib: an optional dependency (the report extra)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 5.0 if title else 4.7), dpi=DPI, layout="constrained")
    draw_measurement(fig, result, saved, title=title)
    return fig


def runs_figure(results: Sequence[Row], saved_runs: Sequence[Row | None]) -> Figure:
    """Every measurement stacked, one row each (``pytest-latency plot -o runs.png``)."""
    # matplotlib: an optional dependency (the report extra)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 5.2 * len(results)), dpi=DPI, layout="constrained")
    grid = fig.subfigures(len(results), 1, squeeze=False)
    rows: list[Any] = list(grid[:, 0])  # squeeze=False: always a 2-D array
    for sub, result, saved in zip(rows, results, saved_runs, strict=True):
        draw_measurement(sub, result, saved)
    return fig


def figure_bytes(fig: Figure, fmt: str = "png") -> bytes:
    """The figure as PNG, SVG or PDF bytes; the same figure always gives the same bytes."""
    # matplotlib: an optional dependency (the report extra)
    from matplotlib import rc_context

    buffer = io.BytesIO()
    with rc_context({"svg.hashsalt": "pytest-latency"}):  # else SVG ids are random
        fig.savefig(buffer, format=fmt, dpi=DPI, metadata=_metadata(fmt))
    return buffer.getvalue()


def _metadata(fmt: str) -> dict[str, Any]:
    # Reproducible files: no creation date or matplotlib version stamped into them.
    if fmt == "svg":
        return {"Date": None, "Creator": None}
    if fmt == "pdf":
        return {"CreationDate": None, "Creator": None, "Producer": None}
    return {"Software": None}
