"""Turning text into vectors.

:class:`Encoder` is the one interface retrieval depends on. The real one wraps a
sentence-transformers model folder prepared offline (``bot.knowledge.embedding.convert``); it is
loaded when constructed, so callers decide when the cost is paid (the action server pays
it at start-up, never on a citizen's first question). :class:`bot.knowledge.embedding.onnx.OnnxEncoder`
runs the same model exported to ONNX and quantised to int8 (``make onnx-model``), several
times faster per question and without torch. :func:`make_encoder` picks one of the two and
wraps it in :class:`CachedEncoder`, which answers a question asked before from memory.
:func:`make_query_encoder` is what the assistant encodes live questions with: by default the
six-layer student distilled from the full model into its vector space
(``bot.knowledge.embedding.distil``), half the cost per question; the index is always built
with the full model.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from bot.errors import ConfigError, ModelMissing

Kind = Literal["query", "passage"]


class Encoder(Protocol):
    """Anything that maps texts to L2-normalised float32 vectors of a fixed dimension."""

    name: str
    dim: int

    def encode(
        self, texts: Sequence[str], *, kind: Kind, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray: ...


class SentenceTransformerEncoder:
    """A sentence-transformers model folder, used strictly offline.

    e5 models expect "query: " or "passage: " before each text; the folder's
    ``config_sentence_transformers.json`` carries those prompts and ``kind`` picks one.
    """

    def __init__(self, model_dir: Path, max_tokens: int = 64) -> None:
        if not (model_dir / "modules.json").is_file():
            raise ModelMissing(f"{model_dir}: no embedding model here; run `make model` to prepare it offline")
        # Never reach for a model hub: the machines have no route to one, and a silent
        # download attempt would hang start-up for minutes.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(model_dir), device="cpu")
        # Attention cost grows with the square of length; guide names, aliases and questions
        # are far below 64 tokens; summaries keep their name, department and first materials.
        self._model.max_seq_length = max_tokens
        manifest = model_dir / "manifest.json"
        meta = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else {}
        self.name = str(meta.get("model") or meta.get("name") or model_dir.name)
        #: The domain adaptation that made this model (bot.knowledge.embedding.adapt), recorded in the index manifest.
        self.adaptation: dict[str, object] | None = meta.get("adaptation")
        model = self._model
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dimension() or 0)
        self._prompts = dict(getattr(self._model, "prompts", {}) or {})

    def encode(
        self, texts: Sequence[str], *, kind: Kind, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            prompt_name=kind if kind in self._prompts else None,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class CachedEncoder:
    """Another encoder with a least-recently-used memory of vectors, keyed by (kind, text).

    Citizens ask the same short questions again and again (``社保卡挂失``); a remembered vector
    costs a dictionary look-up instead of a model run. Only the kinds in ``kinds`` are
    remembered (queries by default): passages are encoded once, in bulk, when the index is
    built, and would only push questions out. Thread-safe (the action server answers from
    several threads); the model runs outside the lock, so two threads missing on the same new
    text may both encode it, which is harmless. Each call returns a new array: callers may
    change it without touching what is remembered.
    """

    def __init__(self, inner: Encoder, size: int = 2048, kinds: Sequence[Kind] = ("query",)) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.adaptation: dict[str, object] | None = getattr(inner, "adaptation", None)
        self.size = max(0, int(size))
        self.kinds = frozenset(kinds)
        self.hits = 0
        self.misses = 0
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()
            self.hits = self.misses = 0

    def encode(
        self, texts: Sequence[str], *, kind: Kind, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        if kind not in self.kinds or self.size == 0 or not texts:
            return self.inner.encode(texts, kind=kind, batch_size=batch_size, progress=progress)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for row, text in enumerate(texts):
                vector = self._vectors.get((kind, text))
                if vector is None:
                    missing.setdefault(text, []).append(row)
                else:
                    self._vectors.move_to_end((kind, text))
                    out[row] = vector
            self.hits += len(texts) - sum(len(rows) for rows in missing.values())
            self.misses += sum(len(rows) for rows in missing.values())
        if not missing:
            return out
        new = list(missing)
        vectors = np.asarray(self.inner.encode(new, kind=kind, batch_size=batch_size, progress=progress),
                             dtype=np.float32)
        with self._lock:
            for text, vector in zip(new, vectors, strict=True):
                out[missing[text]] = vector
                kept = vector.copy()
                kept.flags.writeable = False
                self._vectors[(kind, text)] = kept
                self._vectors.move_to_end((kind, text))
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return out


#: The encoder back-ends :func:`make_encoder` knows.
BACKENDS = ("onnx-fp32", "onnx", "torch")


def make_encoder(
    model_dir: Path, max_tokens: int = 64, backend: str = "torch", threads: int = 1, *, cache_size: int = 2048
) -> Encoder:
    """The encoder for ``model_dir`` on ``backend``, behind a :class:`CachedEncoder` (``cache_size`` 0: none).

    ``torch``: :class:`SentenceTransformerEncoder` over the sentence-transformers folder ``model_dir``
    (torch's own thread count is left as the process set it: ``OMP_NUM_THREADS``).
    ``onnx-fp32`` / ``onnx``: :class:`bot.knowledge.embedding.onnx.OnnxEncoder` over the float / int8 graph of its
    ONNX export; ``model_dir`` may be the
    export itself or the source folder, whose export is then looked for next to it as
    ``<name>-onnx`` (``make onnx-model``). ``threads`` is ONNX Runtime's intra-op thread count.
    """
    model_dir = Path(model_dir)
    inner: Encoder
    if backend == "torch":
        inner = SentenceTransformerEncoder(model_dir, max_tokens)
    elif backend in ("onnx", "onnx-fp32"):
        from bot.knowledge.embedding.onnx import FLOAT_FILE, MODEL_FILE, OnnxEncoder

        exported = (model_dir / MODEL_FILE).is_file() or not (model_dir / "modules.json").is_file()
        onnx_dir = model_dir if exported else model_dir.with_name(model_dir.name + "-onnx")
        graph = FLOAT_FILE if backend == "onnx-fp32" else MODEL_FILE
        inner = OnnxEncoder(onnx_dir, max_tokens, threads, model_file=graph)
    else:
        raise ConfigError(f"embedding back-end {backend!r}: expected one of {', '.join(BACKENDS)}")
    return CachedEncoder(inner, cache_size) if cache_size > 0 else inner


#: What may encode a citizen's question (GUIDE_QUERY_ENCODER).
QUERY_ENCODERS = ("student", "full")


def make_query_encoder(
    model_dir: Path, query_model_dir: Path, choice: str = "student", max_tokens: int = 64, backend: str = "onnx-fp32",
    threads: int = 1, *, cache_size: int = 2048,
) -> Encoder:
    """The encoder for live questions: the distilled six-layer student, or the full model.

    ``student``: the float ONNX export of ``query_model_dir`` (``<folder>-onnx``, made by ``make model``
    from ``bot.knowledge.embedding.distil``'s part); its name is the full model's, the vector space the
    index was built in. ``full``: :func:`make_encoder` on ``model_dir`` and ``backend``, as the index is built.
    """
    if choice == "full":
        return make_encoder(model_dir, max_tokens, backend, threads, cache_size=cache_size)
    if choice != "student":
        raise ConfigError(f"query encoder {choice!r}: expected one of {', '.join(QUERY_ENCODERS)}")
    from bot.knowledge.embedding.onnx import FLOAT_FILE, OnnxEncoder

    query_model_dir = Path(query_model_dir)
    onnx_dir = query_model_dir.with_name(query_model_dir.name + "-onnx")
    inner = OnnxEncoder(onnx_dir, max_tokens, threads, model_file=FLOAT_FILE)
    return CachedEncoder(inner, cache_size) if cache_size > 0 else inner
