"""The JSON report (``--latency-json=PATH``): results plus the environment fingerprint."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from ..core.env import fingerprint
from ..core.result import SCHEMA
from .schema import LatencyReport


def build_report(
    results: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    cwd: str | os.PathLike[str] | None = None,
    accuracy: Sequence[Mapping[str, Any]] = (),
    comparisons: Sequence[Mapping[str, Any]] = (),
) -> LatencyReport:
    """The ``--latency-json`` document; its fields are described (typed) in `schema`."""
    # The parts arrive as the plain dicts their ``to_dict`` methods build; the description
    # is what they hold together (checked against a real run in the tests).
    return {
        "schema": SCHEMA,
        "settings": cast(Any, dict(settings)),
        "environment": cast(Any, fingerprint(cwd)),
        "results": cast(Any, list(results)),
        "accuracy": cast(Any, list(accuracy)),
        "comparisons": cast(Any, list(comparisons)),
    }


def write_report(path: str | os.PathLike[str], report: Mapping[str, Any]) -> Path:
    """Write atomically: a reader never sees half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str) + "\n")
    tmp.replace(target)
    return target


def load_report(path: str | os.PathLike[str], *, rendered: bool = False) -> dict[str, Any]:
    """Read a saved report, refusing files that are not ours, of an unknown schema, or of the
    wrong shape (`check_report`), with a `ValueError` naming the file and the field.

    `rendered`: the results must also hold what the verdict table shows (`RENDERED_FIELDS`).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a folder; expected {_WRITTEN_BY}") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not JSON (not UTF-8 text: {exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{path}: schema {found!r} is not {SCHEMA!r}; was it written by pytest --latency-json?"
        )
    check_report(data, rendered=rendered, where=str(path))
    return data


_WRITTEN_BY = "a file written by pytest --latency-json or --latency-save"
# What every reader of a result relies on: the test and the name it is matched by.
REQUIRED_FIELDS = ("nodeid", "name")
# What `pytest-latency show` and the plots render of each result.
RENDERED_FIELDS = ("decision", "summary", "confidence", "n", "targets")
_FIELD_TYPES: dict[str, type] = {
    "nodeid": str,
    "name": str,
    "decision": str,
    "summary": str,
    "confidence": float,
    "n": int,
    "targets": list,
    "spec": dict,
}
_EXPECTED = {
    str: "a string",
    float: "a number strictly between 0 and 1",
    int: "an integer >= 0",
    list: "a list",
    dict: "an object",
}
_MAX_NS = 2**63 - 1  # the most an int64 array of samples holds


def check_report(report: Mapping[str, Any], *, rendered: bool = False, where: str = "") -> None:
    """Refuse (`ValueError`) a report whose shape its readers cannot use, naming the field: a
    broken saved run must fail once, before anything runs, not with a `KeyError` in every test.

    A result must have `REQUIRED_FIELDS` (and `RENDERED_FIELDS` when `rendered`); any field of
    `_FIELD_TYPES` it has must be of that type; ``samples_ns``, when present, are integer
    nanoseconds >= 0.
    """
    at = f"{where}: " if where else ""
    results = report.get("results")
    if not isinstance(results, list):
        state = "missing" if results is None else f"a {type(results).__name__}"
        raise ValueError(
            f"{at}'results' is {state}; expected a list of results, as in {_WRITTEN_BY}"
        )
    for key, kind in (("environment", dict), ("accuracy", list), ("comparisons", list)):
        value = report.get(key)
        if value is not None and not isinstance(value, kind):
            raise ValueError(f"{at}{key!r} is a {type(value).__name__}; expected {_EXPECTED[kind]}")
    environment = report.get("environment") or {}
    for key in ("packages", "git"):
        value = environment.get(key)
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{at}environment.{key}={value!r} is not valid; expected an object")
    required = REQUIRED_FIELDS + (RENDERED_FIELDS if rendered else ())
    for i, result in enumerate(results):
        _check_result(result, f"{at}results[{i}]", required)


def _check_result(result: Any, label: str, required: tuple[str, ...]) -> None:
    if not isinstance(result, dict):
        raise ValueError(f"{label} is a {type(result).__name__}; expected an object")
    for key in required:
        if key not in result:
            raise ValueError(
                f"{label} has no {key!r}; expected every result to have "
                f"{', '.join(required)}, as in {_WRITTEN_BY}"
            )
    if isinstance(result["nodeid"], str):
        label += f" ({result['nodeid']})"
    for key, kind in _FIELD_TYPES.items():
        value = result.get(key)
        if value is None and key not in required:
            continue
        if kind is float:  # a confidence
            ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1
        elif kind is int:  # a count
            ok = type(value) is int and value >= 0
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise ValueError(f"{label}.{key}={value!r} is not valid; expected {_EXPECTED[kind]}")
    regression = (result.get("spec") or {}).get("regression")
    if regression is not None and (
        isinstance(regression, bool) or not isinstance(regression, int | float)
    ):
        raise ValueError(
            f"{label}.spec.regression={regression!r} is not valid; expected a number (a share)"
        )
    if result.get("samples_ns") is not None:  # absent or null: saved without raw samples
        _check_samples(result["samples_ns"], f"{label}.samples_ns")


def _check_samples(samples: Any, label: str) -> None:
    """Integer nanoseconds >= 0. Fractions mean another unit: it is named when it shows."""
    if not isinstance(samples, list):
        raise ValueError(
            f"{label}={samples!r} is not valid; expected a list of integer nanoseconds"
        )
    if all(type(x) is int for x in samples) and (
        not samples or 0 <= min(samples) <= max(samples) <= _MAX_NS
    ):
        return  # what pytest writes, checked in one pass
    for j, x in enumerate(samples):
        if type(x) is float and math.isfinite(x) and x >= 0 and not x.is_integer():
            largest = max(v for v in samples if type(v) is float and math.isfinite(v))
            unit = "seconds (multiply by 1e9)" if largest < 1 else "milliseconds (multiply by 1e6)"
            raise ValueError(
                f"{label}[{j}]={x!r} is not valid: samples must be integer nanoseconds; "
                f"these look like {unit}"
            )
        is_number = type(x) is int or (type(x) is float and math.isfinite(x))
        if not (is_number and 0 <= x <= _MAX_NS):
            raise ValueError(
                f"{label}[{j}]={x!r} is not valid; expected an integer number of nanoseconds >= 0"
            )
