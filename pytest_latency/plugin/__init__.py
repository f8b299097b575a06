"""The pytest layer of pytest-latency, loaded by the ``pytest11`` entry point
``pytest_latency.plugin``.

Arrows run one way: `hooks` (the hub; nothing imports it) -> the features -> `keys`.

- `keys`: every stash key, the records they hold, shared constants. Imports nothing here.
- `options`: the one table of options and its resolver; `markers`: marker signatures,
  merging and validation.
- `fixtures` (``latency``, ``accuracy_gate``) over `fixture` (`LatencyFixture`) and `gate`
  (`AccuracyGate`); `failures`: the exception and warning types; `progress`: the live line;
  `saved_run`: ``--latency-compare``; `benchmark`: ``slo`` on pytest-benchmark's timings.
- `collector`: gathers the results and builds the run's report once; `writers/`: JSON,
  markdown, HTML, pytest-benchmark JSON and the terminal, all from that report.
"""

from __future__ import annotations

from .hooks import *  # noqa: F403  (pytest finds the hooks and fixtures on this module)
from .hooks import __all__ as __all__
