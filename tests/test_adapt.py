"""Domain adaptation (bot/knowledge/embedding/adapt.py): the training pairs, the loss mask, the top-layer
stack, and assembling the model from base + part. Fast: no real model, no training, no network."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.errors import ModelMissing
from bot.knowledge.embedding import adapt
from bot.knowledge.embedding.adapt import AdaptConfig, Catalogue, Pair, PairSet, TrainStats, build_pairs
from bot.knowledge.index import record_texts
from bot.knowledge.model import FaqEntry, Guide, Record

# ---------------------------------------------------------------------------------- pairs

BULING, HUANLING, BULING_GD, JIAZHAO, MARRIAGE, PASSPORT = range(6)
FAQ_LOST, FAQ_RENEW, FAQ_TEMP = 6, 7, 8


def _records() -> list[Record]:
    """Guides first, then FAQ entries, as KnowledgeBase.records() orders them."""
    return [
        Guide("g-buling", "居民身份证补领", aliases=("身份证丢了补办",), questions=("身份证丢了怎么办",),
              department="公安机关", topics=("户籍", "证件办理"), conditions=("居民身份证丢失或者被盗的公民",)),
        Guide("g-huanling", "居民身份证换领", aliases=("身份证到期换证",), questions=("身份证过期了怎么换",),
              department="公安机关"),
        # The same item at province level: after the region prefix it is the same title.
        Guide("g-buling-gd", "广东省居民身份证补领", aliases=("补办身份证",)),
        Guide("g-jiazhao", "机动车驾驶证补领", aliases=("驾照丢了",)),
        Guide("g-marriage", "内地居民结婚登记", aliases=("扯证",)),
        Guide("g-passport", "普通护照签发", aliases=("办护照",)),
        FaqEntry("faq-lost", "身份证丢了能先办临时身份证吗？", "可以，补领期间可申领临时居民身份证。",
                 alternatives=("丢了身份证能办临时的吗", "补证期间有临时身份证吗"), keywords=("临时身份证",),
                 related=("g-buling",)),
        FaqEntry("faq-renew", "身份证到期前多久可以换领？", "有效期满前三个月内可以申请换领。",
                 alternatives=("身份证提前多久换",), related=("g-huanling",)),
        # About the same item as faq-lost, but a different question: a fair negative for it.
        FaqEntry("faq-temp", "临时身份证要多久能拿到？", "符合条件的，当场核发临时居民身份证。",
                 alternatives=("临时身份证几天能拿",), related=("g-buling",)),
    ]


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return _records()


@pytest.fixture(scope="module")
def catalogue(records: list[Record]) -> Catalogue:
    return Catalogue(records)


@pytest.fixture(scope="module")
def pairs(records: list[Record], catalogue: Catalogue) -> PairSet:
    return build_pairs(records, AdaptConfig(), catalogue)


def test_region_prefix_is_stripped_but_never_to_nothing() -> None:
    assert adapt.strip_region("广东省居民身份证补领") == "居民身份证补领"
    assert adapt.strip_region("广州市教师资格认定") == "教师资格认定"
    assert adapt.strip_region("中华人民共和国护照签发") == "护照签发"
    assert adapt.strip_region("广州市") == "广州市"  # nothing would be left
    assert adapt.strip_region("居民身份证补领") == "居民身份证补领"
    assert adapt.title_core("广东省居民身份证补领") == adapt.title_core("居民身份证补领")


def test_split_title_keeps_top_level_brackets() -> None:
    main, parts = adapt.split_title("职业资格证书核发（人社类）(二级建造师（延续注册）)")
    assert main == "职业资格证书核发"
    assert parts == ["人社类", "二级建造师"]


def test_positives_are_the_texts_the_index_encodes(records: list[Record], pairs: PairSet) -> None:
    assert pairs.pairs
    for pair in pairs.pairs:
        indexed = {(kind, text) for kind, _, text in record_texts(records[pair.record])}
        assert (pair.positive_kind, pair.positive) in indexed, pair
        if pair.negative is not None:
            negatives = {(kind, text) for kind, _, text in record_texts(records[pair.negative_record])}
            assert (pair.positive_kind, pair.negative) in negatives, pair
    faq_passage = next(p for p in pairs.pairs if p.kind == "faq_answer" and p.record == FAQ_LOST)
    assert faq_passage.positive_kind == "passage"
    assert faq_passage.positive.startswith("身份证丢了能先办临时身份证吗?。可以")


def test_hard_negative_of_buling_is_its_sibling_huanling(pairs: PairSet) -> None:
    negatives = {p.negative_record for p in pairs.pairs if p.record == BULING and p.negative is not None}
    assert HUANLING in negatives
    alias = next(p for p in pairs.pairs if p.record == BULING and p.kind == "alias")
    assert alias.anchor == "身份证丢了补办"
    assert alias.positive == "居民身份证补领"
    assert alias.negative_record in (HUANLING, JIAZHAO)


def test_equivalent_records_are_never_negatives(pairs: PairSet) -> None:
    for pair in pairs.pairs:
        assert pair.record in pair.equivalent
        assert pair.negative_record not in pair.equivalent
        if pair.record in (BULING, BULING_GD):
            # The province twin and the FAQ entry about the item are equally right, never pushed away.
            assert {BULING, BULING_GD} <= pair.equivalent, pair
            assert pair.negative_record not in (BULING, BULING_GD, FAQ_LOST), pair
        if pair.record == FAQ_LOST:
            assert BULING in pair.equivalent


def test_an_alias_two_items_share_pushes_neither_away() -> None:
    guides = [Guide("a", "居民身份证补领", aliases=("办身份证",)), Guide("b", "居民身份证换领", aliases=("办身份证",)),
              Guide("c", "普通护照签发")]
    shared = [p for p in build_pairs(guides, AdaptConfig(kinds=("alias",))).pairs if p.anchor == "办身份证"]
    assert [p.record for p in sorted(shared, key=lambda p: p.record)] == [0, 1]
    for pair in shared:
        assert pair.equivalent == {0, 1}
        assert pair.negative is None  # the only sibling is equally right


def test_negatives_come_from_records_of_the_same_kind(records: list[Record], pairs: PairSet) -> None:
    with_negative = [p for p in pairs.pairs if p.negative is not None]
    assert any(isinstance(records[p.record], FaqEntry) for p in with_negative)
    for pair in with_negative:
        assert type(records[pair.record]) is type(records[pair.negative_record]), pair
    assert FAQ_TEMP in {p.negative_record for p in with_negative if p.record == FAQ_LOST}


def test_catalogue_twins_siblings_and_links(catalogue: Catalogue) -> None:
    assert BULING_GD in catalogue.twins[BULING]
    assert BULING in catalogue.twins[BULING_GD]
    assert HUANLING in catalogue.siblings[BULING]
    assert BULING_GD not in catalogue.siblings[BULING]
    assert catalogue.linked[FAQ_LOST] == {BULING}
    assert FAQ_LOST in catalogue.linked[BULING]
    # A short anchor contained in several titles is right for all of them.
    assert {BULING, HUANLING, BULING_GD} <= catalogue.equivalent(JIAZHAO, "身份证")


def test_faq_pairs_map_alternatives_to_the_question(pairs: PairSet) -> None:
    alternatives = {p.anchor: p.positive for p in pairs.pairs if p.kind == "faq_alternative"}
    assert alternatives["丢了身份证能办临时的吗"] == "身份证丢了能先办临时身份证吗?"
    assert alternatives["身份证提前多久换"] == "身份证到期前多久可以换领?"
    assert pairs.faqs == 3 and pairs.guides == 6


def test_generic_anchor_is_dropped() -> None:
    many = [Guide(f"g-{i}", f"机动车驾驶证{verb}") for i, verb in enumerate(("补领", "换证", "注销", "延期", "审验"))]
    many.append(Guide("g-x", "驾驶人信息变更", aliases=("驾驶证",)))
    pair_set = build_pairs(many, AdaptConfig(kinds=("alias",)))
    assert pair_set.dropped_generic == 1
    assert all(p.anchor != "驾驶证" for p in pair_set.pairs)


def test_pairs_are_deterministic(records: list[Record]) -> None:
    first = build_pairs(records, AdaptConfig(seed=3))
    again = build_pairs(records, AdaptConfig(seed=3))
    assert first.fingerprint() == again.fingerprint()
    assert first.counts == again.counts


# ---------------------------------------------------------------------------------- the loss


class _FakeCache:
    """One 'token' per text: its vector; enough for embed() and _loss()."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        import torch

        self.vectors = {k: torch.tensor(v, dtype=torch.float32) for k, v in vectors.items()}

    def length(self, text: str) -> int:
        return 1

    def batch(self, texts: list[str]):
        import torch

        states = torch.stack([self.vectors[t] for t in texts])[:, None, :]
        return states, torch.ones(len(texts), 1, dtype=torch.long)


def _fake_stack(states, mask):
    from torch.nn import functional as F

    return F.normalize(states[:, 0, :], dim=-1)


def test_loss_masks_equally_right_columns() -> None:
    q = adapt.prompted
    cache: Any = _FakeCache({
        q("query", "a"): [1.0, 0.0], q("query", "pa"): [1.0, 0.3],
        q("query", "b"): [1.0, 0.0], q("query", "pb"): [1.0, 0.0],
    })
    # Each anchor is nearer the other pair's positive than its own.
    twins = [Pair("alias", "a", "pa", "query", 0, equivalent=frozenset({0, 1})),
             Pair("alias", "b", "pb", "query", 1, equivalent=frozenset({0, 1}))]
    masked = float(adapt._loss(_fake_stack, cache, twins, scale=20.0))
    assert masked == pytest.approx(0.0, abs=1e-6)
    strangers = [Pair("alias", "a", "pa", "query", 0, equivalent=frozenset({0})),
                 Pair("alias", "b", "pb", "query", 1, equivalent=frozenset({1}))]
    assert float(adapt._loss(_fake_stack, cache, strangers, scale=20.0)) > 0.1


# ---------------------------------------------------------------------------------- the stack


def test_top_stack_matches_transformers_bert_layers() -> None:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=16, hidden_act="gelu")
    model = BertModel(config, add_pooling_layer=False).eval()
    ids = torch.randint(5, 40, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 4:] = 0
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    tensors = {k: v.numpy() for k, v in model.state_dict().items()}
    stack = adapt._make_top_stack(config.to_dict(), tensors, [1, 2]).eval()
    with torch.no_grad():
        got = stack(out.hidden_states[1], mask)
    m = mask[:, :, None].float()
    pooled = (out.last_hidden_state * m).sum(1) / m.sum(1)
    expected = torch.nn.functional.normalize(pooled, dim=-1)
    assert torch.allclose(got, expected, atol=1e-5)
    saved = adapt.stack_tensors(stack, [1, 2])
    assert set(saved) == {k for k in tensors if k.startswith(("encoder.layer.1.", "encoder.layer.2."))}
    name = "encoder.layer.2.output.dense.weight"
    assert saved[name].dtype == np.float16
    np.testing.assert_allclose(saved[name], tensors[name], atol=1e-3)


# ---------------------------------------------------------------------------------- part and model

LAYER = "encoder.layer.1.attention.self.query.weight"


def _tiny_base(root: Path, seed: int = 0, source: str = "abc") -> Path:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    base = root / "base"
    (base / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (base / "config.json").write_text(json.dumps({"num_hidden_layers": 2}), encoding="utf-8")
    (base / "tokenizer.json").write_text("{}", encoding="utf-8")
    (base / "1_Pooling" / "config.json").write_text("{}", encoding="utf-8")
    save_file({"embeddings.word_embeddings.weight": rng.standard_normal((6, 4)).astype(np.float32),
               "encoder.layer.0.attention.self.query.weight": rng.standard_normal((4, 4)).astype(np.float32),
               LAYER: rng.standard_normal((4, 4)).astype(np.float32)}, str(base / "model.safetensors"))
    (base / "manifest.json").write_text(json.dumps({"name": "tiny-base", "dimension": 4, "source": {"sha256": source}}),
                                        encoding="utf-8")
    return base


def _save_tiny_part(part: Path, base: Path, value: float) -> dict:
    tensors = {LAYER: np.full((4, 4), value, dtype=np.float16)}
    return adapt.save_part(part, tensors, base_dir=base, config=AdaptConfig(), pair_set=PairSet([], {}, 0, 0),
                           stats=TrainStats(), knowledge_fingerprint="k")


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rebuild_is_idempotent_deterministic_and_follows_the_part(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    base = _tiny_base(tmp_path)
    part, out = tmp_path / "part", tmp_path / "models" / "adapted"
    part_manifest = _save_tiny_part(part, base, 0.5)
    assert adapt.stale_reason(out, part, base) == "no adapted model yet"
    adapt.rebuild(base, part, out)
    weights = load_file(str(out / "model.safetensors"))
    np.testing.assert_array_equal(weights[LAYER], np.full((4, 4), 0.5, dtype=np.float32))
    original = load_file(str(base / "model.safetensors"))
    np.testing.assert_array_equal(weights["embeddings.word_embeddings.weight"],
                                  original["embeddings.word_embeddings.weight"])
    assert (out / "tokenizer.json").is_file() and (out / "1_Pooling" / "config.json").is_file()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["name"] != "tiny-base"
    assert manifest["adaptation"]["sha256"] == part_manifest["sha256"]
    assert manifest["adaptation"]["layers"] == [1]
    assert adapt.stale_reason(out, part, base) is None

    first = _digest(out)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    adapt.rebuild(base, part, out)  # current: nothing written
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    adapt.rebuild(base, part, out, force=True)  # rewritten: the same bytes
    assert _digest(out) == first
    assert not [p for p in out.parent.iterdir() if p.name != "adapted"]  # no scratch folders left

    _save_tiny_part(part, base, 0.25)
    assert adapt.stale_reason(out, part, base) == "the adaptation has changed"
    adapt.rebuild(base, part, out)
    np.testing.assert_array_equal(load_file(str(out / "model.safetensors"))[LAYER], np.full((4, 4), 0.25))
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["name"] != manifest["name"]


def test_rebuild_refuses_another_base_and_a_tampered_part(tmp_path: Path) -> None:
    base = _tiny_base(tmp_path)
    part, out = tmp_path / "part", tmp_path / "adapted"
    _save_tiny_part(part, base, 0.5)
    adapt.rebuild(base, part, out)
    _tiny_base(tmp_path, seed=1, source="def")  # a different base model in the same place
    assert "base model" in (adapt.stale_reason(out, part, base) or "")
    with pytest.raises(ModelMissing, match="not the base model"):
        adapt.rebuild(base, part, out)
    (part / "layers.safetensors").write_bytes(b"not the trained layers")
    with pytest.raises(ModelMissing, match="not the file"):
        adapt.read_part(part)


def test_command_line_rebuild_says_when_current(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = _tiny_base(tmp_path)
    part, out = tmp_path / "part", tmp_path / "adapted"
    _save_tiny_part(part, base, 0.5)
    args = ["--base", str(base), "--part", str(part), "--out", str(out), "rebuild"]
    assert adapt.main(args) == 0
    assert "wrote multilingual-e5-small-adapted" in capsys.readouterr().out
    assert adapt.main(args) == 0
    assert "already current" in capsys.readouterr().out
    assert adapt.main(["--base", str(tmp_path / "nothing"), "--part", str(tmp_path / "no-part"),
                       "--out", str(out), "rebuild"]) == 1
