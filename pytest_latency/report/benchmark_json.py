"""Latency results in pytest-benchmark's JSON format (``--latency-benchmark-json=PATH``).

The file has the structure ``pytest --benchmark-json`` writes (``machine_info``,
``commit_info``, ``benchmarks[]``, ``datetime``, ``version``), so pytest-benchmark's tools
load it::

    pytest -m slo --latency-benchmark-json=latency.json
    pytest-benchmark compare latency.json old-run.json --columns=min,median,mean,max

Each measurement is one benchmark whose rounds are single calls (``iterations`` 1; seconds,
as pytest-benchmark stores them), with every statistic computed the way pytest-benchmark's
``Stats`` computes it. pytest-benchmark has no percentiles: the verdict, p50/p99 and their
bounds travel in ``extra_info["latency"]``. Nothing here imports pytest-benchmark.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from ..core.env import cpu_model, git_info

# The pytest-benchmark release whose format this follows, when pytest-benchmark is absent.
FORMAT_VERSION = "5.1.0"


def benchmark_stats(data: Sequence[float]) -> dict[str, Any]:
    """pytest-benchmark's ``Stats.as_dict()`` for `data` (seconds per round), same methods:
    quartiles by Tukey's hinges (Wikipedia "Method 3" for odd counts, "Method 2" for even),
    outliers as ``"stddev_outliers;iqr_outliers"``."""
    if not data:
        raise ValueError("no data: pytest-benchmark stats need at least one round")
    values = list(map(float, data))
    ordered = sorted(values)
    n = len(values)
    mean = statistics.mean(values)
    stddev = statistics.stdev(values) if n > 1 else 0
    q1, q3 = _quartiles(ordered)
    iqr = q3 - q1
    if n == 1:
        ld15iqr = hd15iqr = values[0]
    else:
        ld15iqr = ordered[bisect_left(ordered, q1 - 1.5 * iqr)]
        hd15iqr = ordered[bisect_right(ordered, q3 + 1.5 * iqr) - 1]
    stddev_outliers = sum(1 for v in values if v < mean - stddev or v > mean + stddev)
    iqr_outliers = sum(1 for v in values if v < q1 - 1.5 * iqr or v > q3 + 1.5 * iqr)
    total = sum(values)
    return {
        "min": ordered[0],
        "max": ordered[-1],
        "mean": mean,
        "stddev": stddev,
        "rounds": n,
        "median": statistics.median(values),
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_outliers,
        "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": ld15iqr,
        "hd15iqr": hd15iqr,
        "ops": n / total if total else 0,
        "total": total,
    }


def _quartiles(data: Sequence[float]) -> tuple[float, float]:
    n = len(data)
    if n == 1:
        return data[0], data[0]
    if n % 2:
        k, r = n // 4, n % 4
        if r == 1:
            return (
                0.25 * data[k - 1] + 0.75 * data[k],
                0.75 * data[3 * k] + 0.25 * data[3 * k + 1],
            )
        return (
            0.75 * data[k] + 0.25 * data[k + 1],
            0.25 * data[3 * k + 1] + 0.75 * data[3 * k + 2],
        )
    return statistics.median(data[: n // 2]), statistics.median(data[n // 2 :])


def machine_info() -> dict[str, Any]:
    """The keys of pytest-benchmark's ``machine_info`` (``cpu`` from /proc, not py-cpuinfo)."""
    return {
        "node": platform.node(),
        "processor": platform.processor(),
        "machine": platform.machine(),
        "python_compiler": platform.python_compiler(),
        "python_implementation": platform.python_implementation(),
        "python_implementation_version": platform.python_version(),
        "python_version": platform.python_version(),
        "python_build": list(platform.python_build()),
        "release": platform.release(),
        "system": platform.system(),
        "cpu": {
            "brand_raw": cpu_model(),
            "arch": platform.machine(),
            "count": os.cpu_count(),
            "python_version": sys.version.split()[0],
        },
    }


def commit_info(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    git = git_info(cwd)
    return {
        "id": git["commit"] if git else "unversioned",
        "time": None,
        "author_time": None,
        "dirty": bool(git and git["dirty"]),
        "project": os.path.basename(os.path.abspath(cwd or os.getcwd())),
        "branch": "(unknown)",
    }


def _names(results: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(name, fullname) per result: the test's, plus the measurement's label when a test has
    several measurements or labelled one (``latency(fn, name=...)``)."""
    per_test = Counter(r.get("nodeid", "") for r in results)
    out = []
    for r in results:
        nodeid = r.get("nodeid") or r.get("name") or "?"
        test = nodeid.split("::")[-1]
        # pytest-benchmark's own timings keep its name (the same test in its own JSON).
        labelled = r.get("named") and r.get("source") != "pytest-benchmark"
        if labelled or per_test[r.get("nodeid", "")] > 1:
            out.append((f"{test}:{r['name']}", f"{nodeid}:{r['name']}"))
        else:
            out.append((test, nodeid))
    return out


def benchmark_entry(result: Mapping[str, Any], name: str, fullname: str) -> dict[str, Any]:
    """One ``benchmarks[]`` entry from a result's JSON form (`Result.to_dict` with samples)."""
    iterations = int(result.get("benchmark_iterations") or 1)
    data = [ns / 1e9 for ns in result["samples_ns"]]
    stats = benchmark_stats(data)
    stats["data"] = data
    stats["iterations"] = iterations
    spec = result.get("spec") or {}
    param = fullname.split("[", 1)[1].rsplit("]", 1)[0] if "[" in fullname else None
    return {
        "group": None,
        "name": name,
        "fullname": fullname,
        "params": None,
        "param": param,
        "extra_info": {
            "latency": {
                "decision": result.get("decision"),
                "summary": result.get("summary"),
                "source": result.get("source", "pytest-latency"),
                "percentiles_ms": result.get("percentiles_ms"),
                "percentile_bounds_ms": result.get("percentile_bounds_ms"),
                "targets": {t["metric"]: t["target"] for t in result.get("targets", ())},
                "errors": result.get("errors", 0),
                "confidence": result.get("confidence"),
            }
        },
        "options": {
            "disable_gc": spec.get("gc") != "on",
            "timer": "time.perf_counter_ns",
            "min_rounds": spec.get("min_samples"),
            "max_time": spec.get("max_time_s"),
            "min_time": None,
            "warmup": spec.get("warmup"),
        },
        "stats": stats,
    }


def build_benchmark_json(
    results: Sequence[Mapping[str, Any]], cwd: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """The whole file. Results without successful samples are left out (pytest-benchmark
    cannot hold a benchmark with no rounds)."""
    kept = [r for r in results if r.get("samples_ns")]
    benchmarks = [benchmark_entry(r, *names) for r, names in zip(kept, _names(kept), strict=True)]
    try:
        version = metadata.version("pytest-benchmark")
    except metadata.PackageNotFoundError:
        version = FORMAT_VERSION
    return {
        "machine_info": machine_info(),
        "commit_info": commit_info(cwd),
        "benchmarks": benchmarks,
        "datetime": datetime.now(UTC).isoformat(),
        "version": version,
    }
