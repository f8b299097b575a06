"""Inference backends behind one small protocol: ``predict(texts) -> Prediction``.

Every backend tokenises with the same Rust ``tokenizers`` fast tokenizer, truncating to
``max_length`` and padding dynamically to the longest text in the batch, so a comparison between
backends measures the model runtime, not the tokenizer. Heavy libraries (torch, onnxruntime,
tokenizers) are imported when a predictor is built, never at module import.

Example::

    from reference_system import build
    artifacts = build("quick")
    with artifacts.predictor("ort-int8-dynamic") as p:
        p.predict(["a quietly devastating film"]).labels   # array([1])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "BackendUnavailable",
    "Encoder",
    "OrtPredictor",
    "Prediction",
    "Predictor",
    "PredictorBase",
    "TorchPredictor",
    "evaluate",
]

ORT_INSTALL_COMMAND = "pip install onnxruntime tokenizers"
TORCH_INSTALL_COMMAND = "pip install torch==2.13.0 transformers tokenizers"


class BackendUnavailable(RuntimeError):
    """A backend cannot run here; the message names the reason and the install command."""

    def __init__(self, backend: str, reason: str, install: str) -> None:
        self.backend = backend
        self.reason = reason
        self.install = install
        super().__init__(f"{backend} is unavailable: {reason}. To enable it: {install}")


@dataclass(frozen=True)
class Prediction:
    """Per-text labels (0 negative, 1 positive) and the raw logits, shape ``(n, 2)``."""

    labels: npt.NDArray[np.int64]
    logits: npt.NDArray[np.float32]


@runtime_checkable
class Predictor(Protocol):
    """What a sentiment service needs from a model runtime."""

    @property
    def name(self) -> str: ...

    def predict(self, texts: Sequence[str]) -> Prediction: ...

    def close(self) -> None: ...


class Encoder:
    """The Rust fast tokenizer (``tokenizer.json``) with truncation and dynamic padding."""

    def __init__(self, tokenizer_dir: Path, *, max_length: int = 128) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise BackendUnavailable("tokenizer", f"{exc}", ORT_INSTALL_COMMAND) from exc
        self.max_length = max_length
        self._tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
        self._tok.enable_truncation(max_length=max_length)
        pad_id = self._tok.token_to_id("[PAD]")
        self._tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")

    def __call__(self, texts: Sequence[str]) -> dict[str, npt.NDArray[np.int64]]:
        """``input_ids``, ``attention_mask`` and ``token_type_ids``, int64, ``(n, longest)``."""
        encodings = self._tok.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }


def _prediction(logits: npt.NDArray[Any]) -> Prediction:
    logits32 = np.ascontiguousarray(logits, dtype=np.float32)
    return Prediction(labels=logits32.argmax(axis=-1).astype(np.int64), logits=logits32)


class PredictorBase:
    """Context-manager plumbing shared by the concrete predictors."""

    name: str

    def predict(self, texts: Sequence[str]) -> Prediction:
        raise NotImplementedError

    def close(self) -> None:
        """Release the model; further ``predict`` calls are an error."""

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
        return f"<{type(self).__name__} {self.name}>"


class TorchPredictor(PredictorBase):
    """FP32 PyTorch eager: the typical first FastAPI + PyTorch service, done properly.

    Choices, so the baseline is not a straw man:

    - ``torch.inference_mode()`` (no autograd bookkeeping) and ``model.eval()`` (no dropout);
    - ``torch.set_num_threads(threads)``, default 2 = the cores here; note this is
      process-wide, as it is in a real service;
    - the Rust fast tokenizer with dynamic padding to the longest text in the batch;
    - transformers' default attention for inference (``sdpa``: fused scaled-dot-product
      attention), not the ``eager`` path the ONNX export needs.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        name: str = "torch-fp32",
        threads: int = 2,
        max_length: int = 128,
        attn_implementation: str = "sdpa",
    ) -> None:
        try:
            import torch

            from reference_system.training import load_classifier
        except ImportError as exc:
            raise BackendUnavailable(name, f"{exc}", TORCH_INSTALL_COMMAND) from exc
        self.name = name
        self.threads = threads
        torch.set_num_threads(threads)
        self._torch = torch
        model, _ = load_classifier(model_dir, attn_implementation=attn_implementation)
        self._model: Any = model.eval()
        self._encode = Encoder(model_dir, max_length=max_length)

    def predict(self, texts: Sequence[str]) -> Prediction:
        if self._model is None:
            raise RuntimeError(f"{self!r} is closed")
        torch = self._torch
        feeds = {k: torch.from_numpy(v) for k, v in self._encode(texts).items()}
        with torch.inference_mode():
            logits = self._model(**feeds).logits
        return _prediction(logits.numpy())

    def close(self) -> None:
        self._model = None


_GRAPH_LEVELS = ("disable", "basic", "extended", "all")


class OrtPredictor(PredictorBase):
    """ONNX Runtime session (FP32, fused, INT8 dynamic or static: whatever ``model_path`` is).

    ``intra_op_threads`` defaults to 2 (the cores here); ``inter_op_threads`` to 1 (the graph is
    sequential); ``graph_optimization_level`` is one of ``disable|basic|extended|all``.
    ``allow_spinning=False`` stops idle intra-op threads from spinning, which matters when
    another runtime shares the cores (spinning slowed PyTorch in an interleaved run;
    docs/serving.md, "Figures that used to sit in code comments").
    The active providers are read back from the session, never assumed: if the first requested
    provider is not active, construction fails with :class:`BackendUnavailable`.
    """

    def __init__(
        self,
        model_path: Path,
        tokenizer_dir: Path,
        *,
        name: str = "ort",
        intra_op_threads: int = 2,
        inter_op_threads: int = 1,
        graph_optimization_level: str = "all",
        allow_spinning: bool = True,
        max_length: int = 128,
        providers: Sequence[str | tuple[str, Mapping[str, Any]]] = ("CPUExecutionProvider",),
        install_hint: str = ORT_INSTALL_COMMAND,
    ) -> None:
        self.name = name
        try:
            import onnxruntime as ort  # type: ignore[import-untyped]
        except ImportError as exc:
            raise BackendUnavailable(name, f"{exc}", install_hint) from exc
        if graph_optimization_level not in _GRAPH_LEVELS:
            raise ValueError(
                f"graph_optimization_level {graph_optimization_level!r} is not "
                f"valid. Valid: {', '.join(_GRAPH_LEVELS)}"
            )
        level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[graph_optimization_level]
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = level
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if allow_spinning else "0"
        )
        wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
        available = ort.get_available_providers()
        if wanted not in available:
            raise BackendUnavailable(
                name,
                f"onnxruntime {ort.__version__} has no {wanted} (available: "
                f"{', '.join(available)})",
                install_hint,
            )
        self._session: Any = ort.InferenceSession(
            str(model_path), sess_options=options, providers=list(providers)
        )
        self.providers: tuple[str, ...] = tuple(self._session.get_providers())
        if self.providers[0] != wanted:
            self._session = None
            raise BackendUnavailable(
                name,
                f"onnxruntime fell back to {', '.join(self.providers)} instead of {wanted}",
                install_hint,
            )
        self.model_path = model_path
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        self.settings = {
            "intra_op_threads": intra_op_threads,
            "inter_op_threads": inter_op_threads,
            "graph_optimization_level": graph_optimization_level,
            "allow_spinning": allow_spinning,
            "max_length": max_length,
        }
        self._encode = Encoder(tokenizer_dir, max_length=max_length)

    def predict(self, texts: Sequence[str]) -> Prediction:
        if self._session is None:
            raise RuntimeError(f"{self!r} is closed")
        enc = self._encode(texts)
        feeds = {k: enc[k] for k in self.input_names}
        (logits,) = self._session.run(["logits"], feeds)
        return _prediction(logits)

    def close(self) -> None:
        self._session = None


def evaluate(
    predictor: Predictor, texts: Sequence[str], labels: Sequence[int], *, batch_size: int = 64
) -> tuple[float, Prediction]:
    """Accuracy over a labelled set, batching texts of similar length (cheap padding).

    Returns the accuracy and the predictions in the original order.
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    logits = np.zeros((len(texts), 2), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        logits[idx] = predictor.predict([texts[i] for i in idx]).logits
    pred = _prediction(logits)
    accuracy = float(np.mean(pred.labels == np.asarray(labels)))
    return accuracy, pred
