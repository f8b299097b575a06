"""``pytest-latency compare BEFORE AFTER``: reads two saved runs, prints the change table, and
exits 1 on a regression, 0 otherwise, 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_latency.cli import main


def _run(path: Path, scales: dict[str, float], env: dict[str, Any] | None = None) -> str:
    rng = np.random.default_rng(11)
    results = [
        {
            "nodeid": f"test_m.py::{name}",
            "name": name,
            "named": False,
            "confidence": 0.95,
            "decision": "PASS",
            "spec": {"p99_ms": 50},
            "samples_ns": np.rint(rng.lognormal(np.log(2e6), 0.3, 2000) * scale)
            .astype(np.int64)
            .tolist(),
        }
        for name, scale in scales.items()
    ]
    environment = {"cpu_model": "A", "python": "3.11.7", "packages": {"numpy": "1.26.4"}}
    environment.update(env or {})
    report = {"schema": "pytest-latency/1", "results": results, "environment": environment}
    path.write_text(json.dumps(report))
    return str(path)


def test_compare_exits_1_on_a_regression_and_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _run(tmp_path / "before.json", {"test_a": 1.0, "test_b": 1.0, "test_gone": 1.0})
    after = _run(tmp_path / "after.json", {"test_a": 1.5, "test_b": 0.5, "test_new": 1.0})
    assert main(["compare", before, after, "--threshold", "10%"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{after} vs {before}: 1 regression, 1 improvement, 1 new"
    assert f"1 result(s) of {before} are not in {after}" in out
    header = next(i for i, line in enumerate(out) if line.startswith("test "))
    assert out[header].split() == [
        "test", "percentile", "before", "ms", "after", "ms", "ratio", "[bounds]", "threshold",
        "change",
    ]  # fmt: skip
    rows = [line.split() for line in out[header + 2 : header + 5]]
    assert [(r[0], r[1], r[-1]) for r in rows] == [
        ("test_m.py::test_a", "p99", "regression"),
        ("test_m.py::test_b", "p99", "improvement"),
        ("test_m.py::test_new", "-", "new"),
    ]
    assert rows[0][4].endswith("x")
    assert rows[0][5].startswith("[")


def test_compare_exits_0_without_a_regression_and_warns_of_a_differing_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _run(tmp_path / "before.json", {"test_a": 1.0})
    after = _run(tmp_path / "after.json", {"test_a": 1.0}, env={"cpu_model": "B"})
    assert main(["compare", before, after]) == 0
    out = capsys.readouterr().out
    assert "warning: the environments differ: cpu_model 'A' -> 'B'" in out
    assert "regression" not in out.split("legend:")[0].split("\n", 1)[1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--threshold", "0.1"], "'0.1' is not a valid threshold; expected a percentage"),
        (["--confidence", "95"], "--confidence 95.0 is not valid"),
    ],
)
def test_compare_exits_2_on_bad_input_naming_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    before = _run(tmp_path / "before.json", {"test_a": 1.0})
    assert main(["compare", before, before, *extra]) == 2
    assert message in capsys.readouterr().err


def test_compare_exits_2_for_a_missing_or_foreign_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _run(tmp_path / "before.json", {"test_a": 1.0})
    assert main(["compare", before, str(tmp_path / "nope.json")]) == 2
    assert "nope.json: no such file" in capsys.readouterr().err
    (tmp_path / "other.json").write_text(json.dumps({"schema": "other/1"}))
    assert main(["compare", str(tmp_path / "other.json"), before]) == 2
    assert "schema 'other/1' is not 'pytest-latency/1'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda doc: doc.update(results={"test_a": []}),
            "'results' is a dict; expected a list of results",
        ),
        (
            lambda doc: doc["results"][0].update(samples_ns=[2.5, 3.1]),
            "results[0] (test_m.py::test_a).samples_ns[0]=2.5 is not valid: samples must be "
            "integer nanoseconds; these look like milliseconds (multiply by 1e6)",
        ),
        (
            lambda doc: doc["results"][0].pop("name"),
            "results[0] has no 'name'; expected every result to have nodeid, name",
        ),
    ],
)
def test_compare_exits_2_for_a_run_of_the_wrong_shape_naming_the_file_and_field(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: Any,
    message: str,
) -> None:
    good = _run(tmp_path / "good.json", {"test_a": 1.0})
    doc = json.loads(Path(good).read_text())
    edit(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    for args in ([good, str(bad)], [str(bad), good]):
        assert main(["compare", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"pytest-latency: error: {bad}: {message}"), err


def test_compare_exits_2_for_a_folder_instead_of_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _run(tmp_path / "good.json", {"test_a": 1.0})
    assert main(["compare", good, str(tmp_path)]) == 2
    assert f"{tmp_path}: is a folder; expected a file written by" in capsys.readouterr().err


def test_show_exits_2_for_a_result_without_what_it_renders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run(tmp_path / "run.json", {"test_a": 1.0})  # no summary, n or targets: compare only
    assert main(["show", run]) == 2
    assert (
        f"{run}: results[0] has no 'summary'; expected every result to have nodeid, name, "
        "decision, summary, confidence, n, targets"
    ) in capsys.readouterr().err
