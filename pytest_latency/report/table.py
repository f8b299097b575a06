"""Plain-text tables of results. Input is the JSON form (`Result.to_dict`), so the terminal
summary, failure messages and ``pytest-latency show`` render the same thing the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core.verdict import HIGHER_IS_BETTER, INFO_METRICS

# Test outcomes shown beside a verdict that the test did not enforce as such: an expected
# failure, or a test that skipped itself after measuring (e.g. a host found busy).
_SHOWN = ("xfailed", "skipped")

Row = Mapping[str, Any]


def _num(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "":  # a fraction (error rate)
        return f"{value:.2%}"
    if unit == "rps":
        return f"{value:,.1f}"
    if value >= 100:
        return f"{value:,.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"  # sub-millisecond: keep three significant digits


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:+.1%}"


def render_columns(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None
) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    right = right or [False, *([True] * (len(header) - 1))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def target_table(result: Row) -> list[str]:
    """Metric, target, estimate, bounds, n, margin and decision for each target."""
    rows = []
    for t in result["targets"]:
        unit = t["unit"]
        op = ">=" if t["metric"] in HIGHER_IS_BETTER else "<="
        info = t["metric"] in INFO_METRICS
        target = "-" if info else f"{op} {_num(t['target'], unit)} {unit}".rstrip()
        rows.append(
            [
                t["metric"],
                target,
                _num(t["observed"], unit),
                _num(t["lower"], unit),
                _num(t["upper"], unit),
                str(t["n"]),
                _pct(t["margin"]),
                "info" if info else t["decision"],
            ]
        )
    return render_columns(
        ["metric", "target", "estimate", "lower", "upper", "n", "margin", "verdict"], rows
    )


def _conf(result: Row) -> str:
    return f"{result['confidence'] * 100:g}%"


def failure_message(result: Row) -> str:
    """What a failing (or inconclusive) test prints: summary, table, context, first error."""
    lines = [result["summary"], ""]
    lines += target_table(result)
    lines.append("")
    if result.get("kind") == "accuracy":
        lines.append(
            f"accuracies: two-sided {_conf(result)} Clopper-Pearson intervals; drop and "
            f"agreement: one-sided {_conf(result)} bounds (drop: Newcombe's paired score "
            "interval, the models saw the same examples)"
        )
        lines += [
            f"{t['metric']}: {t['note']}"
            for t in result["targets"]
            if t.get("note") and t["metric"] not in INFO_METRICS
        ]
        return "\n".join(lines)
    lines.append(
        f"bounds: one-sided, each {_conf(result)} over {result['looks']} sequential look(s) "
        f"(alpha spent at this look {result['alpha']:.2g}); n={result['n']} timed samples, "
        f"stopped: {result['stopped_by']}"
    )
    lines.append(context_line(result))
    lines += _to_decide(result)
    if result.get("first_error"):
        lines += ["", "first error:", result["first_error"].rstrip()]
    return "\n".join(lines)


def _to_decide(result: Row) -> list[str]:
    """For an INCONCLUSIVE verdict: how long the samples that would decide it take at the
    rate this run measured, and which marker keyword holds them back."""
    needed = [
        t["samples_to_decide"]
        for t in result.get("targets", [])
        if t.get("decision") == "INCONCLUSIVE" and t.get("samples_to_decide")
    ]
    rate = result.get("throughput_rps")
    if not needed or not rate or result.get("stopped_by") not in ("max_time", "max_samples"):
        return []
    need = max(needed)
    more_s = max(0, need - result["n"]) / rate
    keyword = "max_samples" if result["stopped_by"] == "max_samples" else "max_time_s"
    return [
        f"to decide it: about {need:,} samples in all, {more_s:,.0f} s more at the measured "
        f"{rate:,.1f} samples/s; stopped by {keyword}: raise it in the marker "
        f"(@pytest.mark.slo({keyword}=...)), or accept a lower confidence"
    ]


def context_line(result: Row) -> str:
    parts = []
    load = result.get("load") or {}
    spec = result.get("spec") or {}
    if load.get("mode") == "open":
        on = (
            f" on {spec.get('workers') or 1} Locust workers"
            if spec.get("engine") == "locust"
            else ""
        )
        parts.append(
            f"open loop {load['offered_rps']:g} rps {load.get('arrivals')}{on}: "
            f"{load['issued']} issued, {load['late']} started >"
            f"{load['late_threshold_ns'] / 1e6:g} ms late, {load['not_issued']} not issued, "
            f"start lag p99 {_num((load.get('start_lag_p99_ns') or 0) / 1e6, 'ms')} ms"
            + (
                f", {load['censored']} unfinished at the end (counted at their lower bound)"
                if load.get("censored")
                else ""
            )
        )
    elif load.get("mode") == "closed":
        parts.append(f"closed loop, concurrency {load['concurrency']}")
    elif load.get("mode") == "external":
        parts.append(f"measured elsewhere: {load['issued']} request(s) handed in")
    else:
        parts.append("serial")
    if result.get("throughput_rps"):
        parts.append(f"{result['throughput_rps']:,.1f} rps")
    warm = result.get("warmup") or {}
    if warm:
        steady = (
            ""
            if warm["mode"] != "auto"
            else (", steady" if warm["steady"] else ", NOT steady (bound reached)")
        )
        parts.append(f"warm-up {warm['calls']} calls ({warm['mode']}{steady})")
    if result.get("cold_start_ms") is not None:
        parts.append(f"cold start {_num(result['cold_start_ms'], 'ms')} ms")
    return "; ".join(parts)


def _label(result: Row) -> str:
    nodeid = result.get("nodeid") or result.get("name") or ""
    return f"{nodeid} ({result['name']})" if result.get("named") else nodeid


def summary_rows(results: Sequence[Row], verbose: bool = False) -> list[str]:
    """One row per measurement (``verbose``: one per target as well)."""
    header = ["test", "n", "p50 ms", "p99 ms", "p99 bounds", "binding", "margin", "verdict"]
    rows = []
    for r in results:
        pct = r.get("percentiles_ms") or {}
        b = (r.get("percentile_bounds_ms") or {}).get("p99") or [None, None]
        binding = _binding(r)
        rows.append(
            [
                _label(r),
                str(r["n"]),
                _num(pct.get("p50"), "ms"),
                _num(pct.get("p99"), "ms"),
                f"[{_num(b[0], 'ms')}, {_num(b[1], 'ms')}]",
                _binding_text(binding),
                _pct(binding["margin"]) if binding else "-",
                r["decision"] + (f" ({r['outcome']})" if r.get("outcome") in _SHOWN else ""),
            ]
        )
        if verbose:
            for t in r["targets"]:
                rows.append(
                    [
                        f"  {t['metric']}",
                        str(t["n"]),
                        "",
                        _num(t["observed"], t["unit"]),
                        f"[{_num(t['lower'], t['unit'])}, {_num(t['upper'], t['unit'])}]",
                        _binding_text(t),
                        _pct(t["margin"]),
                        t["decision"],
                    ]
                )
    return render_columns(header, rows, [False, True, True, True, True, False, True, False])


def _binding(result: Row) -> Row | None:
    order = {"FAIL": 0, "INCONCLUSIVE": 1, "PASS": 2}
    rows = [t for t in result["targets"] if t.get("margin") is not None]
    if not rows:
        return None
    best: Row = min(rows, key=lambda t: (order[t["decision"]], t["margin"]))
    return best


def accuracy_rows(results: Sequence[Row]) -> list[str]:
    """One row per accuracy gate."""
    rows = []
    for r in results:
        t = {row["metric"]: row for row in r["targets"]}
        drop, agree = t["drop"], t.get("agreement")
        rows.append(
            [
                r["nodeid"] if r.get("name") == "accuracy" else f"{r['nodeid']} ({r['name']})",
                str(r["n"]),
                _num(t["reference_accuracy"]["observed"], ""),
                _num(t["accuracy"]["observed"], ""),
                f"{_num(drop['observed'], '')} [{_num(drop['lower'], '')}, "
                f"{_num(drop['upper'], '')}]",
                _num(drop["target"], ""),
                _num(agree["observed"], "") if agree else "-",
                r["decision"],
            ]
        )
    return render_columns(
        ["test", "n", "ref acc", "acc", "drop [bounds]", "max drop", "agreement", "verdict"],
        rows,
        [False, True, True, True, True, True, True, False],
    )


def _binding_text(t: Row | None) -> str:
    if t is None:
        return "-"
    op = ">=" if t["metric"] in HIGHER_IS_BETTER else "<="
    unit = t["unit"] or ""
    target = (
        f"{t['target']:.2%}" if t["metric"] in ("error_rate", "goodput") else f"{t['target']:g}"
    )
    return f"{t['metric']}{op}{target}{unit}"


def legend(confidence: float | None = None) -> list[str]:
    conf = f"{confidence * 100:g}%" if confidence else "the stated confidence"
    return [
        "legend: p50/p99 = nearest-rank percentiles of the timed samples; p99 bounds = "
        f"one-sided {conf} confidence bounds",
        "  (binomial order statistics, no distribution assumed, error spent over sequential "
        "looks); binding = the target closest to",
        "  being missed; margin = (target - estimate) / target, negative = over target; "
        "verdict PASS: upper bound <= target,",
        "  FAIL: lower bound > target, INCONCLUSIVE: neither within the sampling budget.",
    ]
