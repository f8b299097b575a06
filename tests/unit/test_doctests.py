"""The docstring examples of the package run, so they stay true (tests/unit, not
``--doctest-modules``: that would also import examples/conftest.py beside tests/conftest.py)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import pytest_latency

# Modules that run only in Locust's processes: importing locust monkey-patches with gevent,
# which must never happen in the pytest process.
LOCUST_SIDE = "pytest_latency.locust_engine."


def _modules() -> list[str]:
    prefix = pytest_latency.__name__ + "."
    names = [m.name for m in pkgutil.walk_packages(pytest_latency.__path__, prefix)]
    return [pytest_latency.__name__, *(n for n in names if not n.startswith(LOCUST_SIDE))]


@pytest.mark.parametrize("name", _modules())
def test_the_docstring_examples_of_each_module_hold(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


def test_the_package_has_examples_that_run() -> None:
    """Guards the walk above: it finds modules, and their examples are tried."""
    tried = sum(doctest.testmod(importlib.import_module(n)).attempted for n in _modules())
    assert tried >= 5
