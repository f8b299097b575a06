"""Every option of the plugin in one table, and the one resolver: command-line option
(default ``None``) -> ini value -> built-in default, resolved once in ``pytest_configure`` into
the frozen `Settings` kept in ``config.stash``. A bad value is a `pytest.UsageError` naming
the value and the valid ones, before anything is measured.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..core.spec import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MAX_TIME_S,
    DEFAULT_REGRESSION_THRESHOLD,
    MAX_TIME_S,
    MAX_WARMUP_CALLS,
)
from .keys import INCONCLUSIVE_POLICIES, PROGRESS_MODES, Settings


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


def _threshold(raw: Any) -> float:
    # core.regression imports numpy: loaded only when the option is given, not for --help.
    from ..core.regression import parse_threshold

    return parse_threshold(raw)


def _master(raw: Any) -> tuple[str, int]:
    # core.cluster only parses here (no Locust import: it runs in subprocesses).
    from ..core.cluster import parse_master

    return parse_master(str(raw).strip())


@dataclass(frozen=True)
class Option:
    """One option: its flag, its ini key (`dest`), how it is read and checked, its default.

    `convert` turns the raw value into the setting or raises `ValueError`, and `valid` says
    what would have been accepted. `default` is the setting when neither the flag nor the ini
    key is given (``None``: unset); ``{default}`` in `help` shows it. `output` names a report
    written when the run ends, with an example file name: its folder is checked now
    (`output_path`).
    """

    dest: str
    flag: str
    help: str
    metavar: str
    convert: Callable[[Any], Any] = str
    valid: str = ""
    output: str | None = None
    boolean: bool = False
    default: Any = None

    def __post_init__(self) -> None:
        shown = f"{self.default:g}" if isinstance(self.default, float) else str(self.default)
        object.__setattr__(self, "help", self.help.replace("{default}", shown))

    @property
    def name(self) -> str:
        """How errors name it: ``--latency-max-time / ini latency_max_time_s``."""
        return f"{self.flag} / ini {self.dest}"


OPTIONS: tuple[Option, ...] = (
    Option(
        "latency_confidence",
        "--latency-confidence",
        "default confidence for SLO decisions, in (0, 1) (default {default})",
        "CONFIDENCE",
        _confidence,
        "a number strictly between 0 and 1, e.g. 0.95",
        default=DEFAULT_CONFIDENCE,
    ),
    Option(
        "latency_warmup",
        "--latency-warmup",
        "default warm-up: a call count or 'auto' (steady-state detection; default {default})",
        "WARMUP",
        _warmup,
        f"a count from 0 to {MAX_WARMUP_CALLS:,} or 'auto'",
        default="auto",
    ),
    Option(
        "latency_max_time_s",
        "--latency-max-time",
        "default time budget per measurement in seconds (default {default})",
        "S",
        _seconds,
        f"seconds > 0, at most {MAX_TIME_S:,} (one day), e.g. 30",
        default=DEFAULT_MAX_TIME_S,
    ),
    Option(
        "latency_gc",
        "--latency-gc",
        "garbage collection inside timed blocks: 'off' (default) or 'on'",
        "GC",
        _choice(("off", "on")),
        "off, on",
        default="off",
    ),
    Option(
        "latency_seed",
        "--latency-seed",
        "seed for Poisson arrival schedules (default: random, printed in the header)",
        "SEED",
        _seed,
        "an integer >= 0",
        # no default here: `resolve` is given the run's random one
    ),
    Option(
        "latency_inconclusive",
        "--latency-inconclusive",
        "what an INCONCLUSIVE verdict does to its test: fail (default), warn, pass",
        "INCONCLUSIVE",
        _choice(INCONCLUSIVE_POLICIES),
        ", ".join(INCONCLUSIVE_POLICIES),
        default="fail",
    ),
    Option(
        "latency_json",
        "--latency-json",
        "write every latency result, with raw samples and an environment fingerprint, to PATH",
        "JSON",
        output="latency.json",
    ),
    Option(
        "latency_progress",
        "--latency-progress",
        "live progress line while measuring: auto (default: on a terminal, not with -q), on, off",
        "PROGRESS",
        _choice(PROGRESS_MODES),
        ", ".join(PROGRESS_MODES),
        default="auto",
    ),
    Option(
        "latency_benchmark_json",
        "--latency-benchmark-json",
        "also write the latency results in pytest-benchmark's JSON format to PATH "
        "(for pytest-benchmark compare)",
        "JSON",
        output="latency-bench.json",
    ),
    Option(
        "latency_html",
        "--latency-html",
        "write a self-contained HTML report with latency plots to PATH (.html; needs "
        "matplotlib: pip install 'pytest-latency[report]')",
        "HTML",
        _html_path,
        "a file path ending in .html or .htm",
        output="latency.html",
    ),
    Option(
        "latency_save",
        "--latency-save",
        "save this run (the --latency-json document, raw samples included) to PATH, a saved "
        "run for --latency-compare; may be given with --latency-json",
        "PATH",
        output="saved.json",
    ),
    Option(
        "latency_compare",
        "--latency-compare",
        "compare each result with the same test's result in a saved run (--latency-save or "
        "--latency-json) and report regressions",
        "PATH",
    ),
    Option(
        "latency_fail_on_regression",
        "--latency-fail-on-regression",
        "with --latency-compare: fail a test whose percentile is slower than the saved run's by "
        "more than PCT with confidence, e.g. 10% (a test's slo(regression=0.05) overrides it)",
        "PCT",
        _threshold,
        "a percentage with a % sign between 0% and 1000%, e.g. 10% (the slowdown of a "
        "percentile against the saved run that fails a test)",
        # the threshold a comparison reports against; giving the option is what fails tests
        default=DEFAULT_REGRESSION_THRESHOLD,
    ),
    Option(
        "latency_markdown",
        "--latency-markdown",
        "write a GitHub-flavoured markdown summary to PATH (also appended to "
        "$GITHUB_STEP_SUMMARY when that is set)",
        "PATH",
        output="latency.md",
    ),
    Option(
        "latency_compare_strict",
        "--latency-compare-strict",
        "with --latency-compare: refuse to compare (usage error) when the environment differs "
        "from the saved run's (CPU, cores, Python, key package versions)",
        "",
        boolean=True,
        default=False,
    ),
    Option(
        "latency_locust_master",
        "--latency-locust-master",
        "engine='locust' across machines: open the Locust master on HOST:PORT and wait for the "
        "test's workers=N workers started elsewhere (locust --worker -f \"$(python -m "
        'pytest_latency.locust_engine)" --master-host HOST --master-port PORT); by default '
        "the plugin starts N local workers per test",
        "HOST:PORT",
        _master,
        "HOST:PORT, e.g. 0.0.0.0:5557",
    ),
    Option(
        "latency_locust_timeout_s",
        "--latency-locust-timeout",
        "with --latency-locust-master: seconds to wait for the workers to connect "
        "(default {default})",
        "S",
        _seconds,
        "seconds > 0, e.g. 120",
        default=60.0,
    ),
)
BY_DEST = {option.dest: option for option in OPTIONS}
# Options that only mean something beside --latency-compare.
NEEDS_COMPARE = ("latency_fail_on_regression", "latency_compare_strict")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("latency", "latency SLOs (pytest-latency)")
    for option in OPTIONS:
        if option.boolean:
            group.addoption(
                option.flag, dest=option.dest, action="store_true", default=None, help=option.help
            )
            parser.addini(option.dest, option.help, type="bool", default=False)
            continue
        # argparse %-formats option help (not ini help): "10%" must be written "10%%" there.
        group.addoption(
            option.flag,
            dest=option.dest,
            default=None,
            metavar=option.metavar,
            help=option.help.replace("%", "%%"),
        )
        parser.addini(option.dest, option.help, default=None)


def raw_value(config: pytest.Config, dest: str) -> Any:
    """The option's value, else its ini value, else ``None``."""
    value = config.getoption(dest, None)
    if value is None:
        value = config.getini(dest) or None
    return value


def output_path(config: pytest.Config, option: Option, value: str) -> str:
    """`value`, the path of a report written when the run ends, or a `pytest.UsageError` now
    if writing it then could only fail: it is a folder, its folder is missing (nothing is
    created for you: a typo would scatter reports), is a file, or is not writable."""
    if getattr(config, "workerinput", None) is not None:
        return value  # xdist workers write no reports; the controller checked the path
    path = Path(value)
    folder = path.parent
    if path.is_dir():
        why = f"it is a folder; name a file in it, e.g. {path / (option.output or '')}"
    elif not folder.exists():
        why = f"its folder {str(folder)!r} does not exist; create the folder first"
    elif not folder.is_dir():
        why = f"{str(folder)!r} is a file, not a folder"
    elif not os.access(folder, os.W_OK | os.X_OK):
        why = f"its folder {str(folder)!r} is not writable"
    else:
        return value
    raise pytest.UsageError(
        f"{value!r} is not a valid {option.name}: {why}. "
        "Valid: a file path in an existing, writable folder"
    )


def _value(config: pytest.Config, option: Option) -> Any:
    raw = raw_value(config, option.dest)
    if option.boolean or raw is None:
        return bool(raw) if option.boolean else None
    try:
        value = option.convert(raw)
    except (TypeError, ValueError):
        raise pytest.UsageError(
            f"{raw!r} is not a valid {option.name}. Valid: {option.valid}"
        ) from None
    if option.output is not None:
        value = output_path(config, option, str(value))
    return value


def resolve(config: pytest.Config, default_seed: int) -> Settings:
    """Read every option once, with a `pytest.UsageError` for any bad or orphaned value."""
    values = {option.dest: _value(config, option) for option in OPTIONS}
    for dest in NEEDS_COMPARE:
        if values[dest] and not values["latency_compare"]:
            raise pytest.UsageError(
                f"{BY_DEST[dest].flag} needs --latency-compare=PATH: the saved run (from "
                "--latency-save) to compare this run with"
            )

    def pick(dest: str) -> Any:
        """The value given, else the table's default."""
        return BY_DEST[dest].default if values[dest] is None else values[dest]

    return Settings(
        confidence=pick("latency_confidence"),
        warmup=pick("latency_warmup"),
        max_time_s=pick("latency_max_time_s"),
        gc=pick("latency_gc"),
        seed=default_seed if values["latency_seed"] is None else values["latency_seed"],
        inconclusive=pick("latency_inconclusive"),
        json_path=pick("latency_json"),
        html_path=pick("latency_html"),
        progress=pick("latency_progress"),
        benchmark_json_path=pick("latency_benchmark_json"),
        save_path=pick("latency_save"),
        compare_path=pick("latency_compare"),
        threshold=pick("latency_fail_on_regression"),
        fail_on_regression=values["latency_fail_on_regression"] is not None,
        strict=pick("latency_compare_strict"),
        markdown_path=pick("latency_markdown"),
        locust_master=pick("latency_locust_master"),
        locust_timeout_s=pick("latency_locust_timeout_s"),
    )


def header(settings: Settings) -> list[str]:
    """The report header: the effective settings, so that a run can be reproduced."""
    clock = time.get_clock_info("perf_counter")
    lines = [
        f"latency: confidence={settings.confidence:g} (per target, spent over sequential "
        f"looks), warmup={settings.warmup}, gc={settings.gc} in timed blocks, "
        f"inconclusive={settings.inconclusive}, max_time_s={settings.max_time_s:g}, "
        f"seed={settings.seed}, timer=perf_counter_ns (resolution {clock.resolution:g} s"
        f"{', monotonic' if clock.monotonic else ''})"
    ]
    parts = []
    if settings.compare_path:
        parts.append(
            f"compare={settings.compare_path} (threshold {settings.threshold:.0%}, "
            f"fail on regression: {'yes' if settings.fail_on_regression else 'no'}, "
            f"strict environment: {'yes' if settings.strict else 'no'})"
        )
    if settings.save_path:
        parts.append(f"save={settings.save_path}")
    if settings.markdown_path:
        parts.append(f"markdown={settings.markdown_path}")
    if parts:
        lines.append("latency saved run: " + ", ".join(parts))
    if settings.locust_master:
        host, port = settings.locust_master
        lines.append(
            f"latency locust: master on {host}:{port}, waiting up to "
            f"{settings.locust_timeout_s:g} s for remote workers"
        )
    return lines
