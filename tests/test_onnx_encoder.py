"""The ONNX encoders, float and int8 (bot.knowledge.embedding.onnx), and the query cache
(bot.knowledge.embedding.encoder).

The ONNX folder is the real export of the real model: ``make onnx-model``'s folder when it is
current, otherwise exported here into a temporary folder (~30 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (requirements/actions.lock: make venvs)")

from bot.errors import ConfigError, ModelMissing
from bot.knowledge.embedding.encoder import CachedEncoder, make_encoder
from bot.knowledge.embedding.onnx import (
    BACKEND,
    FLOAT_BACKEND,
    FLOAT_FILE,
    MANIFEST,
    MODEL_FILE,
    OnnxEncoder,
    export,
    stale_reason,
)
from bot.settings import ROOT

SENTENCES = ["身份证丢了怎么补办", "二建改名", "新生儿落户需要什么材料", "公司注销登记流程", "社保卡挂失",
             "驾驶证到期了在哪里换证", "临时价格干预范围事项提价申报"]


@pytest.fixture(scope="session")
def onnx_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = model_dir.with_name(model_dir.name + "-onnx")
    if stale_reason(model_dir, built) is None:
        return built
    return export(model_dir, tmp_path_factory.mktemp("onnx") / f"{model_dir.name}-onnx")


@pytest.fixture(scope="session")
def onnx_encoder(onnx_dir: Path) -> OnnxEncoder:
    return OnnxEncoder(onnx_dir, max_tokens=64, threads=1)


def test_folder_keeps_the_source_name_the_quantised_and_the_float_graph(
    model_dir: Path, onnx_dir: Path, torch_encoder
) -> None:
    manifest = json.loads((onnx_dir / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["name"] == torch_encoder.name  # the index, ranker and calibration stay valid
    assert manifest["backend"] == BACKEND == "onnx-int8"
    assert manifest["quantisation"]["weight_type"] in ("QInt8", "QUInt8")
    assert manifest["source"]["weights_bytes"] == (model_dir / "model.safetensors").stat().st_size
    assert len(manifest["source"]["weights_sha256"]) == 64
    assert manifest["check"]["cosine_min"] >= 0.98
    assert sorted(p.name for p in onnx_dir.glob("*.onnx*")) == sorted([MODEL_FILE, FLOAT_FILE])
    assert FLOAT_FILE in manifest["files"]  # a truncated copy makes the folder stale
    assert (onnx_dir / MODEL_FILE).stat().st_size < (model_dir / "model.safetensors").stat().st_size / 2


def test_export_does_nothing_when_current(model_dir: Path, onnx_dir: Path) -> None:
    assert stale_reason(model_dir, onnx_dir) is None
    before = (onnx_dir / MODEL_FILE).stat().st_mtime_ns
    assert export(model_dir, onnx_dir) == onnx_dir
    assert (onnx_dir / MODEL_FILE).stat().st_mtime_ns == before


def test_stale_when_settings_or_files_change(model_dir: Path, onnx_dir: Path, tmp_path: Path) -> None:
    assert stale_reason(model_dir, tmp_path / "none") == "no ONNX model yet"
    other = {**json.loads((onnx_dir / MANIFEST).read_text(encoding="utf-8"))["quantisation"], "per_channel": False}
    assert stale_reason(model_dir, onnx_dir, other) == "the quantisation settings have changed"
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in onnx_dir.iterdir():
        (copy / path.name).symlink_to(path)
    assert stale_reason(model_dir, copy) is None
    (copy / "tokenizer_config.json").unlink()
    assert "tokenizer_config.json" in (stale_reason(model_dir, copy) or "")


def test_same_attributes_as_the_torch_encoder(onnx_encoder: OnnxEncoder, torch_encoder) -> None:
    theirs = (torch_encoder.name, torch_encoder.dim, getattr(torch_encoder, "adaptation", None))
    assert (onnx_encoder.name, onnx_encoder.dim, onnx_encoder.adaptation) == theirs


def test_vectors_are_normalised_float32(onnx_encoder: OnnxEncoder) -> None:
    vectors = onnx_encoder.encode(SENTENCES, kind="query", batch_size=3)
    assert vectors.shape == (len(SENTENCES), onnx_encoder.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert onnx_encoder.encode([], kind="query").shape == (0, onnx_encoder.dim)


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_close_to_the_torch_model(onnx_encoder: OnnxEncoder, torch_encoder, kind: str) -> None:
    ours = onnx_encoder.encode(SENTENCES, kind=kind)  # type: ignore[arg-type]
    theirs = torch_encoder.encode(SENTENCES, kind=kind)
    cosine = (ours * theirs).sum(axis=1)
    assert cosine.min() >= 0.98, dict(zip(SENTENCES, cosine.round(4), strict=True))


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_the_float_graph_gives_the_torch_model_s_vectors(onnx_dir: Path, torch_encoder, kind: str) -> None:
    """Why it is the default: an index, ranker and calibration made with torch hold unchanged."""
    ours = OnnxEncoder(onnx_dir, threads=1, model_file=FLOAT_FILE)
    assert ours.backend == FLOAT_BACKEND and ours.name == torch_encoder.name
    cosine = (ours.encode(SENTENCES, kind=kind) * torch_encoder.encode(SENTENCES, kind=kind)).sum(axis=1)  # type: ignore[arg-type]
    assert cosine.min() >= 0.9999, dict(zip(SENTENCES, cosine.round(6), strict=True))


def test_order_and_batching_keep_each_text_its_vector(onnx_encoder: OnnxEncoder) -> None:
    batched = onnx_encoder.encode(SENTENCES, kind="query", batch_size=4)
    alone = np.stack([onnx_encoder.encode([s], kind="query")[0] for s in SENTENCES])
    # Activations are quantised per call, so a batch's vectors differ slightly from single ones.
    assert (batched * alone).sum(axis=1).min() >= 0.98
    assert np.array_equal(batched, onnx_encoder.encode(SENTENCES, kind="query", batch_size=4))  # deterministic


def test_prompts_are_applied(onnx_encoder: OnnxEncoder, torch_encoder) -> None:
    query = onnx_encoder.encode(["社保卡挂失"], kind="query")[0]
    passage = onnx_encoder.encode(["社保卡挂失"], kind="passage")[0]
    assert float(query @ passage) < 0.999
    # The prompt is what the torch model puts in front: "query: " by hand, no prompt, equals kind="query".
    by_hand = torch_encoder._model.encode(["query: 社保卡挂失"], normalize_embeddings=True)[0]
    assert float(query @ by_hand) >= 0.98


def test_tokens_cut_at_max_tokens_as_sentence_transformers_does(onnx_dir: Path, torch_encoder) -> None:
    short = OnnxEncoder(onnx_dir, max_tokens=16)
    long_text = "申请人需要提交身份证、户口簿、结婚证、出生医学证明以及近期免冠照片等材料" * 3
    ids = short._ids(["query: " + long_text])[0]
    assert len(ids) == 16
    expected = torch_encoder._model.tokenizer(["query: " + long_text], truncation=True, max_length=16)["input_ids"][0]
    assert ids == list(expected)
    tail_changed = long_text + "，另需提供其他补充材料和说明"
    a, b = short.encode([long_text, tail_changed], kind="query")
    assert float(a @ b) > 0.9999  # everything after token 16 is cut
    full = OnnxEncoder(onnx_dir, max_tokens=64)
    assert len(full._ids(["query: " + long_text])[0]) == 64


def test_missing_folder_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing, match="make onnx-model"):
        OnnxEncoder(tmp_path)


def test_no_torch_at_import_or_encode(onnx_dir: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import bot.knowledge.embedding.encoder, bot.knowledge.embedding.onnx\n"
        "assert 'torch' not in sys.modules, 'imported torch'\n"
        f"e = bot.knowledge.embedding.encoder.make_encoder(Path({str(onnx_dir)!r}), 64, 'onnx', 1)\n"
        "e.encode(['社保卡挂失'], kind='query')\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'imported torch'\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


# --------------------------------------------------------------------------- the cache


class CountingEncoder:
    """A stand-in encoder: a vector made from the text's hash, and how many texts it was asked."""

    name = "counting"
    dim = 8
    adaptation = None

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str], *, kind: str, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.calls.append(list(texts))
        rows = [np.random.default_rng(abs(hash((kind, t))) % 2**32).standard_normal(self.dim) for t in texts]
        out = np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_cache_returns_identical_vectors_and_counts_hits(onnx_encoder: OnnxEncoder) -> None:
    cached = CachedEncoder(onnx_encoder, size=16)
    first = cached.encode(SENTENCES[:3], kind="query")
    again = cached.encode(SENTENCES[:3], kind="query")
    assert np.array_equal(first, again) and (cached.hits, cached.misses) == (3, 3)
    one = cached.encode([SENTENCES[1]], kind="query")
    assert np.array_equal(one[0], first[1]) and cached.hits == 4
    assert (cached.name, cached.dim, cached.adaptation) == (onnx_encoder.name, onnx_encoder.dim,
                                                            onnx_encoder.adaptation)
    one[0] = 0  # the caller's copy, not the remembered vector
    assert np.array_equal(cached.encode([SENTENCES[1]], kind="query")[0], first[1])


def test_cache_is_least_recently_used_and_keyed_by_kind() -> None:
    inner = CountingEncoder()
    cached = CachedEncoder(inner, size=2)
    a = cached.encode(["a", "b", "a"], kind="query")  # a duplicate in one call is encoded once
    assert inner.calls == [["a", "b"]] and np.array_equal(a[0], a[2])
    cached.encode(["a"], kind="query")  # a is now the most recent
    cached.encode(["c"], kind="query")  # evicts b
    assert len(cached) == 2
    inner.calls.clear()
    cached.encode(["a", "b", "c"], kind="query")
    assert inner.calls == [["b"]]
    # Passages pass through uncached, and never come back as the query vector of the same text.
    inner.calls.clear()
    passage = cached.encode(["a"], kind="passage")
    cached.encode(["a"], kind="passage")
    assert inner.calls == [["a"], ["a"]]
    assert not np.array_equal(passage[0], cached.encode(["a"], kind="query")[0])
    assert cached.encode([], kind="query").shape == (0, 8)
    cached.clear()
    assert len(cached) == 0 and cached.hits == cached.misses == 0


def test_cache_is_thread_safe() -> None:
    cached = CachedEncoder(CountingEncoder(), size=50)
    texts = [f"问题{i}" for i in range(200)]
    expected = {t: CountingEncoder().encode([t], kind="query")[0] for t in texts}
    errors: list[str] = []

    def ask(offset: int) -> None:
        for i in range(400):
            text = texts[(offset + i * 7) % len(texts)]
            if not np.array_equal(cached.encode([text], kind="query")[0], expected[text]):
                errors.append(text)

    threads = [threading.Thread(target=ask, args=(n * 13,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(cached) <= 50 and cached.hits + cached.misses == 2400


def test_make_encoder(onnx_dir: Path, onnx_encoder: OnnxEncoder, tmp_path: Path) -> None:
    encoder = make_encoder(onnx_dir, 64, "onnx", 1)
    assert isinstance(encoder, CachedEncoder) and isinstance(encoder.inner, OnnxEncoder)
    direct = onnx_encoder.encode(["社保卡挂失"], kind="query")
    assert np.array_equal(encoder.encode(["社保卡挂失"], kind="query"), direct)
    assert isinstance(make_encoder(onnx_dir, 64, "onnx", 1, cache_size=0), OnnxEncoder)
    # Given the sentence-transformers folder, the onnx back-end uses its export next to it.
    source = tmp_path / "some-model"
    source.mkdir()
    (source / "modules.json").write_text("[]", encoding="utf-8")
    (tmp_path / "some-model-onnx").symlink_to(onnx_dir, target_is_directory=True)
    assert make_encoder(source, 32, "onnx", 1).name == onnx_encoder.name
    lonely = tmp_path / "other-model"
    lonely.mkdir()
    (lonely / "modules.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ModelMissing, match="other-model-onnx"):
        make_encoder(lonely, 64, "onnx", 1)
    with pytest.raises(ConfigError, match="back-end"):
        make_encoder(onnx_dir, 64, "tensorflow", 1)
    assert make_encoder(source, 32, "onnx-fp32", 1, cache_size=0).backend == FLOAT_BACKEND
