"""tox.ini stays in step with the project: the envs the README lists, the pytest floor the
package declares, and the same lint checks as ``./dev lint``. (.ci/run also runs the cheap
envs, pytest-min and pytest-latest, for real.)"""

from __future__ import annotations

import configparser
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tox() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini")
    return parser


def _envs() -> list[str]:
    return [e.strip() for e in _tox()["tox"]["env_list"].split(",")]


def test_every_env_the_readme_names_is_in_the_env_list_and_back() -> None:
    readme = (ROOT / "README.md").read_text()
    line = re.search(r"`tox` has (.+?)\(", readme, re.S)
    assert line, "README.md: the sentence listing the tox envs is gone"
    assert set(re.findall(r"`([\w-]+)`", line.group(1))) == set(_envs())


def test_pytest_min_tests_the_pytest_floor_the_package_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (floor,) = [d.split(">=")[1] for d in project["dependencies"] if d.startswith("pytest>=")]
    env = _tox()["testenv:pytest-min"]
    assert env["deps"].strip() == f"pytest=={floor}.*"
    # Without this, the extras' own requirements lift pytest above the floor.
    assert env["constrain_package_deps"].strip() == "true"


def test_the_lint_env_runs_the_same_script_as_dev_lint_with_the_types_it_needs() -> None:
    env = _tox()["testenv:lint"]
    assert env["commands"].strip() == "bash .ci/lint"
    assert {e.strip() for e in env["extras"].split(",")} >= {"lint", "report"}
    assert "exec .ci/lint" in (ROOT / "dev").read_text()


def test_ci_runs_lint_tests_and_the_cheap_envs() -> None:
    steps = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and ln[0] != "#"]
    assert steps[-6:] == [
        "./dev lint",
        "suite=0",
        "./dev test || suite=$?",
        ".venv/bin/python -m reference_system.serving.leaks || suite=$((suite ? suite : $?))",
        'if [ "$suite" -ne 0 ]; then exit "$suite"; fi',
        ".venv/bin/tox -e pytest-min,pytest-latest",
    ]


def test_ci_checks_for_leftovers_even_when_the_suite_fails_and_keeps_its_status(
    tmp_path: Path,
) -> None:
    """The leaks check runs after a failed suite too, and the run exits with the suite's
    status (or the check's, if only the check failed)."""
    import subprocess

    script = (ROOT / ".ci" / "run").read_text()
    body = script[script.index("suite=0") : script.index(".venv/bin/tox")]
    for test_rc, leaks_rc, want in [(0, 0, 0), (3, 0, 3), (3, 1, 3), (0, 1, 1)]:
        log = tmp_path / "log"
        fake = (
            f"set -euo pipefail\n"
            f"dev() {{ echo test >> {log}; return {test_rc}; }}\n"
            f"leaks() {{ echo leaks >> {log}; return {leaks_rc}; }}\n"
            + body.replace("./dev test", "dev").replace(
                ".venv/bin/python -m reference_system.serving.leaks", "leaks"
            )
            + f"echo tox >> {log}\n"
        )
        log.write_text("")
        rc = subprocess.run(["bash", "-c", fake], check=False).returncode
        assert rc == want, (test_rc, leaks_rc)
        assert log.read_text().split() == ["test", "leaks"] + (["tox"] if want == 0 else [])
