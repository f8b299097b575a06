"""gRPC clients for the Triton sentiment model: one long-lived channel, a deadline per call.

    with TritonGrpcClient(server.grpc_url, timeout_s=0.05) as client:
        logits = client.infer(encoder(["a quietly devastating film"]))   # (1, 2) float32
        client.statistics()["mean_batch_size"]

    async with AsyncTritonGrpcClient(server.grpc_url) as client:
        logits = await client.infer(feeds)

A client opens its channel once and reuses it for every call (a new channel per request costs
a TCP + HTTP/2 handshake on the latency path). Failures become :class:`TritonUnavailable`
(nothing answers at the URL) or :class:`TritonTimeout` (the call's deadline passed); anything
else Triton rejects is a :class:`TritonError`. Close clients before stopping the server: an open
channel holds Triton's shutdown until its exit timeout.

``tritonclient`` is imported when a client is built, never at module import.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from reference_system.predictors import BackendUnavailable

__all__ = [
    "AsyncTritonGrpcClient",
    "TritonError",
    "TritonGrpcClient",
    "TritonTimeout",
    "TritonUnavailable",
    "summarize_statistics",
]

TRITONCLIENT_INSTALL_COMMAND = "pip install 'tritonclient[grpc]' 'protobuf<7'"
OUTPUT_NAME = "logits"

# Keep-alive pings only while calls are in flight: Triton's defaults
# (--grpc-keepalive-permit-without-calls=0, 5 min minimum ping interval without data) answer
# idle pings with GOAWAY "too_many_pings", which would drop the long-lived channel.
KEEPALIVE = {
    "keepalive_time_ms": 30_000,
    "keepalive_timeout_ms": 5_000,
    "keepalive_permit_without_calls": False,
    "http2_max_pings_without_data": 2,
}
# Reconnect soon after the server comes back. gRPC's default backoff starts at 1 s and grows
# 1.6x per failed attempt up to 120 s: a channel that saw Triton down for half a minute would
# keep failing calls for tens of seconds after it was up again. Calls while the channel is
# down fail at once (UNAVAILABLE), they do not wait for it.
RECONNECT = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1_000,
}


class TritonError(RuntimeError):
    """Triton rejected or failed a call; the message carries Triton's status and details."""


class TritonUnavailable(TritonError):
    """Nothing answers at the URL (server down, wrong port, not yet started)."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        super().__init__(
            f"Triton is unavailable at {url}: {detail}. Start a server there (for tests: "
            "reference_system.serving.triton_server.TritonServer) or point the client at a "
            "running one (grpc host:port)."
        )


class TritonTimeout(TritonError, TimeoutError):
    """The call missed its deadline (``client_timeout``); the server may still run it."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url, self.timeout_s = url, timeout_s
        super().__init__(
            f"Triton call to {url} exceeded its deadline of {timeout_s * 1e3:g} ms "
            f"({timeout_s:g} s); raise timeout_s or find out where the time goes "
            "(statistics(): queue vs compute)."
        )


def _grpc_modules(name: str) -> tuple[Any, Any]:
    try:
        import tritonclient.grpc as grpcclient  # type: ignore[import-untyped]
        import tritonclient.utils as tritonutils  # type: ignore[import-untyped]
    except ImportError as exc:
        raise BackendUnavailable(name, f"{exc}", TRITONCLIENT_INSTALL_COMMAND) from exc
    return grpcclient, tritonutils


def _inputs(grpcclient: Any, feeds: Mapping[str, npt.NDArray[Any]]) -> list[Any]:
    inputs = []
    for name, array in feeds.items():
        data = np.ascontiguousarray(array, dtype=np.int64)
        item = grpcclient.InferInput(name, list(data.shape), "INT64")
        item.set_data_from_numpy(data)
        inputs.append(item)
    return inputs


def _channel_args(grpc_module: Any) -> list[tuple[str, Any]]:
    """tritonclient's own channel options (message sizes, :data:`KEEPALIVE`) plus
    :data:`RECONNECT` (passing ``channel_args`` replaces tritonclient's list, so it is rebuilt
    here whole)."""
    size = grpc_module.MAX_GRPC_MESSAGE_SIZE
    args: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", size),
        ("grpc.max_receive_message_length", size),
        ("grpc.keepalive_time_ms", KEEPALIVE["keepalive_time_ms"]),
        ("grpc.keepalive_timeout_ms", KEEPALIVE["keepalive_timeout_ms"]),
        ("grpc.keepalive_permit_without_calls", KEEPALIVE["keepalive_permit_without_calls"]),
        ("grpc.http2.max_pings_without_data", KEEPALIVE["http2_max_pings_without_data"]),
    ]
    return args + list(RECONNECT.items())


def _translate(exc: Exception, url: str, timeout_s: float) -> TritonError:
    status = str(getattr(exc, "status", lambda: None)() or "")
    message = str(getattr(exc, "message", lambda: exc)() or exc)
    if status.endswith("UNAVAILABLE"):
        return TritonUnavailable(url, message)
    if status.endswith("DEADLINE_EXCEEDED"):
        return TritonTimeout(url, timeout_s)
    return TritonError(f"Triton call to {url} failed ({status or 'no status'}): {message}")


def _as_int(value: Any) -> int:
    return int(value or 0)


# Triton's per-request durations -> our names (milliseconds).
_DURATIONS = {
    "success": "request_ms",
    "queue": "queue_ms",
    "compute_input": "compute_input_ms",
    "compute_infer": "compute_infer_ms",
    "compute_output": "compute_output_ms",
}


def summarize_statistics(response: Any, model: str) -> dict[str, float]:
    """Triton's cumulative statistics for ``model`` (all versions) as plain numbers.

    ``mean_batch_size = inference_count / execution_count``: inferences are batch elements,
    executions are model runs, so it is the batch the model actually saw. Time averages are per
    request, in milliseconds (``queue_ms``: waiting in the scheduler, dynamic-batch delay
    included; ``compute_infer_ms``: the model run).
    """
    totals = {"inference_count": 0, "execution_count": 0, "request_count": 0}
    sums = {key: [0, 0] for key in _DURATIONS}  # [ns, count] per Triton duration
    for stats in response.model_stats:
        if stats.name != model:
            continue
        totals["inference_count"] += _as_int(stats.inference_count)
        totals["execution_count"] += _as_int(stats.execution_count)
        totals["request_count"] += _as_int(stats.inference_stats.success.count)
        for key, acc in sums.items():
            duration = getattr(stats.inference_stats, key)
            acc[0] += _as_int(duration.ns)
            acc[1] += _as_int(duration.count)
    out: dict[str, float] = {k: float(v) for k, v in totals.items()}
    executions = totals["execution_count"]
    out["mean_batch_size"] = totals["inference_count"] / executions if executions else 0.0
    for key, (ns, count) in sums.items():
        out[_DURATIONS[key]] = ns / count / 1e6 if count else 0.0
    return out


# ready()'s deadline when the inference deadline is shorter: a health check that times out
# because the deadline suits a model call would report a healthy server as down.
MIN_READY_TIMEOUT_S = 1.0


class TritonGrpcClient:
    """A blocking gRPC client for one model; safe to share between threads.

    ``timeout_s`` is the deadline of every ``infer`` call unless the call gives its own.
    """

    def __init__(self, url: str, model: str = "sentiment", *, timeout_s: float = 1.0) -> None:
        self.url, self.model, self.timeout_s = url, model, timeout_s
        self._ready_timeout_s = max(timeout_s, MIN_READY_TIMEOUT_S)
        self._grpc, self._utils = _grpc_modules("triton-grpc")
        self._client: Any = self._grpc.InferenceServerClient(
            url, channel_args=_channel_args(self._grpc)
        )
        self._output = [self._grpc.InferRequestedOutput(OUTPUT_NAME)]

    def infer(
        self, feeds: Mapping[str, npt.NDArray[Any]], *, timeout_s: float | None = None
    ) -> npt.NDArray[np.float32]:
        """Logits, ``(n, 2)`` float32, for int64 feeds of shape ``(n, seq)``."""
        deadline = self.timeout_s if timeout_s is None else timeout_s
        client = self._live()
        try:
            result = client.infer(
                self.model,
                _inputs(self._grpc, feeds),
                outputs=self._output,
                client_timeout=deadline,
            )
        except self._utils.InferenceServerException as exc:
            raise _translate(exc, self.url, deadline) from exc
        return np.asarray(result.as_numpy(OUTPUT_NAME), dtype=np.float32)

    def ready(self) -> bool:
        """True when the server and the model are ready; False when unreachable."""
        client = self._live()
        try:
            return bool(
                client.is_server_ready(client_timeout=self._ready_timeout_s)
                and client.is_model_ready(self.model, client_timeout=self._ready_timeout_s)
            )
        except self._utils.InferenceServerException:
            return False

    def statistics(self) -> dict[str, float]:
        """Cumulative server-side statistics of the model: see :func:`summarize_statistics`."""
        client = self._live()
        try:
            response = client.get_inference_statistics(self.model, client_timeout=self.timeout_s)
        except self._utils.InferenceServerException as exc:
            raise _translate(exc, self.url, self.timeout_s) from exc
        return summarize_statistics(response, self.model)

    def _live(self) -> Any:
        if self._client is None:
            raise RuntimeError(f"{self!r} is closed")
        return self._client

    def close(self) -> None:
        """Close the channel (idempotent)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TritonGrpcClient {self.url} model={self.model} timeout_s={self.timeout_s:g}>"


class AsyncTritonGrpcClient:
    """The asyncio twin of :class:`TritonGrpcClient` (``tritonclient.grpc.aio``).

    Build and use it inside one running event loop; ``await client.close()`` or use
    ``async with``.
    """

    def __init__(self, url: str, model: str = "sentiment", *, timeout_s: float = 1.0) -> None:
        self.url, self.model, self.timeout_s = url, model, timeout_s
        self._ready_timeout_s = max(timeout_s, MIN_READY_TIMEOUT_S)
        self._grpc, self._utils = _grpc_modules("triton-grpc-aio")
        try:
            import tritonclient.grpc.aio as aioclient  # type: ignore[import-untyped]
        except ImportError as exc:
            raise BackendUnavailable(
                "triton-grpc-aio", f"{exc}", TRITONCLIENT_INSTALL_COMMAND
            ) from exc
        self._client: Any = aioclient.InferenceServerClient(
            url, channel_args=_channel_args(self._grpc)
        )
        self._output = [self._grpc.InferRequestedOutput(OUTPUT_NAME)]

    async def infer(
        self, feeds: Mapping[str, npt.NDArray[Any]], *, timeout_s: float | None = None
    ) -> npt.NDArray[np.float32]:
        """Logits, ``(n, 2)`` float32, for int64 feeds of shape ``(n, seq)``."""
        deadline = self.timeout_s if timeout_s is None else timeout_s
        client = self._live()
        try:
            result = await client.infer(
                self.model,
                _inputs(self._grpc, feeds),
                outputs=self._output,
                client_timeout=deadline,
            )
        except self._utils.InferenceServerException as exc:
            raise _translate(exc, self.url, deadline) from exc
        return np.asarray(result.as_numpy(OUTPUT_NAME), dtype=np.float32)

    async def ready(self) -> bool:
        client = self._live()
        try:
            return bool(
                await client.is_server_ready(client_timeout=self._ready_timeout_s)
                and await client.is_model_ready(self.model, client_timeout=self._ready_timeout_s)
            )
        except self._utils.InferenceServerException:
            return False

    def _live(self) -> Any:
        if self._client is None:
            raise RuntimeError(f"{self!r} is closed")
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncTritonGrpcClient {self.url} model={self.model} timeout_s={self.timeout_s:g}>"
