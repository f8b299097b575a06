"""The ``accuracy_gate`` fixture object: did an optimisation cost accuracy?

    @pytest.mark.accuracy(max_drop=0.01)
    def test_int8_keeps_accuracy(accuracy_gate, int8, fp32, test_split):
        accuracy_gate(int8.predict_labels, fp32.predict_labels, test_split.texts,
                      test_split.labels)

`candidate` and `reference` map a list of inputs to a list of predicted labels; both see the
same inputs, so the drop is judged on paired examples (see `core.accuracy`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.accuracy import evaluate_accuracy
from ..core.spec import AccuracySpec
from ..core.verdict import Decision, Verdict
from ..report.table import failure_message


@dataclass(frozen=True)
class AccuracyResult:
    name: str
    spec: AccuracySpec
    verdict: Verdict
    nodeid: str = ""

    @property
    def rows(self) -> dict[str, Any]:
        return {t.metric: t for t in self.verdict.targets}

    @property
    def accuracy(self) -> float:
        return float(self.rows["accuracy"].observed or 0.0)

    @property
    def reference_accuracy(self) -> float:
        return float(self.rows["reference_accuracy"].observed or 0.0)

    @property
    def drop(self) -> float:
        return float(self.rows["drop"].observed or 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "accuracy",
            "nodeid": self.nodeid,
            "name": self.name,
            "decision": self.verdict.decision.value,
            "summary": self.verdict.summary(),
            "spec": {
                "max_drop": self.spec.max_drop,
                "min_agreement": self.spec.min_agreement,
                "confidence": self.spec.confidence,
            },
            "confidence": self.verdict.confidence,
            "alpha": self.verdict.alpha,
            "n": self.verdict.targets[0].n,
            "targets": [
                {
                    "metric": t.metric,
                    "target": t.target,
                    "observed": t.observed,
                    "lower": t.lower,
                    "upper": t.upper,
                    "n": t.n,
                    "decision": t.decision.value,
                    "unit": t.unit,
                    "margin": t.margin,
                    "note": t.note,
                }
                for t in self.verdict.targets
            ],
        }


class AccuracyGate:
    def __init__(
        self,
        *,
        marker_spec: AccuracySpec | None,
        nodeid: str,
        inconclusive: str,
        record: Callable[[AccuracyResult], None],
        fail: Callable[[str], Any],
        warn: Callable[[str], None],
    ) -> None:
        self.marker_spec, self.nodeid, self.inconclusive = marker_spec, nodeid, inconclusive
        self._record, self._fail, self._warn = record, fail, warn
        self.results: list[AccuracyResult] = []

    def __call__(
        self,
        candidate: Callable[[Sequence[Any]], Sequence[Any]],
        reference: Callable[[Sequence[Any]], Sequence[Any]],
        inputs: Sequence[Any],
        labels: Sequence[Any],
        *,
        spec: AccuracySpec | Mapping[str, Any] | None = None,
        name: str = "accuracy",
    ) -> AccuracyResult:
        if isinstance(spec, Mapping):
            spec = AccuracySpec.from_kwargs(**spec)
        spec = spec or self.marker_spec or AccuracySpec()
        inputs = list(inputs)
        cand, ref = list(candidate(inputs)), list(reference(inputs))
        for who, got in (("candidate", cand), ("reference", ref)):
            if len(got) != len(inputs):
                raise ValueError(
                    f"{who} returned {len(got)} labels for {len(inputs)} inputs; "
                    "it must return one label per input"
                )
        verdict = evaluate_accuracy(
            cand,
            ref,
            list(labels),
            max_drop=spec.max_drop,
            min_agreement=spec.min_agreement,
            confidence=spec.confidence,
        )
        result = AccuracyResult(name, spec, verdict, self.nodeid)
        self.results.append(result)
        self._record(result)
        if verdict.decision is not Decision.PASS:
            message = failure_message(result.to_dict())
            if verdict.decision is Decision.FAIL or self.inconclusive == "fail":
                self._fail(message)
            elif self.inconclusive == "warn":
                self._warn(message)
        return result
