"""Hostile input to ``POST /predict`` on every front, against the real servers.

Each case gets a 4xx with a JSON error naming the problem and what is valid, and the front
answers the next request as if nothing happened. The co-located, baseline and optimised
(Triton) fronts share the request contract (``serving/contract.py``), and each is tested.
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
import unicodedata
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

httpx = pytest.importorskip("httpx", reason="run: pip install -r requirements/reference.txt")

from reference_system.serving.contract import (  # noqa: E402
    BODY_TIMEOUT_S,
    MAX_BODY_BYTES,
    canonical_text,
)
from reference_system.serving.prediction_cache import cache_key, normalise  # noqa: E402

FRONTS = {"colocated": "colocated_url", "baseline": "baseline_url", "optimised": "service_url"}


@pytest.fixture(params=sorted(FRONTS))
def front(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    url = request.getfixturevalue(FRONTS[request.param])
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


def _still_serving(client: httpx.Client) -> None:
    r = client.post("/predict", json={"texts": ["A fine, warm film."]})
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == [1]


U = "\\u"  # a JSON escape, written into the body as it is

CASES: list[tuple[str, bytes, str, str]] = [
    # (id, raw body, error code, regex the detail must match)
    ("not-json", b"{not json", "invalid_json", r"not JSON: .* line 1 column 2"),
    ("not-utf8", b'{"texts": ["\xff\xfe film"]}', "invalid_utf8", r"byte 12 is b'\\xff'"),
    ("deep-nesting", b"[" * 200_000, "invalid_json", r"not JSON this service reads"),
    ("huge-integer", b'{"texts": [' + b"9" * 5000 + b"]}", "invalid_json", r"not JSON"),
    ("not-an-object", b'["a film"]', "invalid_field", r"the body is a list; send"),
    ("unknown-field", b'{"text": "a film"}', "invalid_field", r"unknown field\(s\) \['text'\]"),
    ("missing-texts", b"{}", "invalid_field", r'field "texts" is missing'),
    ("string-not-list", b'{"texts": "a film"}', "invalid_field", r'"texts" is a string; it must'),
    ("null-text", b'{"texts": [null]}', "invalid_text", r"texts\[0\] is null; every text must"),
    ("number-text", b'{"texts": ["ok", 2]}', "invalid_text", r"texts\[1\] is a number \(2\)"),
    ("empty-list", b'{"texts": []}', "bad_text_count", r'"texts" has 0 items; send 1 to 32'),
    (
        "too-many-texts",
        json.dumps({"texts": ["a film"] * 33}).encode(),
        "bad_text_count",
        r'"texts" has 33 items; send 1 to 32 texts',
    ),
    (
        "too-long",
        json.dumps({"texts": ["a" * 2001]}).encode(),
        "invalid_text",
        r"texts\[0\] has 2001 characters; each text needs 1 to 2000",
    ),
    (
        "blank",
        b'{"texts": [" \\t\\n "]}',
        "invalid_text",
        r"texts\[0\] has 4 characters, all white",
    ),
    (
        "lone-surrogate",
        f'{{"texts": ["a film {U}d800"]}}'.encode(),
        "invalid_text",
        r"texts\[0\] has a lone surrogate U\+D800 at character 7",
    ),
    (
        "grows-under-nfkc",
        json.dumps({"texts": ["\ufdfa" * 2000]}, ensure_ascii=False).encode(),
        "invalid_text",
        r"texts\[0\] has 36000 characters after Unicode NFKC normalisation \(2000 as sent\)",
    ),
]


@pytest.mark.parametrize(
    ("body", "error", "detail"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_bodies_get_a_422_naming_the_problem_and_the_front_keeps_serving(
    front: httpx.Client, body: bytes, error: str, detail: str
) -> None:
    r = front.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"] == error
    assert_detail(r.json()["detail"], detail)
    _still_serving(front)


def assert_detail(text: str, pattern: str) -> None:
    assert re.search(pattern, text), f"{pattern!r} not in {text!r}"


def test_a_valid_surrogate_pair_and_a_text_at_the_limit_are_answered(front: httpx.Client) -> None:
    body = f'{{"texts": ["a lovely film {U}d83c{U}dfac", "{"a" * 2000}"]}}'.encode()
    r = front.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert len(r.json()["labels"]) == 2


# -- bodies that are too big or too slow: raw sockets, to send what no HTTP client would ------


def _connect(client: httpx.Client) -> socket.socket:
    parts = urllib.parse.urlsplit(str(client.base_url))
    assert parts.hostname is not None
    assert parts.port is not None
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Status, headers and JSON body of one response (the error answers have a length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    while len(rest) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the body"
        rest += chunk
    return int(lines[0].split()[1]), headers, json.loads(rest)


def _head(client: httpx.Client, extra: str) -> bytes:
    host = urllib.parse.urlsplit(str(client.base_url)).netloc
    return (
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}\r\n"
    ).encode()


def test_a_body_declared_over_the_limit_is_refused_before_it_is_sent(front: httpx.Client) -> None:
    with _connect(front) as sock:
        sock.sendall(_head(front, f"Content-Length: {50 * MAX_BODY_BYTES}\r\n"))
        status, headers, body = _read_response(sock)  # not one byte of the body sent
    assert status == 413
    assert headers["connection"] == "close"
    assert body["error"] == "body_too_large"
    assert_detail(body["detail"], rf"{50 * MAX_BODY_BYTES} bytes; the limit is {MAX_BODY_BYTES}")
    _still_serving(front)


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(front: httpx.Client) -> None:
    chunk = b"x" * 65536
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = {"bytes": 0}

    def send(sock: socket.socket) -> None:
        # Twice the limit if the server kept reading; it answers and closes after the limit.
        try:
            for _ in range(2 * MAX_BODY_BYTES // len(chunk)):
                sock.sendall(framed)
                sent["bytes"] += len(chunk)
        except OSError:
            pass

    with _connect(front) as sock:
        sock.sendall(_head(front, "Transfer-Encoding: chunked\r\n"))
        sender = threading.Thread(target=send, args=(sock,), daemon=True)
        sender.start()
        status, headers, body = _read_response(sock)
        sender.join(timeout=30)
    assert status == 413
    assert headers["connection"] == "close"
    assert body["error"] == "body_too_large"
    assert_detail(body["detail"], rf"over {MAX_BODY_BYTES} bytes")
    _still_serving(front)


def test_a_client_trickling_its_body_gets_a_408_within_the_read_timeout(
    front: httpx.Client,
) -> None:
    """One byte every 100 ms of a 60-byte body would take 6 s: the front gives up at
    BODY_TIMEOUT_S (5 s), answers 408 and closes, and serves others meanwhile."""
    body = json.dumps({"texts": ["a slow, slow film" + " " * 30]}).encode()
    answered_meanwhile = []
    with _connect(front) as sock:
        sock.sendall(_head(front, f"Content-Length: {len(body)}\r\n"))
        t0 = time.monotonic()
        for i in range(len(body)):
            if select.select([sock], [], [], 0.1)[0]:
                break  # the front answered before the body was complete
            sock.sendall(body[i : i + 1])
            if i == 10:
                _still_serving(front)
                answered_meanwhile.append(time.monotonic() - t0)
        status, headers, answer = _read_response(sock)
        waited_s = time.monotonic() - t0
    assert status == 408, answer
    assert headers["connection"] == "close"
    assert answer["error"] == "body_timeout"
    assert_detail(
        answer["detail"], rf"did not arrive within {BODY_TIMEOUT_S:g} s \(\d+ of {len(body)}"
    )
    assert BODY_TIMEOUT_S - 0.5 <= waited_s <= BODY_TIMEOUT_S + 2.0, waited_s
    assert answered_meanwhile, "the front did not serve another client during the trickle"
    _still_serving(front)


@pytest.fixture(scope="module")
def own_front(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A co-located front of this module's own (no cache), with a 1 s read timeout, whose
    process the tests can inspect."""
    request.getfixturevalue("artifacts")  # the model build, or a skip naming what is missing
    from reference_system.serving.services import SentimentService

    profile = request.config.getoption("--reference-profile")
    with SentimentService("colocated", profile=profile, extra=["--body-timeout-s", "1"]) as service:
        yield service


@pytest.fixture(scope="module")
def own_baseline(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A baseline front (FastAPI + PyTorch FP32) of this module's own, whose process the
    memory test can inspect."""
    request.getfixturevalue("artifacts")
    from reference_system.serving.services import SentimentService

    profile = request.config.getoption("--reference-profile")
    with SentimentService("baseline", profile=profile) as service:
        yield service


def test_the_read_timeout_is_the_fronts_option(own_front: Any) -> None:
    """``serve.py --body-timeout-s 1``: a trickled body gets its 408 after 1 s, not 5."""
    with (
        httpx.Client(base_url=own_front.url, timeout=30) as client,
        _connect(client) as sock,
    ):
        body = b'{"texts": ["a film sent one byte at a time, slowly"]}'
        sock.sendall(_head(client, f"Content-Length: {len(body)}\r\n"))
        t0 = time.monotonic()
        for i in range(len(body)):
            if select.select([sock], [], [], 0.1)[0]:
                break
            sock.sendall(body[i : i + 1])
        status, _, answer = _read_response(sock)
        waited_s = time.monotonic() - t0
        assert status == 408, answer
        assert_detail(answer["detail"], r"did not arrive within 1 s")
        assert 0.5 <= waited_s <= 3.0, waited_s
        _still_serving(client)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


HOSTILE_BODIES = [
    json.dumps({"texts": ["x" * (MAX_BODY_BYTES - 100)]}).encode(),  # a text over the limit
    b"[" * (MAX_BODY_BYTES - 1),  # nesting
    json.dumps({"texts": ["\ufdfa" * 2000]}).encode(),  # grows 18x under NFKC
    b'{"texts": ["' + b"\xff" * (MAX_BODY_BYTES - 20) + b'"]}',  # not UTF-8
    json.dumps({"texts": ["a film"] * 5000}).encode(),  # too many texts
]


@pytest.mark.parametrize("which", ["own_front", "own_baseline"], ids=["colocated", "baseline"])
def test_memory_stays_bounded_under_hostile_bodies(
    which: str, request: pytest.FixtureRequest
) -> None:
    """Two rounds of 100 near-limit hostile bodies (~50 MiB each round) to each front: the
    first may grow the heap to its working size; the second must not grow it further (a
    per-request leak would grow it by as much again)."""
    service = request.getfixturevalue(which)
    pid = service.pid
    assert pid is not None
    with httpx.Client(base_url=service.url, timeout=30) as client:
        for _ in range(20):
            _still_serving(client)
        rss = [_rss_mib(pid)]
        for _ in range(2):
            for i in range(100):
                body = HOSTILE_BODIES[i % len(HOSTILE_BODIES)]
                r = client.post(
                    "/predict", content=body, headers={"content-type": "application/json"}
                )
                assert r.status_code in (413, 422), (r.status_code, r.text[:200])
            _still_serving(client)
            rss.append(_rss_mib(pid))
    first, second = rss[1] - rss[0], rss[2] - rss[1]
    print(f"front RSS MiB before / after round 1 / after round 2: {rss}")  # shown with -s
    assert second <= 8, f"RSS MiB before / after round 1 / after round 2: {rss}"
    assert rss[2] - rss[0] <= 128, f"RSS MiB: {rss} (first round +{first:.1f})"


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "301"])
def test_a_bad_read_timeout_is_refused_naming_the_value(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from reference_system.serving import serve

    with pytest.raises(SystemExit) as exit_info:
        serve.main(["colocated", "--port", "1", "--body-timeout-s", bad])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"--body-timeout-s {float(bad)!r} is not valid; expected seconds from 0.05 to 300" in err


# -- one text, one string: what the cache keys is what the tokenizer sees ---------------------

TRICKY = [
    "A fine film",
    "a   fine\tfilm",
    "a \ufb01ne film",  # the fi ligature
    "\uff41 fine film",  # full-width a
    "A FINE FILM",
    "a fine film\u200b",  # zero-width space: no whitespace to split, kept
    "\ufb01" * 3,
    "\u0130stanbul",  # capital I with dot: lower() gives i + combining dot
    "cafe\u0301",  # e + combining acute (NFKC composes it)
    "caf\u00e9",
    "\ufdfa",
    "\u2126 ohm",  # Ohm sign -> Greek Omega
    "\u03a9 ohm",
]


def test_texts_share_a_cache_key_only_when_the_tokenizer_sees_the_same_string(
    artifacts: Any,
) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(artifacts.tokenizer_dir / "tokenizer.json"))
    seen = {text: canonical_text(text) for text in TRICKY}
    keys = {text: cache_key("v1", seen[text]) for text in TRICKY}
    ids = {text: tok.encode(seen[text]).ids for text in TRICKY}
    for a in TRICKY:
        assert normalise(seen[a]) == seen[a]  # the key hashes exactly the tokenizer's input
        for b in TRICKY:
            if keys[a] == keys[b]:
                assert ids[a] == ids[b], (a, b)
    # ... and the variants really do share (the point of normalising: a higher hit rate).
    assert len({keys[t] for t in TRICKY[:6]}) == 2  # the zero-width space is another text


@given(st.text(max_size=50))
def test_canonical_text_is_a_fixed_point_of_the_caches_normalisation(text: str) -> None:
    try:
        seen = canonical_text(text)
    except ValueError:
        return  # refused with a 422; never keyed
    assert normalise(seen) == seen
    assert seen == unicodedata.normalize("NFKC", seen)


def test_a_variant_of_a_cached_text_is_answered_from_the_same_entry(colocated_url: str) -> None:
    plain = f"a fine film, {time.time_ns()}"
    variant = plain.replace("fi", "\ufb01").upper().replace(" ", "  ")
    with httpx.Client(base_url=colocated_url, timeout=10) as client:
        first = client.post("/predict", json={"texts": [plain]}).json()
        for _ in range(100):  # the entry is written after the answer: wait, boundedly
            again = client.post("/predict", json={"texts": [variant]}).json()
            if again["cached"] == [True]:
                break
            time.sleep(0.02)
    assert first["cached"] == [False]
    assert again["cached"] == [True]
    assert again["scores"] == first["scores"]
