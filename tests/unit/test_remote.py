"""What Locust workers are asked to run, validated in the pytest process."""

from __future__ import annotations

import pytest

from pytest_latency.core.cluster import parse_master
from pytest_latency.core.remote import TargetError, callable_target, http_target


def module_level(i: int) -> dict[str, object]:
    return {"json": {"i": i}}


def test_an_http_target_keeps_the_request_and_its_variations() -> None:
    target = http_target(
        "post", "http://127.0.0.1:8000/predict?x=1", json={"a": 1}, headers={"K": "v"}
    )
    assert target["method"] == "POST"
    assert target["payload"] == {"json": {"a": 1}, "body": None}
    varied = http_target("GET", "https://h/", payloads=[{"body": "a"}, {"body": "b"}])
    assert varied["payloads"] == [{"body": "a"}, {"body": "b"}]
    by_function = http_target("GET", "http://h/", payloads=module_level)
    assert by_function["payload_fn"] == f"{__name__}:module_level"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: http_target("FETCH", "http://h/"), "method='FETCH' is not valid; expected one"),
        (lambda: http_target("GET", "h:80/x"), "url='h:80/x' is not valid; expected an absolute"),
        (lambda: http_target("GET", "http:///x"), "url='http:///x' is not valid"),
        (lambda: http_target("GET", "http://h/", json={}, body="x"), "json= and body= are both"),
        (lambda: http_target("GET", "http://h/", payloads=[]), "payloads=[] is not valid"),
        (lambda: http_target("GET", "http://h/", payloads=lambda i: {}), "cannot be imported"),
        (lambda: callable_target("pkg.mod"), "target='pkg.mod' is not valid; expected 'package"),
        (lambda: callable_target("pkg.mod:f", object()), "cannot be sent to Locust workers"),
    ],
)
def test_bad_targets_name_the_value_and_what_is_valid(call: object, message: str) -> None:
    with pytest.raises(TargetError, match=None) as caught:
        call()  # type: ignore[operator]
    assert message in str(caught.value)


def test_a_master_address_is_host_and_port() -> None:
    assert parse_master("0.0.0.0:5557") == ("0.0.0.0", 5557)
    assert parse_master("[::1]:5557") == ("::1", 5557)
    for bad in ("5557", "host:", "host:0", "host:99999", ":5557"):
        with pytest.raises(ValueError, match="not a valid Locust master address"):
            parse_master(bad)
