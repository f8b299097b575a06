"""Print the locustfile that pytest-latency's Locust workers run."""

from __future__ import annotations

from . import LOCUSTFILE

print(LOCUSTFILE)
