"""Goodput through the plugin: ``@pytest.mark.slo(goodput=..., goodput_ms=...)`` with
``latency(fn, check=...)``: its own row in the terminal table, the JSON and the HTML report."""

from __future__ import annotations

import json

import pytest

RUN = """
import itertools
import pytest
from pytest_latency import LatencyMissed

def make_answers(every):
    count = itertools.count(1)
    def answer():
        i = next(count)
        return "wrong" if every and i % every == 0 else "right"
    return answer

@pytest.mark.slo(p99_ms=1000, goodput=0.99, goodput_ms=1000)
def test_fast_but_wrong(latency):
    latency(make_answers(20), check=lambda a: a == "right", name="corrupt")

@pytest.mark.slo(p99_ms=1000, goodput=0.99, goodput_ms=1000)
def test_fast_and_right(latency):
    latency(make_answers(0), check=lambda a: a == "right", name="healthy")

@pytest.mark.slo(goodput=0.99, goodput_ms=1000)
def test_forgot_the_check(latency):
    latency(make_answers(0))

@pytest.mark.slo(p99_ms=1000)
def test_check_without_goodput(latency):
    latency(make_answers(0), check=bool)

@pytest.mark.xfail(strict=True, raises=LatencyMissed, reason="a known corrupting proxy")
@pytest.mark.slo(p99_ms=1000, goodput=0.99, goodput_ms=1000)
def test_known_corruption(latency):
    latency(make_answers(10), check=lambda a: a == "right")
"""


def test_goodput_is_decided_reported_and_enforced(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_demo=RUN)
    out = pytester.path / "out.json"
    # No --latency-html in the inner run, no plot here: pytester drops every module imported
    # during the test from sys.modules at teardown, and a matplotlib imported then leaves later
    # tests' plots failing on stale classes. The HTML targets table needs no plot.
    result = pytester.runpytest("-p", "no:xdist", "-p", "no:randomly", f"--latency-json={out}")
    result.assert_outcomes(passed=1, failed=3, xfailed=1)
    text = result.stdout.str()
    assert "FAIL: goodput 9" in text
    assert "is under 99.00% with 95% confidence" in text
    assert "goodput=0.99 needs check=" in text
    assert "check= judges answers for a goodput target, and this SLO has none" in text
    table_rows = [line for line in text.splitlines() if line.startswith("goodput")]
    assert table_rows
    assert all(">= 99" in line for line in table_rows), table_rows
    doc = json.loads(out.read_text())
    by_name = {r["name"]: r for r in doc["results"]}
    corrupt, healthy = by_name["corrupt"], by_name["healthy"]
    assert corrupt["decision"] == "FAIL"
    assert healthy["decision"] == "PASS"
    assert corrupt["spec"]["goodput"] == 0.99
    assert corrupt["spec"]["goodput_ms"] == 1000
    assert corrupt["wrong"] > 0
    assert healthy["wrong"] == 0
    rows = {t["metric"]: t for t in corrupt["targets"]}
    assert rows["p99"]["decision"] == "PASS"
    assert rows["goodput"]["decision"] == "FAIL"
    assert rows["goodput"]["observed"] == pytest.approx(1 - corrupt["wrong"] / corrupt["n"])
    from pytest_latency.report.html_parts import targets_table

    assert ">goodput<" in targets_table(corrupt)
