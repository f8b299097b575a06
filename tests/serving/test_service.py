"""The baseline HTTP service as a real uvicorn process: contract, validation, clean stop."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="run: pip install -r requirements/reference.txt")

from reference_system.serving.app import parse_server_timing  # noqa: E402
from reference_system.serving.services import SentimentService  # noqa: E402


@pytest.fixture(scope="module")
def baseline(artifacts: object, request: pytest.FixtureRequest) -> Iterator[SentimentService]:
    profile = request.config.getoption("--reference-profile")
    with SentimentService("baseline", profile=profile) as service:
        yield service


def test_predict_answers_labels_scores_and_server_timing(baseline: SentimentService) -> None:
    with httpx.Client(base_url=baseline.url) as client:
        r = client.post("/predict", json={"texts": ["A triumph.", "A tedious, lifeless chore."]})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "torch-fp32"
    assert body["labels"] == [1, 0]
    assert all(0 <= s <= 1 for s in body["scores"])
    assert body["cached"] == [False, False]
    stages = parse_server_timing(r.headers["server-timing"])
    assert set(stages) == {"inference", "postprocess"}
    assert stages["inference"] > 0


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"texts": []}, "texts"),
        ({"texts": ["x"] * 33}, "texts"),
        ({"texts": ["   "]}, "texts[0] has 3 characters"),
        ({"texts": ["a" * 2001]}, "texts[0] has 2001 characters"),
        ({"texts": [1, 2]}, "texts"),
        ({"text": "a fine film"}, "text"),
        ({"texts": ["ok"], "extra": 1}, "extra"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_the_service_keeps_serving(
    baseline: SentimentService, payload: dict[str, object], needle: str
) -> None:
    with httpx.Client(base_url=baseline.url) as client:
        r = client.post("/predict", json=payload)
        assert r.status_code == 422
        assert needle in r.text
        assert client.get("/healthz").status_code == 200


def test_a_body_that_is_not_json_is_a_422(baseline: SentimentService) -> None:
    with httpx.Client(base_url=baseline.url) as client:
        r = client.post(
            "/predict", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert r.status_code == 422


def test_stopping_the_service_leaves_no_process_or_temp_dir(artifacts: object) -> None:
    service = SentimentService("baseline").start()
    pid, tmp = service.pid, Path(service.tmpdir)
    service.stop()
    assert pid is not None
    assert not Path(f"/proc/{pid}").exists()
    assert not tmp.exists()
    assert not os.path.exists(service.log_path)
