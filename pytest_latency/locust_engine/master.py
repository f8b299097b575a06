"""The Locust master pytest-latency starts in a subprocess (gevent stays out of pytest).

    python -m pytest_latency.locust_engine.master --bind 127.0.0.1 --port 5557

It speaks JSON lines: commands on stdin from the plugin (``go``, ``stop``, ``quit``), events
on stdout to it -- ``ready`` once bound, ``workers`` whenever the number of connected workers
changes, and, forwarded from the workers over Locust's messaging, ``ack`` and ``samples``.
End of stdin (the plugin died) quits, and Locust's quit stops the workers too.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

import gevent
from gevent.fileobject import FileObjectPosix
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner

from pytest_latency.locust_engine.locustfile import LatencyIdle


def _out(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5557)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    env = Environment(user_classes=[LatencyIdle], events=events)
    runner: MasterRunner = env.create_master_runner(args.bind, args.port)

    def forward(kind: str) -> Any:
        def listener(environment: Any, msg: Any, **_: Any) -> None:
            _out({"ev": kind, "worker": msg.node_id, **msg.data})

        return listener

    runner.register_message("latency_ack", forward("ack"))
    runner.register_message("latency_samples", forward("samples"))
    _out({"ev": "ready", "port": args.port})

    def watch_workers() -> None:
        seen = -1
        while True:
            count = runner.worker_count
            if count != seen:
                seen = count
                _out({"ev": "workers", "n": count})
            gevent.sleep(0.05)

    gevent.spawn(watch_workers)
    stdin = FileObjectPosix(sys.stdin.fileno(), "rb")
    while True:
        line = stdin.readline()
        if not line:
            break
        command = json.loads(line)
        if command["cmd"] == "go":
            ids = sorted(runner.clients.keys())[: command.get("workers") or None]
            for k, client_id in enumerate(ids):
                data = {**command["data"], "index": k, "workers": len(ids)}
                runner.send_message("latency_go", data, client_id=client_id)
        elif command["cmd"] == "stop":
            runner.send_message("latency_stop", {})
        elif command["cmd"] == "quit":
            break
    runner.quit()
    gevent.sleep(0.2)  # let the quit messages reach the workers


if __name__ == "__main__":
    main()
