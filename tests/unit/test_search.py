"""Worst-case input search (`core.search`): a planted slow path that random sampling misses is
found and shrunk; a flat callable has nothing to find; found inputs survive a fix."""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase

from pytest_latency.core.search import grow, search, threshold_ms
from pytest_latency.core.spec import Spec, SpecError

# Cost quadratic in the longest run of one character: 0.5 us * run**2, so 1 ms at a run of 45,
# capped at 3 ms (a slow path with a timeout; it keeps the searches short). Random text of up
# to 2,000 characters has runs of 1-3 (30 at most in these seeds).
COST_NS = 500
CAP_NS = 3_000_000
THRESHOLD_MS = 1.0
SLOW_RUN = 45


def longest_run(text: str) -> int:
    return max((len(list(g)) for _, g in itertools.groupby(text)), default=0)


def spin(ns: int) -> None:
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        pass


def planted(text: str) -> None:
    spin(min(CAP_NS, COST_NS * longest_run(text) ** 2))


def flat(text: str) -> None:
    spin(20_000)


def _search(fn, seed: int, guided: bool = True, examples: int = 300, **kw):  # type: ignore[no-untyped-def]
    return search(
        fn,
        st.text(max_size=2000),
        threshold_ms=THRESHOLD_MS,
        examples=examples,
        seed=seed,
        database=None,
        guided=guided,
        **kw,
    )


def test_the_guided_search_finds_a_planted_slow_path_that_random_sampling_misses() -> None:
    guided = [_search(planted, seed) for seed in range(10)]
    random = [_search(planted, seed, guided=False) for seed in range(10)]
    found = [s for s in guided if s.shrunk is not None]
    runs = [longest_run(s.shrunk.value) for s in found if s.shrunk is not None]
    assert len(found) >= 9, [longest_run(s.slowest[0].value) for s in guided]
    # Shrunk to (about) the smallest run that still costs over the threshold; a noisy host
    # can only make a shorter run look slow, and the confirmation calls make that rare.
    assert all(SLOW_RUN - 8 <= r <= SLOW_RUN + 2 for r in runs), runs
    random_found = sum(s.shrunk is not None for s in random)
    assert random_found <= 2, [longest_run(s.slowest[0].value) for s in random]


def test_a_callable_without_a_slow_path_has_no_miss() -> None:
    found = _search(flat, seed=1)
    assert found.shrunk is None
    assert found.misses == 0
    assert found.examples >= 300
    assert found.slowest
    assert all(c.median_ms < THRESHOLD_MS for c in found.slowest)


def test_a_found_slow_input_is_replayed_first_even_after_a_fix() -> None:
    db = InMemoryExampleDatabase()
    first = search(planted, st.text(max_size=2000), threshold_ms=THRESHOLD_MS, database=db)
    assert first.shrunk is not None
    slow_input = first.shrunk.value

    fixed = search(flat, st.text(max_size=2000), threshold_ms=THRESHOLD_MS, database=db)
    assert fixed.shrunk is None  # the stored input no longer misses; Hypothesis would drop it

    seen: list[str] = []

    def regressed(text: str) -> None:
        seen.append(text)
        planted(text)

    again = search(regressed, st.text(max_size=2000), threshold_ms=THRESHOLD_MS, database=db)
    assert seen[0] == slow_input  # replayed before anything new is generated
    assert again.first is not None
    assert again.first.value == slow_input
    assert again.first.missed


def test_an_input_that_makes_the_callable_raise_is_a_miss_with_its_error() -> None:
    def breaks_on_a_digit(text: str) -> None:
        if any(c.isdigit() for c in text):
            raise ValueError("digits are not reviews")

    found = search(breaks_on_a_digit, st.text(), threshold_ms=100, database=None, seed=0)
    assert found.shrunk is not None
    assert found.shrunk.error == "ValueError: digits are not reviews"
    assert found.shrunk.value == "0"  # shrunk to the smallest such input


def test_growth_steps_repeat_an_element_or_a_slice_and_respect_max_size() -> None:
    assert grow("abc", [(0, 1, 3)], max_size=100) == "abbbbc"
    assert grow(b"ab", [(1, 0, 2)], max_size=100) == b"ababab"
    assert grow((1, 2, 3), [(0, 5, 1)], max_size=100) == (1, 2, 3, 3)
    assert grow("abc", [(0, 0, 10_000)], max_size=50) == "a" * 50
    assert grow("", [(0, 0, 5)], max_size=50) == ""
    assert grow(42, [(0, 0, 5)], max_size=50) == 42


def test_the_threshold_is_the_tightest_latency_target() -> None:
    assert threshold_ms(Spec(p50_ms=4, p99_ms=10)) == 4
    assert threshold_ms(Spec(max_ms=8)) == 8
    assert threshold_ms(Spec(goodput=0.99, goodput_ms=20)) == 20
    with pytest.raises(SpecError, match="worst_case needs a latency target"):
        threshold_ms(Spec(min_rps=100))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repeats": 0}, r"repeats=0 is not valid"),
        ({"examples": 0}, r"examples=0 is not valid"),
        ({"max_size": 0}, r"max_size=0 is not valid"),
    ],
)
def test_bad_search_arguments_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        search(flat, st.text(), threshold_ms=1, database=None, **kwargs)  # type: ignore[arg-type]


def test_a_call_that_hangs_stops_the_search_at_its_time_limit_and_is_the_result() -> None:
    def hangs_on_long_text(text: str) -> None:
        if len(text) >= 3:
            time.sleep(3600)

    t0 = time.monotonic()
    found = search(
        hangs_on_long_text, st.text(), threshold_ms=100, database=None, seed=0, time_limit_s=2
    )
    assert time.monotonic() - t0 < 10
    assert found.shrunk is not None
    assert found.shrunk.error is not None
    assert found.shrunk.error.startswith("still running after")
    assert len(found.shrunk.value) >= 3
    assert "stopped at its time limit (2 s)" in found.notes[0]


def test_a_long_search_stops_at_its_time_limit_with_what_it_found() -> None:
    t0 = time.monotonic()
    found = _search(flat, seed=2, examples=100_000, time_limit_s=1)
    assert time.monotonic() - t0 < 5
    assert found.shrunk is None
    assert found.examples > 10
    assert "stopped at its time limit (1 s)" in found.notes[0]
