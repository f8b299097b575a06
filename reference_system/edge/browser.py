"""Headless Chromium on one URL, as a managed process: nothing outlives the test.

    with HeadlessChromium(site.url, ready=lambda: site.seen("hello")) as browser:
        ...

The browser runs in its own process group with a fresh profile, ``HOME`` and caches inside its
managed temp dir (so every run is a cold start, and ``reference_system.serving.leaks`` sees any
process left there); it is stopped -- group killed, temp dir removed -- when the block ends,
whatever ends it (``reference_system.serving.processes``). It is ready once `ready()` holds:
the page has loaded and reported back, within `start_timeout_s`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Self

from reference_system.serving.processes import ManagedProcess, ServerBase

__all__ = ["CHROMIUM_INSTALL", "HeadlessChromium", "find_chromium"]

CHROMIUM_INSTALL = "apt-get install chromium (or set CHROMIUM=/path/to/chromium)"


def find_chromium() -> str | None:
    """``$CHROMIUM``, else ``chromium`` / ``chromium-browser`` / ``google-chrome`` on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class HeadlessChromium(ServerBase):
    def __init__(
        self,
        url: str,
        *,
        ready: Callable[[], bool],
        executable: str | None = None,
        start_timeout_s: float = 60.0,
    ) -> None:
        chromium = executable or find_chromium()
        if chromium is None:
            raise FileNotFoundError(f"no Chromium found; install it: {CHROMIUM_INSTALL}")
        self.url = url
        self._process = ManagedProcess(
            "chromium",
            [chromium],  # completed in start(), once the temp dir exists
            ready=ready,
            start_timeout_s=start_timeout_s,
            stop_timeout_s=5.0,
        )
        tmp = self._process.tmpdir
        self._process.argv += [
            "--headless",
            "--no-sandbox",  # root in CI; the page is ours and served on loopback
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            # a page that is measured must not be throttled as a background tab
            "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
            f"--user-data-dir={tmp / 'profile'}",
            url,
        ]
        # Chromium writes a crash database and caches under HOME even with --user-data-dir.
        home = str(tmp / "home")
        self._process.env |= {"HOME": home, "XDG_CONFIG_HOME": home, "XDG_CACHE_HOME": home}

    @property
    def process(self) -> ManagedProcess:
        return self._process

    def start(self) -> Self:
        self._process.start()
        return self

    def stop(self) -> None:
        self._process.stop()
