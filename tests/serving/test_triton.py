"""A real Triton (the nvidia-pytriton wheel's tritonserver 2.51) serving the INT8 model on CPU.

The server binds to loopback only, answers like a local onnxruntime session on the same file,
batches concurrent requests of different lengths (Triton's own statistics prove it), fails
with clear errors, and leaves no process or temp dir behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from pytest_latency.core.stats import quantile, quantile_bounds
from reference_system.predictors import BackendUnavailable, Encoder, OrtPredictor
from reference_system.serving.ports import free_port, listened_by
from reference_system.serving.triton_client import (
    AsyncTritonGrpcClient,
    TritonError,
    TritonGrpcClient,
    TritonTimeout,
    TritonUnavailable,
)
from reference_system.serving.triton_repo import (
    write_model_repository,
)
from reference_system.serving.triton_server import TritonServer, find_tritonserver

if TYPE_CHECKING:
    from reference_system.build import Artifacts

pytest.importorskip(
    "tritonclient.grpc",
    reason="tritonclient is not installed; run: pip install 'tritonclient[grpc]'",
)

Feeds = dict[str, Any]


def _require_tritonserver() -> None:
    try:
        find_tritonserver()
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def encode(artifacts: Artifacts) -> Encoder:
    return Encoder(artifacts.tokenizer_dir)


@pytest.fixture(scope="module")
def local_int8(artifacts: Artifacts) -> Iterator[OrtPredictor]:
    """The same INT8 file in this process, on two threads like the server's model instance."""
    with OrtPredictor(
        artifacts.onnx_int8_dynamic, artifacts.tokenizer_dir, intra_op_threads=2
    ) as predictor:
        yield predictor


@pytest.fixture(scope="module")
def texts(review_texts: list[str]) -> list[str]:
    return review_texts[:64]


@pytest.fixture(scope="module")
def int8_repo(artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_repository(
        tmp_path_factory.mktemp("triton") / "repo", artifacts.onnx_int8_dynamic
    )


@pytest.fixture(scope="module")
def server(int8_repo: Path) -> Iterator[TritonServer]:
    _require_tritonserver()
    with TritonServer(int8_repo) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: TritonServer) -> Iterator[TritonGrpcClient]:
    # Depends on `server`, so it is closed first: an open channel would hold Triton's shutdown.
    with TritonGrpcClient(server.grpc_url, timeout_s=10.0) as grpc_client:
        yield grpc_client


def _decode_proc_address(hex_address: str) -> IPv4Address | IPv6Address:
    """/proc/net/tcp{,6} write addresses as 32-bit words in host (little-endian) order."""
    raw = b"".join(
        bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, len(hex_address), 8)
    )
    address = ip_address(raw)
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # gRPC listens on an IPv6 socket at ::ffff:127.0.0.1
    return address


def _listening_addresses(port: int) -> set[IPv4Address | IPv6Address]:
    """Local addresses of the LISTEN sockets on ``port``, from /proc/net/tcp and tcp6."""
    found: set[IPv4Address | IPv6Address] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(port_hex, 16) == port:
                found.add(_decode_proc_address(address))
    return found


def _concurrent_load(infer: Callable[[Feeds], Any], feeds: list[Feeds]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(infer, feeds))


def _mean_batch_size_during(client: TritonGrpcClient, load: Callable[[], object]) -> float:
    """Triton's inference_count / execution_count over ``load`` only (its counters are
    cumulative and other tests use the same server)."""
    before = client.statistics()
    load()
    after = client.statistics()
    executions = after["execution_count"] - before["execution_count"]
    return (after["inference_count"] - before["inference_count"]) / executions


def test_server_is_ready_and_listens_on_loopback_only(
    server: TritonServer, client: TritonGrpcClient
) -> None:
    assert client.ready()
    for port in (server.http_port, server.grpc_port, server.metrics_port):
        listening = _listening_addresses(port)
        assert listening, f"nothing listens on port {port}"
        # The kernel's own table of listening sockets: every one must be a loopback address
        # (no traffic is sent anywhere but loopback to check this).
        assert all(a.is_loopback for a in listening), f"port {port}: {listening}"


def test_triton_logits_equal_local_onnxruntime_on_the_same_int8_file(
    client: TritonGrpcClient, encode: Encoder, local_int8: OrtPredictor, texts: list[str]
) -> None:
    for text in texts[:5]:  # one at a time: each request is its own batch
        expected = local_int8.predict([text])
        got = client.infer(encode([text]))
        assert got.dtype == np.float32
        assert got.shape == (1, 2)
        np.testing.assert_allclose(got, expected.logits, atol=1e-4)
        assert got.argmax(axis=1).tolist() == expected.labels.tolist()


def test_a_batch_of_texts_of_different_lengths_returns_logits_per_text(
    client: TritonGrpcClient, encode: Encoder, local_int8: OrtPredictor, texts: list[str]
) -> None:
    batch = texts[:8]
    feeds = encode(batch)
    assert len(set(feeds["attention_mask"].sum(axis=1).tolist())) > 1, "lengths should differ"
    got = client.infer(feeds)
    assert got.shape == (8, 2)
    np.testing.assert_allclose(got, local_int8.predict(batch).logits, atol=1e-4)


def test_dynamic_batching_groups_concurrent_requests_of_different_lengths(
    client: TritonGrpcClient, encode: Encoder, local_int8: OrtPredictor, texts: list[str]
) -> None:
    feeds = [encode([text]) for text in texts]
    assert len({f["input_ids"].shape[1] for f in feeds}) > 10
    results: list[Any] = []
    mean = _mean_batch_size_during(
        client, lambda: results.extend(_concurrent_load(client.infer, feeds))
    )
    assert mean > 1, f"16 concurrent clients, mean batch size {mean}"
    # Dynamic INT8 quantisation scales activations per tensor, i.e. over the whole batch, so
    # a text's logits depend on its batch-mates (measured: up to ~0.25; FP32 gives 0.0).
    # The labels must still agree, bar the odd borderline review.
    got = np.concatenate(results).argmax(axis=1)
    alone = np.concatenate([local_int8.predict([t]).labels for t in texts])
    assert np.mean(got == alone) >= 0.95


def _closed_loop(client: TritonGrpcClient, feeds: list[Feeds], seconds: float) -> Any:
    """`seconds` of 16 concurrent clients (pytest-latency's closed-loop driver), no verdict."""
    from pytest_latency.core.runner import measure
    from pytest_latency.core.spec import Spec

    stream, lock = itertools.cycle(feeds), threading.Lock()

    def call() -> None:
        with lock:
            one = next(stream)
        client.infer(one)

    spec = Spec.from_kwargs(
        p99_ms=1e9,
        concurrency=16,
        warmup=32,
        min_samples=10**7,
        max_samples=10**7,
        max_time_s=seconds,
    ).resolved({})
    return measure(call, spec=spec).samples


def test_dynamic_batching_raises_throughput_and_cuts_the_tail_under_16_concurrent_clients(
    artifacts: Artifacts, tmp_path: Path, encode: Encoder, texts: list[str]
) -> None:
    """Batching shown, not assumed: the same model behind two servers, batching on and off,
    alternated in 4 s blocks (on-off, off-on, on-off). Measured on the 2-core VM: 1.09x to
    1.38x the throughput (e.g. 250 vs 219 rps, p99 92 vs 114 ms, mean batch 6.0; the gain
    shrinks when other work shares the cores); asserted: >= 1.05x the throughput with a p99
    that is not worse with 95 % confidence, so at a p99 target the batching server meets, it
    serves more."""
    _require_tritonserver()
    feeds = [encode([text]) for text in texts]
    latencies: dict[str, list[Any]] = {"on": [], "off": []}
    done = {"on": 0, "off": 0}
    wall_ns = {"on": 0, "off": 0}
    with contextlib.ExitStack() as stack:
        clients = {}
        for mode in ("on", "off"):
            repo = write_model_repository(
                tmp_path / mode, artifacts.onnx_int8_dynamic, dynamic_batching=mode == "on"
            )
            server = stack.enter_context(TritonServer(repo))
            clients[mode] = stack.enter_context(TritonGrpcClient(server.grpc_url, timeout_s=10))
        client_stats_before = clients["on"].statistics()
        for round_ in range(3):
            for mode in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                samples = _closed_loop(clients[mode], feeds, seconds=4.0)
                assert samples.errors == 0, samples.first_error
                latencies[mode].append(samples.latencies_ns)
                done[mode] += samples.n
                wall_ns[mode] += samples.wall_ns
        after = clients["on"].statistics()
    batch_on = (after["inference_count"] - client_stats_before["inference_count"]) / (
        after["execution_count"] - client_stats_before["execution_count"]
    )
    rps = {m: done[m] / (wall_ns[m] / 1e9) for m in done}
    ordered = {m: np.sort(np.concatenate(latencies[m])) for m in done}
    p99 = {m: quantile(ordered[m], 0.99) / 1e6 for m in done}
    # "No worse a p99" with confidence, not as two point estimates: one-sided 97.5 % bounds
    # for each p99 (95 % together). A noisy CI run measured 70.6 vs 69.7 ms -- the point
    # estimates flipped while the two tails were the same within their sampling error.
    lo_on = quantile_bounds(ordered["on"], 0.99, 0.025)[0]
    hi_off = quantile_bounds(ordered["off"], 0.99, 0.025)[1]
    facts = f"batching on: {rps['on']:.0f} rps, p99 {p99['on']:.1f} ms, mean batch "
    facts += f"{batch_on:.2f}; off: {rps['off']:.0f} rps, p99 {p99['off']:.1f} ms; "
    facts += f"p99 lower bound on {lo_on and lo_on / 1e6} ms, upper bound off "
    facts += f"{hi_off and hi_off / 1e6} ms"
    assert batch_on > 2, facts
    assert rps["on"] >= 1.05 * rps["off"], facts
    # Enough samples to bound both.
    assert lo_on is not None, facts
    assert hi_off is not None, facts
    assert lo_on <= hi_off, facts  # batching's p99 is not worse with 95 % confidence


def test_without_dynamic_batching_every_execution_serves_one_request(
    artifacts: Artifacts, tmp_path: Path, encode: Encoder, texts: list[str]
) -> None:
    _require_tritonserver()
    repo = write_model_repository(
        tmp_path / "repo", artifacts.onnx_int8_dynamic, dynamic_batching=False
    )
    assert "dynamic_batching" not in (repo / "sentiment" / "config.pbtxt").read_text()
    feeds = [encode([text]) for text in texts]
    with TritonServer(repo) as server, TritonGrpcClient(server.grpc_url, timeout_s=10) as client:
        mean = _mean_batch_size_during(client, lambda: _concurrent_load(client.infer, feeds))
    assert mean == 1.0


def test_async_client_returns_the_same_logits_as_a_local_session(
    server: TritonServer, encode: Encoder, local_int8: OrtPredictor, texts: list[str]
) -> None:
    async def run() -> list[Any]:
        async with AsyncTritonGrpcClient(server.grpc_url, timeout_s=10) as aclient:
            assert await aclient.ready()
            return [await aclient.infer(encode([text])) for text in texts[:3]]

    for text, got in zip(texts[:3], asyncio.run(run()), strict=True):
        np.testing.assert_allclose(got, local_int8.predict([text]).logits, atol=1e-4)


def test_an_url_with_nothing_listening_raises_triton_unavailable_naming_it(
    encode: Encoder,
) -> None:
    url = f"127.0.0.1:{free_port()}"
    with TritonGrpcClient(url, timeout_s=2) as client:
        assert not client.ready()
        with pytest.raises(TritonUnavailable, match=rf"unavailable at {url}.*Start a server"):
            client.infer(encode(["anything"]))


def test_a_one_microsecond_deadline_raises_triton_timeout_naming_it(
    client: TritonGrpcClient, encode: Encoder
) -> None:
    with pytest.raises(TritonTimeout, match=r"deadline of 0\.001 ms") as info:
        client.infer(encode(["a film"]), timeout_s=1e-6)
    assert isinstance(info.value, TimeoutError)
    assert client.infer(encode(["a film"])).shape == (1, 2)  # the channel survives


def _pids_mentioning(needle: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if needle in cmdline:
                pids.append(int(entry.name))
    return pids


def _group_members(pgid: int) -> dict[int, str]:
    members = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # Fields after "(comm)": state ppid pgrp ...
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members[int(entry.name)] = comm
    return members


def test_stopping_the_server_leaves_no_process_shared_memory_or_temp_dir(
    int8_repo: Path,
) -> None:
    _require_tritonserver()
    server = TritonServer(int8_repo).start()
    pgid, tmpdir = server.pid, server.tmpdir
    assert pgid is not None
    try:
        names = set(_group_members(pgid).values())
        # Seen while running, so the checks below would notice a survivor. (comm is cut to
        # 15 characters: "triton_python_b".)
        assert "tritonserver" in names
        assert any(name.startswith("triton_python") for name in names)
        shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    finally:
        server.stop()
    assert _group_members(pgid) == {}
    assert _pids_mentioning(str(tmpdir)) == []
    assert not tmpdir.exists()
    if os.path.isdir("/dev/shm"):
        ours = {n for n in shm_before if n.startswith(server.shm_prefix)}
        assert ours, "the server's shared-memory regions were not found while it ran"
        assert not ours & set(os.listdir("/dev/shm"))


def test_a_port_taken_after_it_was_chosen_is_retried_on_fresh_ports(int8_repo: Path) -> None:
    """Another session binds Triton's chosen HTTP port before Triton does: that start fails
    with "already in use", its temp dir and shared memory go, and the server comes up on
    fresh ports -- its own listeners, not the squatter's."""
    _require_tritonserver()
    server = TritonServer(int8_repo)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", server.http_port))
        squatter.listen()
        taken, first_tmpdir = server.http_port, server.tmpdir
        server.start()
        try:
            assert server.http_port != taken
            assert listened_by(server.pid or -1, server.http_port)
            assert listened_by(server.pid or -1, server.grpc_port)
            assert not first_tmpdir.exists()  # the failed start's temp dir is gone
        finally:
            server.stop()
    assert not server.tmpdir.exists()


def test_a_missing_tritonserver_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import reference_system.serving.triton_server as triton_server

    monkeypatch.setattr(triton_server, "_pytriton_dir", lambda: None)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(BackendUnavailable, match=r"pip install nvidia-pytriton==0\.7\.0"):
        find_tritonserver()


def test_a_bad_request_inside_a_dynamic_batch_fails_alone(
    client: TritonGrpcClient, encode: Encoder, local_int8: OrtPredictor, texts: list[str]
) -> None:
    """Every 4th of 64 concurrent requests is bad: either its inputs disagree in shape (the
    model's checks refuse it before the batch runs) or it carries a token id the model has no
    embedding for (onnxruntime fails the whole batch run; each request is then run alone).
    The bad ones get their own error, their batch-mates their logits."""
    feeds = [encode([text]) for text in texts]
    jobs: list[tuple[str, Feeds]] = []
    for i, good in enumerate(feeds):
        if i % 8 == 3:
            seq = good["input_ids"].shape[1]
            jobs.append(("shape", {**good, "attention_mask": np.ones((1, seq + 2), np.int64)}))
        elif i % 8 == 7:
            jobs.append(("vocab", {**good, "input_ids": np.full_like(good["input_ids"], 10**6)}))
        else:
            jobs.append(("good", good))

    def call(job: tuple[str, Feeds]) -> Any:
        try:
            return client.infer(job[1])
        except TritonError as exc:
            return exc

    results: list[Any] = []
    mean = _mean_batch_size_during(client, lambda: results.extend(_concurrent_load(call, jobs)))
    assert mean > 1, f"no dynamic batching happened (mean batch size {mean}): nothing tested"
    for (kind, _), result in zip(jobs, results, strict=True):
        if kind == "good":
            assert isinstance(result, np.ndarray), result
            assert result.shape == (1, 2)
        elif kind == "shape":
            assert isinstance(result, TritonError)
            assert "INVALID_ARGUMENT" in str(result)
            assert "inputs differ in shape" in str(result)
        else:
            assert isinstance(result, TritonError)
            assert "failed on this request" in str(result)
    good = [r for (kind, _), r in zip(jobs, results, strict=True) if kind == "good"]
    good_texts = [t for (kind, _), t in zip(jobs, texts, strict=True) if kind == "good"]
    labels = np.concatenate(good).argmax(axis=1)
    # Batch-mates move INT8 logits a little (see the batching test): labels agree, bar one.
    assert np.mean(labels == local_int8.predict(good_texts).labels) >= 0.95
    assert client.infer(feeds[0]).shape == (1, 2)  # and the model still serves
