"""pytest-latency's Locust side: the locustfile its workers run and the master it starts.

Everything here runs in Locust's own processes (gevent monkey-patches them); the pytest
process never imports this package's submodules. ``python -m pytest_latency.locust_engine``
prints the locustfile's path, for workers started by hand on other machines::

    locust --worker -f "$(python -m pytest_latency.locust_engine)" \\
        --master-host HOST --master-port PORT
"""

from __future__ import annotations

from pathlib import Path

LOCUSTFILE = str(Path(__file__).with_name("locustfile.py"))
