"""Input that would fail only at the end of a run, or in every test, is refused at start-up:
report paths that cannot be written, and a ``--latency-compare`` file of the right schema but
the wrong shape. The message names the option, the value and what is valid; nothing runs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

NEVER = "def test_never(): raise AssertionError('must not run')"

# Every option that names a file the run writes when it ends.
OUTPUT_OPTIONS = [
    ("--latency-json", "latency_json", "latency.json"),
    ("--latency-html", "latency_html", "latency.html"),
    ("--latency-save", "latency_save", "saved.json"),
    ("--latency-markdown", "latency_markdown", "latency.md"),
    ("--latency-benchmark-json", "latency_benchmark_json", "latency-bench.json"),
]


def assert_usage_error(result: pytest.RunResult, message: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    # fnmatch reads "[0]" as a character class: "[[]" is a literal "[".
    result.stderr.fnmatch_lines(["ERROR: " + message.replace("[", "[[]")])
    result.stdout.no_fnmatch_line("*test_never*")


# -- report paths --------------------------------------------------------------------------


@pytest.mark.parametrize(("flag", "ini", "name"), OUTPUT_OPTIONS)
def test_an_output_path_that_is_a_folder_is_a_usage_error(
    pytester: pytest.Pytester, flag: str, ini: str, name: str
) -> None:
    pytester.makepyfile(NEVER)
    folder = pytester.mkdir("reports" + Path(name).suffix)  # a folder whose name looks right
    result = pytester.runpytest(f"{flag}={folder.name}")
    assert_usage_error(
        result,
        f"'{folder.name}' is not a valid {flag} / ini {ini}: it is a folder; name a file "
        f"in it, e.g. {folder.name}/{name}. Valid: a file path in an existing, writable folder",
    )


@pytest.mark.parametrize(("flag", "ini", "name"), OUTPUT_OPTIONS)
def test_an_output_path_in_a_missing_folder_is_a_usage_error_and_creates_nothing(
    pytester: pytest.Pytester, flag: str, ini: str, name: str
) -> None:
    pytester.makepyfile(NEVER)
    result = pytester.runpytest(f"{flag}=missing/{name}")
    assert_usage_error(
        result,
        f"'missing/{name}' is not a valid {flag} / ini {ini}: its folder 'missing' does not "
        "exist; create the folder first. Valid: a file path in an existing, writable folder",
    )
    assert not (pytester.path / "missing").exists()


def test_an_output_path_from_the_ini_file_is_checked_too(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nlatency_markdown = missing/summary.md\n")
    pytester.makepyfile(NEVER)
    result = pytester.runpytest()
    assert_usage_error(
        result, "'missing/summary.md' is not a valid --latency-markdown / ini latency_markdown:*"
    )


def test_an_output_path_under_a_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(NEVER)
    (pytester.path / "notes").write_text("a file, not a folder")
    result = pytester.runpytest("--latency-json=notes/run.json")
    assert_usage_error(
        result,
        "'notes/run.json' is not a valid --latency-json / ini latency_json: 'notes' is a "
        "file, not a folder. Valid: *",
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_an_output_path_in_a_read_only_folder_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(NEVER)
    folder = pytester.mkdir("locked")
    folder.chmod(0o500)
    try:
        result = pytester.runpytest("--latency-json=locked/run.json")
    finally:
        folder.chmod(0o700)
    assert_usage_error(
        result,
        "'locked/run.json' is not a valid --latency-json / ini latency_json: its folder "
        "'locked' is not writable. Valid: *",
    )


# -- a marker value that the measurement would refuse -----------------------------------------


def test_a_negative_seed_is_a_collection_error_before_anything_is_measured(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pathlib
        import pytest

        @pytest.mark.slo(p99_ms=10, rate_rps=100, seed=-1)
        def test_target(latency):
            latency(pathlib.Path("ran.txt").write_text, "measured")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "test_a_negative_seed_*.py::test_target: invalid @pytest.mark.slo: "
            "seed=-1 is not valid; expected an integer >= 0"
        ]
    )
    assert not (pytester.path / "ran.txt").exists()


# -- --latency-compare=FILE -------------------------------------------------------------------


def saved_run_document() -> dict[str, Any]:
    """A minimal saved run of the right shape (what `pytest --latency-save` writes, trimmed)."""
    return {
        "schema": "pytest-latency/1",
        "environment": {"cpu_model": "A", "packages": {"numpy": "1.26.4"}},
        "results": [
            {
                "nodeid": "test_x.py::test_fast",
                "name": "sorted",
                "decision": "PASS",
                "spec": {"p99_ms": 10},
                "samples_ns": [1_200, 1_500, 2_000_000],
            }
        ],
    }


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set a dotted path (``results.0.samples_ns``) of the document to `value`."""

    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[last]

    return edit


RESULT = "results[0] (test_x.py::test_fast)"
SHAPES = [
    (_drop("results"), "base.json: 'results' is missing; expected a list of results*"),
    (_set("results", {"a": 1}), "base.json: 'results' is a dict; expected a list of results*"),
    (_set("results.0", [1, 2]), "base.json: results[0] is a list; expected an object*"),
    (_drop("results.0.nodeid"), "base.json: results[0] has no 'nodeid'; expected *"),
    (_set("results.0.name", 3), f"base.json: {RESULT}.name=3 is not valid; expected a string"),
    (
        _set("results.0.samples_ns", "1,2"),
        f"base.json: {RESULT}.samples_ns='1,2' is not valid; expected a list of integer "
        "nanoseconds",
    ),
    (
        _set("results.0.samples_ns", [1_000, "fast"]),
        f"base.json: {RESULT}.samples_ns[1]='fast' is not valid; expected an integer number "
        "of nanoseconds >= 0",
    ),
    (
        _set("results.0.samples_ns", [1_000, True]),
        f"base.json: {RESULT}.samples_ns[1]=True is not valid; expected an integer number*",
    ),
    (
        _set("results.0.samples_ns", [1_000, -5]),
        f"base.json: {RESULT}.samples_ns[1]=-5 is not valid; expected an integer number*",
    ),
    (
        _set("results.0.samples_ns", [1_000, float("nan")]),
        f"base.json: {RESULT}.samples_ns[1]=nan is not valid; expected an integer number*",
    ),
    (
        _set("results.0.samples_ns", [2.5, 3.25, 11.0]),
        f"base.json: {RESULT}.samples_ns[0]=2.5 is not valid: samples must be integer "
        "nanoseconds; these look like milliseconds (multiply by 1e6)",
    ),
    (
        _set("results.0.samples_ns", [0.0025, 0.003]),
        f"base.json: {RESULT}.samples_ns[0]=0.0025 is not valid: samples must be integer "
        "nanoseconds; these look like seconds (multiply by 1e9)",
    ),
    (_set("results.0.spec", [10]), f"base.json: {RESULT}.spec=[10] is not valid; expected an *"),
    (_set("environment", []), "base.json: 'environment' is a list; expected an object*"),
    (
        _set("environment.packages", ["numpy"]),
        "base.json: environment.packages=['numpy'] is not valid; expected an object*",
    ),
]


@pytest.mark.parametrize(("edit", "message"), SHAPES)
def test_a_saved_run_of_the_wrong_shape_is_a_usage_error_naming_the_file_and_the_field(
    pytester: pytest.Pytester, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    doc = saved_run_document()
    edit(doc)
    (pytester.path / "base.json").write_text(json.dumps(doc))
    pytester.makepyfile(NEVER)
    result = pytester.runpytest("--latency-compare=base.json")
    assert_usage_error(result, f"--latency-compare: {message}")


def test_a_saved_run_of_the_right_shape_is_accepted(pytester: pytest.Pytester) -> None:
    (pytester.path / "base.json").write_text(json.dumps(saved_run_document()))
    pytester.makepyfile("def test_plain(): pass")
    pytester.runpytest("--latency-compare=base.json").assert_outcomes(passed=1)


def test_a_saved_run_path_that_is_a_folder_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.mkdir("base.json")
    pytester.makepyfile(NEVER)
    result = pytester.runpytest("--latency-compare=base.json")
    assert_usage_error(
        result,
        "--latency-compare: base.json: is a folder; expected a file written by "
        "pytest --latency-json or --latency-save",
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a file whatever its mode")
def test_an_unreadable_saved_run_is_a_usage_error(pytester: pytest.Pytester) -> None:
    path = pytester.path / "base.json"
    path.write_text(json.dumps(saved_run_document()))
    path.chmod(0)
    pytester.makepyfile(NEVER)
    try:
        result = pytester.runpytest("--latency-compare=base.json")
    finally:
        path.chmod(0o600)
    assert_usage_error(result, "--latency-compare: base.json: cannot read it: Permission denied")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"schema": "pytest-latency/1", "results": [', "base.json: not JSON (*)"),
        (b"\xff\xfe\x00binary", "base.json: not JSON (not UTF-8 text: *)"),
    ],
)
def test_a_saved_run_that_is_not_json_is_a_usage_error(
    pytester: pytest.Pytester, content: bytes, message: str
) -> None:
    (pytester.path / "base.json").write_bytes(content)
    pytester.makepyfile(NEVER)
    result = pytester.runpytest("--latency-compare=base.json")
    assert_usage_error(result, f"--latency-compare: {message}")
