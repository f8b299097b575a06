"""Worst-case input search: Hypothesis climbs towards the inputs that make a callable slow.

Each candidate input is timed `repeats` times and its median (the de-noised latency) is handed
to ``hypothesis.target``, so Hypothesis's targeted phase climbs from the slowest inputs found so
far instead of sampling at random. Hypothesis hill-climbs numbers, not strings or lists, so a
sequence drawn from the user's strategy comes with a few drawn *growth steps* -- "repeat the
element (or the short slice) at position p, k times" -- whose counts Hypothesis can climb: a
cost that grows with a run of one character, a repeated token or a nested structure shows a
slope to follow. The input the callable gets is the grown one, never longer than `max_size`.

A candidate whose median is over `threshold_ms` (confirmed on more calls) is a *miss*: the
search raises on it, Hypothesis shrinks it to the smallest input that still misses, and keeps it
in its example database. This module only searches; `latency.worst_case` then measures the
inputs found under the test's SLO, with warm-up and confidence bounds like any measurement.

Hypothesis is imported when a search runs, not when the plugin loads.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .hang import CallTimeout, watchdog
from .spec import PERCENTILE_KEYS, Spec, SpecError

Clock = Callable[[], int]

# A stored-example key suffix (Hypothesis's own are ".secondary" and ".pareto"): inputs that
# missed in some run, replayed first in every later run even after they stopped missing.
FOUND_SUFFIX = b".pytest-latency-found"


def threshold_ms(spec: Spec) -> float:
    """The latency one input must not exceed on its own: the tightest latency target (an
    input whose median is over it would miss that target if it were all the traffic)."""
    limits = [
        getattr(spec, key)
        for key in (*PERCENTILE_KEYS, "max_ms", "goodput_ms")
        if getattr(spec, key) is not None
    ]
    if not limits:
        raise SpecError(
            "worst_case needs a latency target to search against: one of "
            + ", ".join((*PERCENTILE_KEYS, "max_ms", "goodput_ms"))
            + ", e.g. @pytest.mark.slo(p99_ms=10)"
        )
    return float(min(limits))


@dataclass(frozen=True)
class Candidate:
    """One input tried by the search, with its de-noised latency."""

    value: Any
    median_ns: int
    missed: bool  # median over the threshold (or the call raised)
    error: str | None = None  # the call raised on this input (its exception, one line)

    @property
    def median_ms(self) -> float:
        return self.median_ns / 1e6


@dataclass
class Search:
    """What a search found. `shrunk` is the smallest input that missed (Hypothesis's shrink),
    `slowest` the slowest distinct inputs tried, slowest first."""

    threshold_ms: float
    examples: int = 0  # candidate inputs timed (replays and shrink steps included)
    misses: int = 0  # of those, over the threshold or raising
    shrunk: Candidate | None = None
    slowest: list[Candidate] = field(default_factory=list)
    first: Candidate | None = None  # the first input tried (a stored one, when any)
    notes: list[str] = field(default_factory=list)

    def worst(self, keep: int) -> list[Candidate]:
        """The inputs to measure: the shrunk miss first, then the slowest others, `keep` in
        all (distinct by repr)."""
        out: list[Candidate] = []
        seen: set[str] = set()
        for c in ([self.shrunk] if self.shrunk else []) + self.slowest:
            key = repr(c.value)
            if key not in seen:
                seen.add(key)
                out.append(c)
            if len(out) >= keep:
                break
        return out


class _Missed(Exception):
    """Raised inside the Hypothesis test: this input misses (makes Hypothesis shrink it)."""


def _keep_found(inner: Any) -> Any:
    """Wrap an example database so that inputs that once missed stay: Hypothesis deletes a
    stored failing example once it stops failing (a fixed slow path), and would not try it
    again when the slow path comes back. A copy under `FOUND_SUFFIX` is replayed first in
    every run."""
    # hypothesis: an optional dependency, loaded only when a search runs
    from hypothesis.database import ExampleDatabase

    class KeepFound(ExampleDatabase):
        def __init__(self) -> None:
            super().__init__()

        @staticmethod
        def _primary(key: bytes) -> bool:
            return not key.endswith((b".secondary", b".pareto", FOUND_SUFFIX))

        def fetch(self, key: bytes) -> Iterable[bytes]:
            seen: set[bytes] = set()
            for value in inner.fetch(key):
                seen.add(value)
                yield value
            if self._primary(key):
                for value in inner.fetch(key + FOUND_SUFFIX):
                    if value not in seen:
                        yield value

        def save(self, key: bytes, value: bytes) -> None:
            inner.save(key, value)
            if self._primary(key):
                inner.save(key + FOUND_SUFFIX, value)

        def delete(self, key: bytes, value: bytes) -> None:
            inner.delete(key, value)  # the found copy stays: that is the point

        def move(self, src: bytes, dest: bytes, value: bytes) -> None:
            inner.move(src, dest, value)
            if self._primary(src):  # a larger example superseded by a smaller one
                inner.delete(src + FOUND_SUFFIX, value)

    return KeepFound()


HUNG_NS = 1_000_000_000  # a call running this long when the time limit fires: its input hangs
MAX_SLICE = 16  # a growth step repeats one element or a slice of up to this many
MAX_STEPS = 4  # growth steps drawn per input


def grow(value: Any, steps: Sequence[tuple[int, int, int]], *, max_size: int) -> Any:
    """`value` (a str, bytes, list or tuple; anything else is returned as it is) with each
    step ``(width, position, count)`` applied: the ``width + 1`` elements at ``position``
    (modulo the length) repeated `count` more times in place; cut to `max_size`.

        >>> grow("abc", [(0, 1, 3)], max_size=100)
        'abbbbc'
        >>> grow([1, 2], [(1, 0, 2)], max_size=5)
        [1, 2, 1, 2, 1]
    """
    if not isinstance(value, str | bytes | list | tuple):
        return value
    out: Any = value
    for width, position, count in steps:
        if not out or not count:
            continue
        p = position % len(out)
        out = out[:p] + out[p : p + width + 1] * count + out[p:]
        if len(out) > max_size:
            out = out[:max_size]
    return out


def search(
    fn: Callable[[Any], Any],
    strategy: Any,
    *,
    threshold_ms: float,
    examples: int = 300,
    repeats: int = 3,
    top: int = 10,
    seed: int | None = None,
    database: Any = "default",
    key: bytes = b"",
    guided: bool = True,
    max_size: int = 1000,
    time_limit_s: float | None = None,
    clock: Clock = time.perf_counter_ns,
) -> Search:
    """Search `strategy`'s inputs for ones on which `fn` is slow; see the module docstring.

    `seed` fixes Hypothesis's random choices (and then, as Hypothesis does, its example
    database is not used); ``None`` leaves them to Hypothesis (and its settings profile).
    `examples` is Hypothesis's ``max_examples`` (candidates generated; replays of stored
    inputs and shrink steps come on top). `database`: Hypothesis's example database
    (``"default"``: the active settings profile's; ``None``: none). `key` tells apart several
    searches of one test. `guided=False` drops ``hypothesis.target`` and the growth steps
    (plain random sampling of `strategy`, for comparison). `max_size` caps a grown sequence.

    `time_limit_s` bounds the whole search (on the main thread, as the measurement's watchdog
    does: ``SIGALRM`` interrupts the call). When it fires the search stops with what it has;
    if one call had been running for over a second, its input is the result: a miss that
    hangs (the measurement that follows reports the call that does not return)."""
    # hypothesis: an optional dependency, loaded only when a search runs
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as fix_seed
    from hypothesis import strategies as st
    from hypothesis import target as hypothesis_target
    from hypothesis.errors import Flaky, HypothesisException

    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise SpecError(f"repeats={repeats!r} is not valid; expected a whole number >= 1")
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise SpecError(f"examples={examples!r} is not valid; expected a whole number >= 1")
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
        raise SpecError(f"max_size={max_size!r} is not valid; expected a whole number >= 1")
    threshold_ns = round(threshold_ms * 1e6)
    found = Search(threshold_ms)
    tried: list[Candidate] = []
    running: list[Any] = [None, 0]  # the input being timed and when its call began

    def timed(value: Any, count: int, times: list[int]) -> str | None:
        for _ in range(count):
            t0 = running[1] = clock()
            try:
                fn(value)
            except Exception as exc:  # an input that breaks the callable: report it too
                times.append(clock() - t0)
                running[1] = 0
                return f"{type(exc).__name__}: {exc}"
            times.append(clock() - t0)
            running[1] = 0  # between calls: a time limit here is no hang
        return None

    def median_of(times: list[int]) -> int:
        return sorted(times)[len(times) // 2]

    def probe(value: Any) -> None:
        running[0] = value
        if not found.examples:
            timed(value, repeats, [])  # warm-up: the first calls pay for lazy set-up
        times: list[int] = []
        error = timed(value, repeats, times)
        median = median_of(times)
        if error is None and median > threshold_ns:
            # A miss makes Hypothesis shrink towards it, and a shrink that follows scheduler
            # noise ends on an input that is not slow: confirm it on up to twice as many calls
            # more (four times once shrinking, where every candidate is a smaller input that
            # only noise could make miss), stopping once the median of all planned calls is
            # settled either way.
            planned = (5 if found.misses else 3) * repeats
            while error is None and len(times) < planned:
                over = sum(t > threshold_ns for t in times)
                if over > planned // 2 or len(times) - over > planned // 2:
                    break
                error = timed(value, 1, times)
            median = median_of(times)
        missed = error is not None or median > threshold_ns
        candidate = Candidate(value, median, missed, error)
        found.examples += 1
        if found.first is None:
            found.first = candidate
        tried.append(candidate)
        if guided:
            hypothesis_target(median / 1e6, label="latency_ms")
        if missed:
            found.misses += 1
            found.shrunk = candidate  # the shrinker only tries smaller inputs: last is smallest
            raise _Missed

    if database == "default":
        database = settings().database  # the active profile's
    if guided:
        steps = st.lists(
            st.tuples(
                st.integers(0, MAX_SLICE - 1), st.integers(0, 2**16), st.integers(0, max_size)
            ),
            max_size=MAX_STEPS,
        )
        strategy = st.builds(functools.partial(grow, max_size=max_size), strategy, steps)
    # Which stored examples are this search's: Hypothesis keys its database by the test
    # function's digest plus this (as it does for parametrized pytest tests).
    probe._hypothesis_internal_add_digest = b"pytest-latency.worst_case:" + key  # type: ignore[attr-defined]
    test: Any = given(strategy)(probe)  # type: ignore[no-untyped-call]
    test = settings(
        max_examples=examples,
        deadline=None,
        database=_keep_found(database) if database is not None else None,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        print_blob=False,
        phases=(
            [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
            if guided
            else [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink]
        ),
    )(test)
    if seed is not None:
        test = fix_seed(seed)(test)
    limit_ns = clock() + round(time_limit_s * 1e9) if time_limit_s is not None else None
    try:
        with watchdog(limit_ns) if limit_ns is not None else contextlib.nullcontext():
            test()
    except _Missed:
        pass
    except (CallTimeout, HypothesisException) as exc:
        # The watchdog's CallTimeout reaches here as it is when it lands in the callable, and
        # wrapped by Hypothesis (e.g. FlakyStrategyDefinition) when it lands in Hypothesis's
        # own drawing: past the limit, either is the time limit.
        if limit_ns is not None and clock() >= limit_ns:
            waited_ns = clock() - running[1]
            found.notes.append(
                f"the search stopped at its time limit ({time_limit_s:g} s) after "
                f"{found.examples} input(s)"
            )
            if running[1] and waited_ns > HUNG_NS:
                found.misses += 1
                found.shrunk = Candidate(
                    running[0], waited_ns, True, f"still running after {waited_ns / 1e9:.1f} s"
                )
        elif isinstance(exc, Flaky):
            # The replay of the shrunk input did not miss again: the host was noisy during
            # the shrink. The inputs stay; the measurement that follows decides.
            found.notes.append(
                f"Hypothesis reported the shrunk input as flaky ({type(exc).__name__})"
            )
        else:
            raise
    best: dict[str, Candidate] = {}
    for c in tried:
        k = repr(c.value)
        if k not in best or c.median_ns > best[k].median_ns:
            best[k] = c
    found.slowest = sorted(best.values(), key=lambda c: c.median_ns, reverse=True)[:top]
    return found


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr`` cut to `limit` characters, with the length of a sized value."""
    text = repr(value)
    size = f" (len {len(value)})" if hasattr(value, "__len__") else ""
    return (text if len(text) <= limit else text[: limit - 3] + "...") + size
