"""A real run's ``--latency-json`` document matches its typed description (`report.schema`):
every required key present, no key the description lacks, every value of its declared type,
recursively."""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest

from pytest_latency.report.schema import LatencyReport

RUN = """
import time
import pytest
from pytest_latency import stage

def handle():
    with stage("parse"):
        pass

@pytest.mark.slo(p50_ms=1000, max_samples=60)
def test_serial(latency):
    latency(handle)

@pytest.mark.slo(rate_rps=400, p50_ms=1000, max_samples=40)
def test_open_loop(latency):
    latency(lambda: None, name="open")

@pytest.mark.slo(p99_ms=10)
def test_judged_elsewhere(latency):
    latency.judge([1.0] * 1000, name="elsewhere", errors=0, unfinished_ms=[2.0])

def test_speedup(latency):
    latency.speedup(lambda: None, lambda: time.sleep(0.002), min_speedup=1.1, block=10)

def test_gate(accuracy_gate):
    ones = [1] * 100
    accuracy_gate(lambda x: ones, lambda x: ones, ones, ones, spec={"max_drop": 0.2})
"""


def mismatches(value: Any, hint: Any, path: str = "$") -> list[str]:
    """Where `value` (parsed JSON) is not of type `hint`; empty when it is."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return []
    if origin in (typing.Union, types.UnionType):
        found = [mismatches(value, a, path) for a in args]
        return [] if any(not f for f in found) else min(found, key=len)
    if origin is Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {args}"]
    if typing.is_typeddict(hint):
        if not isinstance(value, dict):
            return [f"{path}: expected an object ({hint.__name__}), got {value!r}"]
        fields = get_type_hints(hint)
        out = [f"{path}: missing {k!r}" for k in hint.__required_keys__ if k not in value]
        out += [f"{path}: {k!r} is not in {hint.__name__}" for k in value if k not in fields]
        for k, v in value.items():
            if k in fields:
                out += mismatches(v, fields[k], f"{path}.{k}")
        return out
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {value!r}"]
        return [e for i, v in enumerate(value) for e in mismatches(v, args[0], f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {value!r}"]
        return [e for k, v in value.items() for e in mismatches(v, args[1], f"{path}.{k}")]
    if hint is type(None):
        return [] if value is None else [f"{path}: expected null, got {value!r}"]
    if hint is float:  # JSON writes 50.0 as 50 when it came in as an int
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, hint)
    return [] if ok else [f"{path}: expected {hint.__name__}, got {value!r}"]


def test_the_checker_names_a_missing_key_an_unknown_key_and_a_wrong_type() -> None:
    doc = {"schema": "pytest-latency/1", "settings": {}, "results": [], "extra": 1}
    found = mismatches(doc, LatencyReport)
    assert "$: missing 'environment'" in found
    assert "$: 'extra' is not in LatencyReport" in found
    assert any(f.startswith("$.settings: missing 'seed'") for f in found)
    assert mismatches({"n": 1.5}, dict[str, int]) == ["$.n: expected int, got 1.5"]


def test_a_real_runs_json_matches_the_typed_description(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_demo=RUN)
    out = pytester.path / "out.json"
    saved = pytester.path / "saved.json"
    first = pytester.runpytest("-p", "no:xdist", f"--latency-save={saved}")
    first.assert_outcomes(passed=5)
    # Compared with a saved run, results also carry their "regression".
    result = pytester.runpytest(
        "-p", "no:xdist", f"--latency-json={out}", f"--latency-compare={saved}"
    )
    result.assert_outcomes(passed=5)
    doc = json.loads(out.read_text())
    assert mismatches(doc, LatencyReport) == []
    assert (len(doc["results"]), len(doc["accuracy"]), len(doc["comparisons"])) == (3, 1, 1)
    assert all("regression" in r and "samples_ns" in r for r in doc["results"])
    assert doc["results"][0]["stages_ms"]["parse"]["n"] == doc["results"][0]["n"]
    assert mismatches(json.loads(saved.read_text()), LatencyReport) == []
