"""Start the sentiment service (``serve.py``) as a real uvicorn process on loopback."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

from reference_system.serving.ports import LOOPBACK, bound_socket
from reference_system.serving.processes import ManagedProcess


def http_ok(url: str) -> Callable[[], bool]:
    """Readiness: `url` answers 200."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=0.5) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    return check


class SentimentService(ManagedProcess):
    """``python -m reference_system.serving.serve BACKEND --fd N ...`` with readiness on
    ``/healthz``. Model loading (torch) takes a few seconds, hence the longer timeout.

    The listening socket is bound here, on a port the OS picks, and handed to uvicorn as an
    inherited fd: no other process can take the port between choosing and binding it."""

    def __init__(
        self,
        backend: str,
        *,
        profile: str = "quick",
        extra: Sequence[str] = (),
        start_timeout_s: float = 120.0,
    ) -> None:
        self._socket = bound_socket()
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://{LOOPBACK}:{self.port}"
        super().__init__(
            f"service-{backend}",
            [
                sys.executable,
                "-m",
                "reference_system.serving.serve",
                backend,
                "--fd",
                str(self._socket.fileno()),
                "--profile",
                profile,
                *extra,
            ],
            ready=http_ok(f"{self.url}/healthz"),
            start_timeout_s=start_timeout_s,
            pass_fds=(self._socket.fileno(),),
        )

    def start(self) -> SentimentService:
        try:
            return super().start()
        finally:
            # The child has its own copy from here on. Ours would keep the port accepting
            # connections after the child died -- accepted by the kernel, answered by no one,
            # so a client waited out its whole timeout instead of being refused at once.
            self._socket.close()

    def cleanup(self) -> None:
        super().cleanup()
        self._socket.close()  # a no-op once start() ran
