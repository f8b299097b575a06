"""The in-browser runtime's pieces (reference_system/edge): the page's WordPiece against the
Python tokenizer, and a page that fails or stalls ending the run with a clear error, nothing
left running. The SLO and the agreement gate are in tests/slo/test_edge_browser.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_system.build import Artifacts
from reference_system.data import Dataset
from reference_system.edge import EDGE_DIR, PageError, PageTimeout, missing, run_in_browser
from reference_system.predictors import Encoder
from reference_system.serving.leaks import find_leftovers

# What the corpus does not exercise: accents, CJK, controls and zero-width characters,
# emoji, words over 100 characters, truncation, punctuation of every ASCII kind, empty text.
TRICKY = [
    "Café déjà vu — naïve résumé!",
    "日本語の映画は素晴らしい",
    "tab\there\x00ctrl\u200bzero\ufeffbom\u0085nel\u00a0nbsp\u3000ideo",
    "a" * 150,
    "emoji 😀 fun!!",
    "İstanbul ǅ ß ﬁ Ωmega",
    "x" * 300 + " y",
    " ".join(["word"] * 200),
    "",
    "   ",
    "$5 & 10% off #1 @me ~ok^ `q` |p| {a} [b] (c) <d> \\e/ \"f\" 'g' ;h: ,i. ?j! _k- +l= *m",
]


def page_tokenizer(tokenizer_json: Path, texts: list[str]) -> subprocess.CompletedProcess[str]:
    """The page's WordPiece run under Node (``node_tokenize.mjs``) on `texts`."""
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "needs Node.js to run the page's tokenizer outside a browser: apt-get install nodejs"
        )
    return subprocess.run(
        [node, str(EDGE_DIR / "node_tokenize.mjs"), str(tokenizer_json), "128"],
        input="".join(json.dumps(t) + "\n" for t in texts),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_pages_wordpiece_gives_the_python_tokenizers_ids_on_every_corpus_snippet(
    artifacts: Artifacts, corpus: Dataset
) -> None:
    texts = [*corpus.texts, *TRICKY]
    proc = page_tokenizer(artifacts.tokenizer_dir / "tokenizer.json", texts)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(got) == len(texts)
    encode = Encoder(artifacts.tokenizer_dir, max_length=128)
    expected = [encode([t])["input_ids"][0].tolist() for t in texts]
    wrong = [(t, e, g) for t, e, g in zip(texts, expected, got, strict=True) if e != g]
    assert not wrong, f"{len(wrong)} of {len(texts)} texts differ; first: {wrong[0]!r:.600}"
    assert max(len(ids) for ids in got) == 128  # truncation was exercised


def test_the_pages_tokenizer_refuses_a_tokenizer_json_of_another_shape(
    artifacts: Artifacts, tmp_path: Path
) -> None:
    config = json.loads((artifacts.tokenizer_dir / "tokenizer.json").read_text())
    config["pre_tokenizer"] = {"type": "Metaspace"}
    other = tmp_path / "tokenizer.json"
    other.write_text(json.dumps(config))
    proc = page_tokenizer(other, ["a fine film"])
    assert proc.returncode != 0
    assert 'pre_tokenizer.type is "Metaspace", expected "BertPreTokenizer"' in proc.stderr


@pytest.fixture
def browser_ready(artifacts: Artifacts) -> None:
    reason = missing()
    if reason:
        pytest.skip(reason)


def _our_chromiums() -> dict[int, str]:
    """Chromium processes running in one of our managed temp dirs (the leak check's view)."""
    return {pid: cmd for pid, cmd in find_leftovers().processes.items() if "chrom" in cmd}


@pytest.fixture
def no_chromium_left() -> Iterator[None]:
    before = set(_our_chromiums())  # another session's live browsers are not ours to judge
    yield
    left = {pid: cmd for pid, cmd in _our_chromiums().items() if pid not in before}
    assert not left, f"Chromium processes left behind: {left}"


def test_a_model_the_page_cannot_load_fails_the_run_with_the_pages_error(
    browser_ready: None, no_chromium_left: None, artifacts: Artifacts, tmp_path: Path
) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not an onnx model")
    t0 = time.monotonic()
    with pytest.raises(PageError, match="the page failed: "):
        run_in_browser(
            broken, artifacts.tokenizer_dir / "tokenizer.json", ["a fine film"], timeout_s=60
        )
    assert time.monotonic() - t0 < 30  # the error ended the wait, not the timeout


def test_a_page_that_stalls_times_out_and_leaves_nothing_running(
    browser_ready: None, no_chromium_left: None, artifacts: Artifacts
) -> None:
    # 50,000 predictions cannot finish in 8 s: the wait for the results must give up.
    with pytest.raises(PageTimeout, match="did not report 'results' within"):
        run_in_browser(
            artifacts.onnx_int8_dynamic,
            artifacts.tokenizer_dir / "tokenizer.json",
            ["a fine film"] * 50_000,
            warmup=0,
            timeout_s=8,
        )


def test_bad_arguments_are_refused_before_a_browser_starts(artifacts: Artifacts) -> None:
    with pytest.raises(ValueError, match="need texts"):
        run_in_browser(artifacts.onnx_int8_dynamic, artifacts.tokenizer_dir / "tokenizer.json", [])
