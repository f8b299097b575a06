"""How often the worst-case search finds a planted slow path, against plain random sampling of
the same strategy with the same example budget.

    .venv/bin/python benchmarks/worst_case_search.py                # 20 seeds, 300 examples
    .venv/bin/python benchmarks/worst_case_search.py --seeds 50 --examples 100
    .venv/bin/python benchmarks/worst_case_search.py --model full --examples 60,200 --seeds 10

With ``--model PROFILE``: the SLO suite's search instead
(``test_worst_case_search_finds_that_latency_grows_with_word_pieces``): the real INT8 model
of that build profile, a threshold of 2.5x its median on held-out reviews, 10 s a search; a
hit is a shrunk miss, and the table gives the word pieces of the slowest and shrunk inputs.

Planted slow paths (each over the 1 ms threshold only on a rare input shape):

- ``run``: cost 0.5 us x (longest run of one character)**2, capped at 3 ms: slow from a run
  of 45 characters; random text of up to 2,000 characters has runs of 1-3.
- ``repeat``: cost 40 us x (most repeated 3-character substring's count), capped at 3 ms:
  slow from 26 repeats of one trigram.

Each seed runs `core.search.search` guided (``hypothesis.target`` on the de-noised latency,
with growth steps) and unguided (the strategy alone, no target): a hit is a miss found and
shrunk within the budget. Prints one row per planted path and mode: hits / seeds, the shrunk
inputs' sizes, inputs timed and seconds per search.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import statistics
import time
from collections.abc import Callable

from hypothesis import strategies as st

from pytest_latency.core.search import search

CAP_NS = 3_000_000


def spin(ns: int) -> None:
    end = time.perf_counter_ns() + min(ns, CAP_NS)
    while time.perf_counter_ns() < end:
        pass


def longest_run(text: str) -> int:
    return max((len(list(g)) for _, g in itertools.groupby(text)), default=0)


def most_repeated_trigram(text: str) -> int:
    counts = collections.Counter(text[i : i + 3] for i in range(len(text) - 2))
    return max(counts.values(), default=0)


PLANTED: dict[str, tuple[Callable[[str], None], Callable[[str], int]]] = {
    "run": (lambda text: spin(500 * longest_run(text) ** 2), longest_run),
    "repeat": (lambda text: spin(40_000 * most_repeated_trigram(text)), most_repeated_trigram),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--examples", default="300", help="one count, or several: 60,200")
    parser.add_argument("--model", metavar="PROFILE", help="search the real INT8 model instead")
    args = parser.parse_args()
    budgets = [int(x) for x in args.examples.split(",")]
    if args.model:
        real_model(args.model, args.seeds, budgets)
        return
    args.examples = budgets[0]
    print(
        f"{'planted':8} {'mode':7} {'hits':>7} {'shape of shrunk input':>24} "
        f"{'inputs timed':>13} {'s/search':>9}"
    )
    for name, (fn, shape) in PLANTED.items():
        for guided in (True, False):
            hits, shapes, timed, seconds = 0, [], [], []
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                found = search(
                    fn,
                    st.text(max_size=2000),
                    threshold_ms=1.0,
                    examples=args.examples,
                    seed=seed,
                    database=None,
                    guided=guided,
                )
                seconds.append(time.perf_counter() - t0)
                timed.append(found.examples)
                if found.shrunk is not None:
                    hits += 1
                    shapes.append(shape(found.shrunk.value))
            shape_text = f"{min(shapes)}-{max(shapes)}" if shapes else "-"
            print(
                f"{name:8} {'guided' if guided else 'random':7} {hits:>3}/{args.seeds:<3} "
                f"{shape_text:>24} {statistics.median(timed):>13.0f} "
                f"{statistics.median(seconds):>9.2f}",
                flush=True,
            )


def real_model(profile: str, seeds: int, budgets: list[int]) -> None:
    """The SLO suite's worst-case search on the real INT8 model, over `seeds` seeds for each
    example budget."""
    from reference_system.build import build
    from reference_system.data import load_splits

    texts = list(load_splits().test.texts[:1000])
    with build(profile).predictor("ort-int8-dynamic") as model:

        def pieces(text: str) -> int:
            return int(model._encode([text])["attention_mask"].sum())

        def predict(text: str) -> None:
            model.predict([text])

        for text in texts[:50]:
            predict(text)
        times = []
        for text in texts[:100]:
            t0 = time.perf_counter_ns()
            predict(text)
            times.append((time.perf_counter_ns() - t0) / 1e6)
        target = 2.5 * statistics.median(times)
        lengths = sorted(pieces(t) for t in texts)
        print(
            f"reviews: median {statistics.median(times):.2f} ms, threshold {target:.2f} ms; "
            f"word pieces median {lengths[len(lengths) // 2]}, longest {lengths[-1]}"
        )
        print(f"{'examples':>8} {'hits':>7} {'slowest pieces':>15} {'shrunk pieces':>14} "
              f"{'inputs timed':>13} {'s/search':>15}")  # fmt: skip
        for budget in budgets:
            hits, slow, shrunk, timed, seconds = 0, [], [], [], []
            for seed in range(seeds):
                t0 = time.perf_counter()
                found = search(
                    predict,
                    st.text(max_size=2000),
                    threshold_ms=target,
                    examples=budget,
                    seed=seed,
                    database=None,
                    time_limit_s=10,
                )
                seconds.append(time.perf_counter() - t0)
                timed.append(found.examples)
                slow.append(pieces(found.slowest[0].value) if found.slowest else 0)
                if found.shrunk is not None:
                    hits += 1
                    shrunk.append(pieces(found.shrunk.value))
            shrunk_text = f"{min(shrunk)}-{max(shrunk)}" if shrunk else "-"
            print(
                f"{budget:>8} {hits:>3}/{seeds:<3} {min(slow):>6}-{max(slow):<8} "
                f"{shrunk_text:>14} {statistics.median(timed):>13.0f} "
                f"{statistics.median(seconds):>6.1f} (max {max(seconds):.1f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
