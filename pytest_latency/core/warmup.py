"""Steady-state detection for warm-up ``"auto"``.

Warm-up runs windows of calls and keeps the median of each window. The series is steady when
the last `stable_windows` medians lie within `tolerance` of their own median (relative spread
``(max - min) / median``). A bound on calls and on time stops a series that never settles; the
measurement then goes on and says so (``WarmupStats.steady = False``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median


@dataclass(frozen=True)
class WarmupPolicy:
    tolerance: float = 0.10  # relative spread of the last window medians
    stable_windows: int = 3
    window_target_ns: int = 20_000_000  # a window lasts about 20 ms ...
    min_window: int = 5  # ... with at least this many calls ...
    max_window: int = 200  # ... and at most this many
    max_calls: int = 5_000
    max_time_share: float = 0.25  # of the measurement's max_time_s


def is_steady(window_medians_ns: Sequence[float], policy: WarmupPolicy) -> bool:
    """True when the last ``policy.stable_windows`` medians agree within the tolerance."""
    k = policy.stable_windows
    if len(window_medians_ns) < k:
        return False
    last = list(window_medians_ns)[-k:]
    mid = median(last)
    if mid <= 0:
        return True
    return (max(last) - min(last)) / mid <= policy.tolerance


def next_window_size(last_median_ns: float, policy: WarmupPolicy) -> int:
    """Calls per window so that a window lasts about ``policy.window_target_ns``."""
    if last_median_ns <= 0:
        return policy.max_window
    size = int(policy.window_target_ns / last_median_ns)
    return max(policy.min_window, min(policy.max_window, size))
