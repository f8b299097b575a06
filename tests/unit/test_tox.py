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
    assert steps[-4:] == [
        "./dev lint",
        "./dev test",
        ".venv/bin/python -m reference_system.serving.leaks",
        ".venv/bin/tox -e pytest-min,pytest-latest",
    ]
