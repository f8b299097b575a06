"""An injectable tail for the co-located front: a seeded share of requests waits before it
is served, the way one replica's occasional stall (a slow disk, a noisy neighbour, a lock
held by a background job) looks to its clients.

    python -m reference_system.serving.serve colocated --stall-share 0.03 --stall-ms 80 \\
        --stall-seed 1 [--stall-admin]

Off by default (share 0). Each request draws once from a ``random.Random(seed)`` in the order
the front receives them; a stalled one waits ``ms`` on the event loop (``asyncio.sleep``: the
replica keeps serving the others meanwhile) and then runs as usual, with a ``stall`` stage in
its ``Server-Timing``. With ``--stall-admin`` the front also answers
``POST /admin/stalls {"share": 0.03, "ms": 80, "seed": 1}`` (every field optional; the draw
restarts from the seed), so a test can switch the tail on and off at run time; without it that
route does not exist. ``GET /metrics`` -> ``stalls`` shows the settings and how many stalled.
"""

from __future__ import annotations

import random
import threading
from typing import Any

MAX_STALL_MS = 10_000.0


def _check(share: Any, ms: Any, seed: Any) -> tuple[float, float, int]:
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ValueError(f"stall share {share!r} is not valid; expected a number from 0 to 1")
    if isinstance(ms, bool) or not isinstance(ms, int | float) or not 0 <= ms <= MAX_STALL_MS:
        raise ValueError(
            f"stall ms {ms!r} is not valid; expected milliseconds from 0 to {MAX_STALL_MS:g}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"stall seed {seed!r} is not valid; expected an integer >= 0")
    return float(share), float(ms), seed


class InjectedStalls:
    """``draw()`` -> seconds this request waits (0.0 for most, or none while off)."""

    def __init__(self, share: float = 0.0, ms: float = 0.0, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.stalled = 0
        self.share, self.ms, self.seed = 0.0, 0.0, 0
        self.configure(share=share, ms=ms, seed=seed)

    def configure(
        self, *, share: Any = None, ms: Any = None, seed: Any = None
    ) -> dict[str, float | int]:
        """Change any of the settings (None keeps it) and restart the draw from the seed."""
        with self._lock:
            new = (
                self.share if share is None else share,
                self.ms if ms is None else ms,
                self.seed if seed is None else seed,
            )
            self.share, self.ms, self.seed = _check(*new)
            self._rng = random.Random(self.seed)
        return self.snapshot()

    def draw(self) -> float:
        if not self.share or not self.ms:
            return 0.0
        with self._lock:
            if self._rng.random() >= self.share:
                return 0.0
            self.stalled += 1
        return self.ms / 1000

    def snapshot(self) -> dict[str, float | int]:
        return {"share": self.share, "ms": self.ms, "seed": self.seed, "stalled": self.stalled}


# -- the admin endpoint's client (tests, benchmarks) ----------------------------------------


def set_stalls(url: str, *, share: float, ms: float, seed: int = 0) -> dict[str, Any]:
    """``POST {url}/admin/stalls``: the front's new settings (it must run with
    ``--stall-admin``). Raises ``ValueError`` with the front's detail when it refuses them."""
    import json
    import urllib.error
    import urllib.request

    body = json.dumps({"share": share, "ms": ms, "seed": seed}).encode()
    req = urllib.request.Request(
        f"{url}/admin/stalls", body, {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            settings: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ValueError(f"{url}/admin/stalls answered {exc.code}: {exc.read()[:300]!r}") from None
    return settings


def stalled(url: str) -> int:
    """How many requests the front at `url` has stalled (``GET /metrics`` -> ``stalls``)."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        return int(json.loads(response.read())["stalls"]["stalled"])
