"""tox.ini stays in step with the project: the envs the README lists, the pytest floor the
package declares, and the same lint checks as ``./dev lint``. (.ci/run also runs the cheap
envs, pytest-min and pytest-latest, for real.)"""

from __future__ import annotations

import ast
import configparser
import re
import subprocess
import sys
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


def _third_party_imports(package: Path) -> set[str]:
    """Top-level names of the non-stdlib modules ``package`` imports, at any depth."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {package.name}


def _dist_name(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name, requirement
    return re.sub(r"[-.]+", "_", name.group(0)).lower()


def test_the_lint_env_has_the_types_of_every_module_the_package_imports() -> None:
    """mypy in `tox -e lint` sees every third-party import of pytest_latency/: the package
    (or an extra the env installs) requires it, or a mypy override ignores it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    extras = {e.strip() for e in _tox()["testenv:lint"]["extras"].split(",")}
    installed = {_dist_name(r) for r in project["dependencies"]}
    for extra in extras:
        installed |= {_dist_name(r) for r in project["optional-dependencies"][extra]}
    ignored = {
        pattern.removesuffix(".*")
        for override in pyproject["tool"]["mypy"].get("overrides", [])
        if override.get("ignore_missing_imports")
        for pattern in override["module"]
    }
    imported = _third_party_imports(ROOT / "pytest_latency")
    assert {"numpy", "hypothesis", "matplotlib"} <= imported  # the walk finds them
    missing = sorted(imported - installed - ignored)
    assert not missing, (
        f"tox -e lint: mypy cannot see {missing}; add them to an extra the lint env "
        "installs, or to a [[tool.mypy.overrides]] with ignore_missing_imports"
    )


def test_ci_checks_for_leftovers_even_when_the_suite_fails_and_keeps_its_status(
    tmp_path: Path,
) -> None:
    """The leaks check runs after a failed suite too, and the run exits with the suite's
    status (or the check's, if only the check failed)."""
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
