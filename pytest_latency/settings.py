"""Session settings: command-line option (default ``None``) -> ini value -> built-in default,
resolved once in ``pytest_configure`` into a frozen `Settings` kept in ``config.stash``."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .core.spec import DEFAULT_CONFIDENCE, DEFAULT_MAX_TIME_S, MAX_TIME_S, MAX_WARMUP_CALLS

INCONCLUSIVE_POLICIES = ("fail", "warn", "pass")
# Options that name a report written when the run ends (see `output_path`), and a file name
# each could take.
OUTPUT_EXAMPLES = {
    "latency_json": "latency.json",
    "latency_html": "latency.html",
    "latency_save": "baseline.json",
    "latency_markdown": "latency.md",
    "latency_benchmark_json": "latency-bench.json",
}

# (option dest, ini name, help, parser)
OPTIONS: list[tuple[str, str, str]] = [
    (
        "latency_confidence",
        "--latency-confidence",
        f"default confidence for SLO decisions, in (0, 1) (default {DEFAULT_CONFIDENCE})",
    ),
    (
        "latency_warmup",
        "--latency-warmup",
        "default warm-up: a call count or 'auto' (steady-state detection; default auto)",
    ),
    (
        "latency_max_time_s",
        "--latency-max-time",
        f"default time budget per measurement in seconds (default {DEFAULT_MAX_TIME_S:g})",
    ),
    (
        "latency_gc",
        "--latency-gc",
        "garbage collection inside timed blocks: 'off' (default) or 'on'",
    ),
    (
        "latency_seed",
        "--latency-seed",
        "seed for Poisson arrival schedules (default: random, printed in the header)",
    ),
    (
        "latency_inconclusive",
        "--latency-inconclusive",
        "what an INCONCLUSIVE verdict does to its test: fail (default), warn, pass",
    ),
    (
        "latency_json",
        "--latency-json",
        "write every latency result, with raw samples and an environment fingerprint, to PATH",
    ),
    (
        "latency_progress",
        "--latency-progress",
        "live progress line while measuring: auto (default: on a terminal, not with -q), on, off",
    ),
    (
        "latency_benchmark_json",
        "--latency-benchmark-json",
        "also write the latency results in pytest-benchmark's JSON format to PATH "
        "(for pytest-benchmark compare)",
    ),
    (
        "latency_html",
        "--latency-html",
        "write a self-contained HTML report with latency plots to PATH (.html; needs "
        "matplotlib: pip install 'pytest-latency[report]')",
    ),
]


@dataclass(frozen=True)
class Settings:
    confidence: float
    warmup: int | str
    max_time_s: float
    gc: str
    seed: int
    inconclusive: str
    json_path: str | None
    html_path: str | None = None

    def spec_defaults(self) -> dict[str, Any]:
        """Defaults `Spec.resolved` uses for fields a marker leaves unset."""
        return {
            "confidence": self.confidence,
            "warmup": self.warmup,
            "max_time_s": self.max_time_s,
            "gc": self.gc,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "confidence": self.confidence,
            "warmup": self.warmup,
            "max_time_s": self.max_time_s,
            "gc": self.gc,
            "seed": self.seed,
            "inconclusive": self.inconclusive,
        }

    def header(self) -> str:
        clock = time.get_clock_info("perf_counter")
        return (
            f"latency: confidence={self.confidence:g} (per target, spent over sequential looks), "
            f"warmup={self.warmup}, gc={self.gc} in timed blocks, "
            f"inconclusive={self.inconclusive}, max_time_s={self.max_time_s:g}, "
            f"seed={self.seed}, timer=perf_counter_ns (resolution {clock.resolution:g} s"
            f"{', monotonic' if clock.monotonic else ''})"
        )


def _get(config: pytest.Config, dest: str) -> Any:
    value = config.getoption(dest, None)
    if value is None:
        value = config.getini(dest) or None
    return value


def _convert(name: str, raw: Any, convert: Callable[[Any], Any], valid: str) -> Any:
    try:
        return convert(raw)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"{raw!r} is not a valid {name}. Valid: {valid}") from None


def _confidence(raw: Any) -> float:
    value = float(raw)
    if not 0 < value < 1:
        raise ValueError
    return value


def _warmup(raw: Any) -> int | str:
    if str(raw).strip().lower() == "auto":
        return "auto"
    value = int(raw)
    if not 0 <= value <= MAX_WARMUP_CALLS:
        raise ValueError
    return value


def _seconds(raw: Any) -> float:
    value = float(raw)
    if not (math.isfinite(value) and 0 < value <= MAX_TIME_S):
        raise ValueError
    return value


def _seed(raw: Any) -> int:
    value = int(raw)
    if value < 0:  # numpy's default_rng refuses it, and only once an open loop starts
        raise ValueError
    return value


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def convert(raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in options:
            raise ValueError
        return value

    return convert


def _html_path(raw: Any) -> str:
    value = str(raw).strip()
    if not value.lower().endswith((".html", ".htm")):
        raise ValueError
    return value


def option_name(dest: str) -> str:
    """``latency_max_time_s`` -> ``--latency-max-time / ini latency_max_time_s``."""
    flag = (
        dest.replace("latency_", "--latency-").replace("_", "-").replace("-max-time-s", "-max-time")
    )
    return f"{flag} / ini {dest}"


def output_path(config: pytest.Config, dest: str, raw: Any) -> str | None:
    """`raw`, the path of a report written when the run ends, or a `pytest.UsageError` now
    if writing it then could only fail: it is a folder, its folder is missing (nothing is
    created for you: a typo would scatter reports), is a file, or is not writable."""
    if raw is None:
        return None
    value = str(raw)
    if getattr(config, "workerinput", None) is not None:
        return value  # xdist workers write no reports; the controller checked the path
    path = Path(value)
    folder = path.parent
    if path.is_dir():
        why = f"it is a folder; name a file in it, e.g. {path / OUTPUT_EXAMPLES[dest]}"
    elif not folder.exists():
        why = f"its folder {str(folder)!r} does not exist; create the folder first"
    elif not folder.is_dir():
        why = f"{str(folder)!r} is a file, not a folder"
    elif not os.access(folder, os.W_OK | os.X_OK):
        why = f"its folder {str(folder)!r} is not writable"
    else:
        return value
    raise pytest.UsageError(
        f"{value!r} is not a valid {option_name(dest)}: {why}. "
        "Valid: a file path in an existing, writable folder"
    )


def resolve(config: pytest.Config, default_seed: int) -> Settings:
    """Read options and ini values once, with a `pytest.UsageError` for any bad value."""

    def pick(dest: str, convert: Callable[[Any], Any], valid: str, default: Any) -> Any:
        raw = _get(config, dest)
        if raw is None:
            return default
        return _convert(option_name(dest), raw, convert, valid)

    return Settings(
        confidence=pick(
            "latency_confidence",
            _confidence,
            "a number strictly between 0 and 1, e.g. 0.95",
            DEFAULT_CONFIDENCE,
        ),
        warmup=pick(
            "latency_warmup", _warmup, f"a count from 0 to {MAX_WARMUP_CALLS:,} or 'auto'", "auto"
        ),
        max_time_s=pick(
            "latency_max_time_s",
            _seconds,
            f"seconds > 0, at most {MAX_TIME_S:,} (one day), e.g. 30",
            DEFAULT_MAX_TIME_S,
        ),
        gc=pick("latency_gc", _choice(("off", "on")), "off, on", "off"),
        seed=pick("latency_seed", _seed, "an integer >= 0", default_seed),
        inconclusive=pick(
            "latency_inconclusive",
            _choice(INCONCLUSIVE_POLICIES),
            ", ".join(INCONCLUSIVE_POLICIES),
            "fail",
        ),
        json_path=output_path(config, "latency_json", _get(config, "latency_json")),
        html_path=output_path(
            config,
            "latency_html",
            pick("latency_html", _html_path, "a file path ending in .html or .htm", None),
        ),
    )
