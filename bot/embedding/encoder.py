"""Turning text into vectors.

:class:`Encoder` is the one interface retrieval depends on. The real one wraps a
sentence-transformers model folder prepared offline (``bot.embedding.convert``); it is
loaded when constructed, so callers decide when the cost is paid (the action server pays
it at start-up, never on a citizen's first question).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from bot.errors import ModelMissing

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
