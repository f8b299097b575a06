"""The ``latency`` fixture object: measure a callable, record the result, enforce the verdict.

    @pytest.mark.slo(p99_ms=10, p50_ms=4)
    def test_predict_is_fast(latency, model):
        result = latency(model.predict, "a fine film")   # measures, then asserts the SLO
        assert result.verdict.passed

Without a marker, pass the SLO: ``latency(fn, slo=Spec(p99_ms=10))`` or ``slo={"p99_ms": 10}``;
with one, ``slo=`` overrides the marker's keywords for this call. ``name=`` labels the result
when a test measures several callables. ``check=`` judges each answer for a goodput target
(``@pytest.mark.slo(goodput=0.99, goodput_ms=10)``): ``check(answer)`` is truthy when the answer
is right; it runs after the call's timing. Every other argument goes to `fn`.
"""

from __future__ import annotations

import asyncio
import json
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..core.cluster import LocustCluster
from ..core.compare import Comparison
from ..core.drivers import NotTimedError
from ..core.external import judge
from ..core.remote import TargetError, callable_target, http_target
from ..core.result import Result
from ..core.runner import Progress, is_async_callable, measure
from ..core.spec import Spec, SpecError
from ..core.verdict import Decision, Verdict
from ..report.table import failure_message
from .failures import PytestLatencyWarning
from .keys import Settings
from .locust_front import distributed
from .speedup import speedup as speedup_in_blocks
from .worst_case import WorstCase, worst_case


class LatencyFixture:
    """Callable returned by the ``latency`` fixture. Side effects come in as callables."""

    def __init__(
        self,
        *,
        marker_spec: Spec | None,
        settings: Settings,
        nodeid: str,
        record: Callable[[Result | Comparison], None],
        fail: Callable[..., Any],
        progress: Callable[[Progress], None] | None = None,
        skip: Callable[[str], Any] | None = None,
        locust_cluster: Callable[[int], LocustCluster] | None = None,
    ) -> None:
        self.marker_spec = marker_spec
        self.settings = settings
        self.nodeid = nodeid
        self._record = record
        self._fail = fail
        self._progress = progress
        self._loop: asyncio.AbstractEventLoop | None = None
        self.results: list[Result | Comparison] = []
        self.searches: list[WorstCase] = []  # latency.worst_case outcomes, in order
        self._skip = skip
        # Remote workers (--latency-locust-master): the session's cluster; else local ones,
        # started per test and stopped in `close`.
        self._locust_cluster = locust_cluster
        self._clusters: dict[int, LocustCluster] = {}

    def spec_for(self, slo: Spec | Mapping[str, Any] | None) -> Spec:
        """The effective spec: the marker's, with `slo` overriding; resolved to defaults."""
        if self.marker_spec is None and slo is None:
            raise SpecError(
                f"{self.nodeid}: no SLO to measure against; mark the test "
                "@pytest.mark.slo(p99_ms=...) or call latency(fn, slo=Spec(p99_ms=...))"
            )
        if isinstance(slo, Spec):
            base = slo if self.marker_spec is None else self.marker_spec.merged(slo)
        elif slo is not None:
            base = (
                Spec.from_kwargs(**slo)
                if self.marker_spec is None
                else self.marker_spec.merged(slo)
            )
        else:
            assert self.marker_spec is not None
            base = self.marker_spec
        spec = base.resolved(self.settings.spec_defaults())
        if spec.seed is None and spec.rate_rps is not None:
            # Reproducible per test: the session seed (printed in the header) and the test id.
            spec = spec.merged({"seed": self.settings.seed ^ zlib.crc32(self.nodeid.encode())})
        return spec

    def __call__(
        self,
        fn: Callable[..., Any],
        *args: Any,
        slo: Spec | Mapping[str, Any] | None = None,
        name: str | None = None,
        check: Callable[[Any], object] | None = None,
        **kwargs: Any,
    ) -> Result:
        if not callable(fn):
            raise TypeError(f"latency() needs a callable first, got {fn!r}")
        spec = self.spec_for(slo)
        if check is not None and spec.goodput is None:
            raise SpecError(
                f"{self.nodeid}: check= judges answers for a goodput target, and this SLO has "
                "none; add goodput=..., goodput_ms=... (e.g. @pytest.mark.slo(p99_ms=10, "
                "goodput=0.99, goodput_ms=10))"
            )
        if spec.engine == "locust":
            self._fail(
                f"{self.nodeid}: engine='locust' runs its requests in Locust worker processes, "
                "which cannot call a function of this process: use latency.http(method, url, "
                "...) for an HTTP endpoint or latency.remote('package.module:function') for "
                "an importable client; latency(fn) measures in-process"
            )
        label = name or getattr(fn, "__qualname__", None) or type(fn).__name__
        loop = self._loop_for(fn)
        try:
            measurement = measure(
                fn, args, kwargs, spec=spec, loop=loop, progress=self._progress, check=check
            )
        except NotTimedError as exc:
            self._fail(f"{self.nodeid}: {exc}")
            raise  # not reached: `fail` raises
        result = Result(
            label,
            spec,
            measurement.samples,
            measurement.verdict,
            self.nodeid,
            named=name is not None,
        )
        return self._keep(result)

    def judge(
        self,
        latencies_ms: Sequence[float] | Any,
        *,
        name: str,
        slo: Spec | Mapping[str, Any] | None = None,
        errors: int = 0,
        unfinished_ms: Sequence[float] | Any = (),
        wall_s: float | None = None,
        right: Sequence[bool] | Any = None,
        cold_start_ms: float | None = None,
    ) -> Result:
        """The marker's SLO decided on latencies measured elsewhere (a browser's
        ``performance.now()``, a device, a load tool's per-request log), reported like any
        measurement of this test: verdict, tables, JSON, saved runs. `cold_start_ms`: the
        first call, timed apart (reported; decided against a ``cold_start_ms`` target).

            latency.judge(page_timings_ms, name="onnxruntime-web, batch 1")
        """
        spec = self.spec_for(slo)
        measurement = judge(
            latencies_ms,
            spec,
            errors=errors,
            unfinished_ms=unfinished_ms,
            wall_s=wall_s,
            cold_start_ms=cold_start_ms,
            source=name,
            right=right,
        )
        result = Result(name, spec, measurement.samples, measurement.verdict, self.nodeid, True)
        return self._keep(result)

    def worst_case(
        self,
        fn: Callable[[Any], Any],
        strategy: Any,
        *,
        examples: int = 300,
        repeats: int = 3,
        keep: int = 3,
        max_size: int = 1000,
        seed: int | None = None,
        slo: Spec | Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> WorstCase:
        """Search `strategy` (a Hypothesis strategy) for the inputs on which `fn` is slowest,
        then measure the `keep` worst under the SLO; fail if any misses it. The outcome (the
        search, the inputs, their results) is also kept in ``latency.searches``. See
        `plugin.worst_case` and the README.

            latency.worst_case(int8.predict_one, st.text(max_size=2000), examples=300)
        """
        return worst_case(
            self,
            fn,
            strategy,
            examples=examples,
            repeats=repeats,
            keep=keep,
            max_size=max_size,
            seed=seed,
            slo=slo,
            name=name,
        )

    def http(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        payloads: Any = None,
        slo: Spec | Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> Result:
        """An HTTP endpoint under an open loop issued by Locust workers (``engine='locust'``,
        ``workers=N`` on the marker; ``rate_rps`` is the total over all workers). `payloads`
        varies the request per arrival: a list of ``{"json": ...}`` / ``{"body": ...}`` dicts
        (taken in turn) or an importable ``f(i) -> dict`` (``"package.module:function"``).

            @pytest.mark.slo(p99_ms=20, rate_rps=3000, engine="locust", workers=4)
            def test_predict_at_scale(latency, service_url):
                latency.http("POST", f"{service_url}/predict", json={"texts": ["a fine film"]})
        """
        try:
            target = http_target(
                method, url, json=json, body=body, headers=headers, payloads=payloads
            )
        except TargetError as exc:
            self._fail(f"{self.nodeid}: {exc}")
            raise
        return distributed(self, target, name, slo)

    def remote(
        self,
        target: str | Callable[..., Any],
        *args: Any,
        slo: Spec | Mapping[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Result:
        """An importable callable (``"package.module:function"``: a gRPC or any other client)
        run once per arrival by Locust workers, with JSON-able `args` / `kwargs`. It runs under
        gevent's monkey-patching there: blocking I/O in it yields to the other requests.

            latency.remote("myclient.grpc:predict", "a fine film")
        """
        try:
            spec_target = callable_target(target, *args, **kwargs)
        except TargetError as exc:
            self._fail(f"{self.nodeid}: {exc}")
            raise
        return distributed(self, spec_target, name, slo)

    def speedup(
        self,
        candidate: Callable[..., Any],
        reference: Callable[..., Any],
        *args: Any,
        min_speedup: float = 2.0,
        quantile: float = 0.99,
        block: int = 50,
        names: tuple[str, str] | None = None,
        slo: Spec | Mapping[str, Any] | None = None,
        settle_s: float = 0.0,
        block_warmup: int = 0,
        **kwargs: Any,
    ) -> Comparison:
        """A relative SLO: `candidate` at least `min_speedup` times faster than `reference`
        at `quantile`, both measured in this run in alternating blocks of `block` calls. The
        candidate comes first, as in ``accuracy_gate(candidate, reference, ...)``; `names`
        labels the two in the same order; `settle_s` pauses, unmeasured, before each block
        after the first, so what one side leaves running (a keep-warm loop) stops before the
        other side is timed; the first `block_warmup` calls of each block are not timed.

            comparison = latency.speedup(int8.predict, fp32.predict, texts, min_speedup=2)
        """
        return speedup_in_blocks(
            self,
            candidate,
            reference,
            args,
            kwargs,
            min_speedup,
            quantile,
            block,
            names,
            slo,
            settle_s,
            block_warmup,
        )

    def compare(
        self,
        baseline: Callable[..., Any],
        candidate: Callable[..., Any],
        *args: Any,
        min_speedup: float = 2.0,
        quantile: float = 0.99,
        block: int = 50,
        names: tuple[str, str] | None = None,
        slo: Spec | Mapping[str, Any] | None = None,
        settle_s: float = 0.0,
        block_warmup: int = 0,
        **kwargs: Any,
    ) -> Comparison:
        """Deprecated: `speedup` with the sides the other way round (the reference first,
        then the candidate; `names` in that order too)."""
        warnings.warn(
            "latency.compare(baseline, candidate, ...) is deprecated: use "
            "latency.speedup(candidate, reference, ...), the same check with the candidate "
            "first, as in accuracy_gate(candidate, reference, ...)",
            DeprecationWarning,
            stacklevel=2,
        )
        flipped = (names[1], names[0]) if names else None
        return speedup_in_blocks(
            self,
            candidate,
            baseline,
            args,
            kwargs,
            min_speedup,
            quantile,
            block,
            flipped,
            slo,
            settle_s,
            block_warmup,
        )

    def _keep(self, result: Result) -> Result:
        """Record a measurement of this test and enforce its verdict."""
        self.results.append(result)
        self._record(result)
        self._enforce(result)
        return result

    def _enforce(self, result: Result, preamble: str = "") -> None:
        decision = result.verdict.decision
        if decision is Decision.PASS:
            return
        message = failure_message(result.to_dict(include_samples=False))
        if preamble:
            message = f"{message}\n\n{preamble}"
        if decision is Decision.FAIL:
            self._fail(message, latency_missed=_only_targets_missed(result.verdict))
        elif self.settings.inconclusive == "fail":
            self._fail(message + "\n\n(--latency-inconclusive=fail; 'warn' or 'pass' relax it)")
        elif self.settings.inconclusive == "warn":
            warnings.warn(PytestLatencyWarning(message), stacklevel=3)

    def _loop_for(self, fn: Callable[..., Any]) -> asyncio.AbstractEventLoop | None:
        """The loop to await `fn` on (None for a sync callable)."""
        if not is_async_callable(fn):
            return None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._event_loop()
        name = getattr(fn, "__qualname__", None) or repr(fn)
        self._fail(
            f"{self.nodeid}: {name} is async, and this test already runs an event loop (an "
            "`async def` test under pytest-asyncio or anyio). The latency fixture awaits async "
            "callables on its own loop, driven from a synchronous test, so that the "
            "measurement controls when each request starts. Write the test as a plain `def` "
            "test: `def test_x(latency): latency(client.get, url)`; create loop-bound clients "
            "inside the callable or in a sync fixture, not in an async fixture"
        )
        raise AssertionError("unreachable: fail raises")

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        """The fixture's own loop: async callables (and their tasks) run on it."""
        if self._loop is not None and self._loop.is_running():
            # An open loop's thread is still stuck in a call that blocks the loop: leave
            # that loop to it and measure on a fresh one.
            self._loop = None
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    def close(self) -> None:
        for cluster in self._clusters.values():
            cluster.close()
        self._clusters.clear()
        if self._loop is not None and not self._loop.is_running():
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
        self._loop = None


def _only_targets_missed(verdict: Verdict) -> bool:
    """A FAIL on latency or throughput targets alone, from a sound measurement: no
    problems (hung calls, a generator that fell behind) and no error rate over budget."""
    if verdict.problems:
        return False
    failed = [t for t in verdict.targets if t.decision is Decision.FAIL]
    return bool(failed) and all(t.metric != "error_rate" for t in failed)


def user_properties(result: Result) -> list[tuple[str, str]]:
    """Flat, JUnit-friendly properties, plus the whole result (without samples) as JSON."""
    prefix = f"latency[{result.name}]" if result.named else "latency"
    props = [(f"{prefix}.decision", result.verdict.decision.value), (f"{prefix}.n", str(result.n))]
    for key, value in result.percentiles_ms.items():
        if key in ("p50", "p99", "max"):
            props.append((f"{prefix}.{key}_ms", f"{value:.6g}"))
    for t in result.verdict.targets:
        props.append((f"{prefix}.{t.metric}.verdict", t.decision.value))
    props.append((f"{prefix}.json", json.dumps(result.to_dict(include_samples=False))))
    return props
