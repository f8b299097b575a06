"""Layering: core never imports pytest; the plugin's import stays cheap for `pytest --help`."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_importing_core_loads_no_pytest() -> None:
    _run(
        "import sys, pytest_latency.core as c\n"
        "c.measure, c.evaluate, c.Spec, c.Result\n"
        "import pytest_latency.core.env, pytest_latency.report.table\n"
        "bad = [m for m in sys.modules if m == 'pytest' or m.startswith('_pytest')]\n"
        "assert not bad, bad"
    )


def test_importing_the_plugin_loads_no_numpy_or_ml_stack() -> None:
    _run(
        "import sys, pytest_latency.plugin\n"
        "heavy = {'numpy', 'torch', 'onnxruntime', 'tritonclient'} & set(sys.modules)\n"
        "assert not heavy, heavy"
    )


def test_pytest_help_with_the_plugin_configured_loads_no_numpy() -> None:
    """``pytest_configure`` runs for ``pytest --help`` too: whatever it sets up must import
    its numpy-backed parts lazily."""
    _run(
        "import sys, pytest, contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    pytest.main(['--help', '-p', 'no:hypothesispytest', '-p', 'no:cacheprovider'])\n"
        "assert 'pytest_latency.plugin.progress' in sys.modules\n"
        "assert 'numpy' not in sys.modules, 'numpy imported by pytest --help'"
    )
