"""Shared setup for the pytester tests of the plugin.

`pytester.runpytest` (in-process) restores ``sys.modules`` after every inner run, so a module
first imported *inside* an inner run is imported afresh by the next one. Hypothesis's pytest
plugin imports ``hypothesis`` lazily (about a second), and the plugin's own report modules are
lazy too: importing them here, once, keeps every inner run in the tens of milliseconds.
"""

from __future__ import annotations

import contextlib

import pytest_latency.plugin.fixture
import pytest_latency.report.json_report
import pytest_latency.report.table  # noqa: F401

with contextlib.suppress(ImportError):
    import hypothesis  # noqa: F401
