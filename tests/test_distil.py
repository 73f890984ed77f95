"""The query student (bot/knowledge/embedding/distil.py): its training texts, assembling it from the
teacher and the part, and that the committed student answers in the teacher's vector space."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from bot.errors import ModelMissing
from bot.knowledge.embedding import distil
from bot.knowledge.embedding.distil import DistilConfig, DistilStats
from bot.knowledge.model import FaqEntry, Guide, Material, Record
from bot.settings import load_settings


def _records() -> list[Record]:
    return [
        Guide("g-buling", "居民身份证补领", aliases=("身份证丢了补办",), questions=("身份证丢了怎么办",),
              department="公安机关", conditions=("居民身份证丢失或者被盗的公民；已满十六周岁",),
              materials=(Material("户口簿原件", note="（一）户主本人签字的户口簿首页复印件；"),
                         Material("近期免冠照片"))),
        Guide("g-huanling", "居民身份证换领", aliases=("身份证到期换证",), department="公安机关"),
        FaqEntry("faq-lost", "身份证丢了能先办临时身份证吗？", "可以。补领期间可以申领临时居民身份证，当场核发。",
                 alternatives=("丢了身份证能办临时的吗",), related=("g-buling",)),
    ]


def test_training_texts_are_the_question_side_deterministic_and_framed(tmp_path: Path) -> None:
    nlu = tmp_path / "nlu"
    nlu.mkdir()
    (nlu / "a.yml").write_text('version: "3.1"\nnlu:\n- intent: ask_item\n  examples: |\n'
                               "    - [身份证](item)丢了怎么办\n    - 我想办[护照]{\"entity\": \"item\"}\n",
                               encoding="utf-8")
    config = DistilConfig(framed_keywords=50, framed_situations=50)
    texts = distil.training_texts(_records(), nlu, config)
    assert texts == distil.training_texts(_records(), nlu, config)
    assert "身份证丢了怎么办" in texts and "我想办护照" in texts  # NLU text, annotations removed
    assert "丢了身份证能办临时的吗" in texts  # an FAQ alternative
    assert "居民身份证丢失或者被盗的公民" in texts  # a condition's sentence, split at "；"
    assert "户主本人签字的户口簿首页复印件" in texts  # a material's note, its numbering removed
    assert not any(t.startswith("（一）") or "Material(" in t for t in texts)
    assert any(t.endswith(("怎么办", "要带什么材料", "在哪里办")) and t not in ("身份证丢了怎么办",) for t in texts)
    answer = "可以。补领期间可以申领临时居民身份证，当场核发。"
    assert answer not in texts and "补领期间可以申领临时居民身份证，当场核发" in texts  # answers by sentence


def test_record_sentences_split_and_bound() -> None:
    found = distil.record_sentences(_records())
    assert "居民身份证丢失或者被盗的公民" in found
    assert all(8 <= len(s) <= 48 for s in found)
    assert "已满十六周岁" not in found  # 6 characters


# ---------------------------------------------------------------------------------- part and student

LAYER = "encoder.layer.1.attention.self.query.weight"


def _tiny_teacher(root: Path, seed: int = 0) -> Path:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    teacher = root / "teacher"
    (teacher / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (teacher / "config.json").write_text(json.dumps({"num_hidden_layers": 3}), encoding="utf-8")
    (teacher / "tokenizer.json").write_text("{}", encoding="utf-8")
    (teacher / "1_Pooling" / "config.json").write_text("{}", encoding="utf-8")
    save_file({"embeddings.word_embeddings.weight": rng.standard_normal((6, 4)).astype(np.float32),
               "encoder.layer.0.attention.self.query.weight": rng.standard_normal((4, 4)).astype(np.float32),
               LAYER: rng.standard_normal((4, 4)).astype(np.float32),
               "encoder.layer.2.attention.self.query.weight": rng.standard_normal((4, 4)).astype(np.float32)},
              str(teacher / "model.safetensors"))
    (teacher / "manifest.json").write_text(json.dumps({"name": f"tiny-teacher-{seed}", "dimension": 4}),
                                           encoding="utf-8")
    return teacher


def _save_tiny_part(part: Path, teacher: Path, value: float) -> dict:
    tensors = {LAYER: np.full((4, 4), value, dtype=np.float16)}
    return distil.save_part(part, tensors, teacher_dir=teacher, config=DistilConfig(frozen=1, init_layers=(2,)),
                            texts=["a"], stats=DistilStats(), knowledge_fingerprint="k")


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_student_is_the_frozen_layers_plus_the_part_in_the_teachers_space(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    teacher = _tiny_teacher(tmp_path)
    part, out = tmp_path / "part", tmp_path / "models" / "student"
    _save_tiny_part(part, teacher, 0.5)
    assert distil.stale_reason(out, part, teacher) == "no query student yet"
    distil.rebuild(teacher, part, out)
    weights = load_file(str(out / "model.safetensors"))
    original = load_file(str(teacher / "model.safetensors"))
    np.testing.assert_array_equal(weights[LAYER], np.full((4, 4), 0.5, dtype=np.float32))
    np.testing.assert_array_equal(weights["encoder.layer.0.attention.self.query.weight"],
                                  original["encoder.layer.0.attention.self.query.weight"])
    assert "encoder.layer.2.attention.self.query.weight" not in weights  # two layers, not the teacher's three
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["num_hidden_layers"] == 2
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["space"] == "tiny-teacher-0" and manifest["name"] != "tiny-teacher-0"
    assert (out / "tokenizer.json").is_file() and (out / "1_Pooling" / "config.json").is_file()
    assert distil.stale_reason(out, part, teacher) is None

    first = _digest(out)
    distil.rebuild(teacher, part, out, force=True)
    assert _digest(out) == first  # the same bytes
    assert not [p for p in out.parent.iterdir() if p.name != "student"]  # no scratch folders left
    _save_tiny_part(part, teacher, 0.25)
    assert distil.stale_reason(out, part, teacher) == "the distillation has changed"


def test_rebuild_refuses_another_teacher_and_a_tampered_part(tmp_path: Path) -> None:
    teacher = _tiny_teacher(tmp_path)
    part, out = tmp_path / "part", tmp_path / "student"
    _save_tiny_part(part, teacher, 0.5)
    distil.rebuild(teacher, part, out)
    _tiny_teacher(tmp_path, seed=1)  # the teacher retrained (make adapt) in the same place
    assert "teacher" in (distil.stale_reason(out, part, teacher) or "")
    with pytest.raises(ModelMissing, match="make distil"):
        distil.rebuild(teacher, part, out)
    (part / "layers.safetensors").write_bytes(b"not the trained layers")
    with pytest.raises(ModelMissing, match="not the file"):
        distil.read_part(part)


def test_a_stale_student_not_in_use_does_not_stop_the_build(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    teacher = _tiny_teacher(tmp_path)
    part, out = tmp_path / "part", tmp_path / "student"
    _save_tiny_part(part, teacher, 0.5)
    _tiny_teacher(tmp_path, seed=1)  # `make adapt` ran since the student was distilled
    args = ["--teacher", str(teacher), "--part", str(part), "--out", str(out), "rebuild"]
    monkeypatch.setenv("GUIDE_QUERY_ENCODER", "full")
    assert distil.main(args) == 0
    assert "does not use it" in capsys.readouterr().out and not out.exists()
    monkeypatch.setenv("GUIDE_QUERY_ENCODER", "student")
    assert distil.main(args) == 1
    assert "make distil" in capsys.readouterr().err


def test_command_line_rebuild_says_when_current(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    teacher = _tiny_teacher(tmp_path)
    part, out = tmp_path / "part", tmp_path / "student"
    _save_tiny_part(part, teacher, 0.5)
    args = ["--teacher", str(teacher), "--part", str(part), "--out", str(out), "rebuild"]
    assert distil.main(args) == 0
    assert "query student" in capsys.readouterr().out
    assert distil.main(args) == 0
    assert "already current" in capsys.readouterr().out
    assert distil.main(["--teacher", str(teacher), "--part", str(tmp_path / "no-part"), "--out", str(out),
                        "rebuild"]) == 1


# ---------------------------------------------------------------------------------- the committed student

QUESTIONS = ("身份证丢了怎么补办", "新生儿上户口要带什么", "公积金怎么提取", "营业执照", "驾照到期换证在哪里办",
             "我想查一下社保缴费记录", "结婚登记需要什么材料", "二建改名")


@pytest.fixture(scope="module")
def encoders():
    from bot.knowledge.embedding.encoder import make_query_encoder

    settings = load_settings()
    student = make_query_encoder(settings.model_dir, settings.query_model_dir, "student", cache_size=0)
    full = make_query_encoder(settings.model_dir, settings.query_model_dir, "full", settings.max_tokens,
                              "onnx-fp32", cache_size=0)
    return student, full


def test_the_student_speaks_in_the_full_models_space(encoders) -> None:
    student, full = encoders
    assert student.name == full.name  # the index, ranker and calibration are tied to this name
    assert student.model != full.name  # ... but it says what it is
    a, b = student.encode(list(QUESTIONS), kind="query"), full.encode(list(QUESTIONS), kind="query")
    cosine = (a * b).sum(1)
    assert cosine.min() > 0.85, cosine
    # Each question's nearest full-model vector among the others' is its own.
    assert list((a @ b.T).argmax(1)) == list(range(len(QUESTIONS)))


def test_the_student_has_six_layers_and_is_named_by_its_part() -> None:
    settings = load_settings()
    config = json.loads((settings.query_model_dir / "config.json").read_text(encoding="utf-8"))
    manifest = distil.read_part(Path(__file__).resolve().parent.parent / "knowledge" / "distillation")
    assert config["num_hidden_layers"] == manifest["frozen"] + len(manifest["layers"]) == 6
    assert distil.stale_reason(settings.query_model_dir, Path(__file__).resolve().parent.parent / "knowledge"
                               / "distillation", settings.model_dir) is None


def test_the_assistant_searches_with_the_student_when_configured() -> None:
    from bot.answering.service import GuideService

    settings = load_settings().with_query_encoder("student")
    service = GuideService.from_settings(settings)
    assert service.retriever.encoder.name == GuideService.from_settings(load_settings()).retriever.encoder.name
    assert "query student" in service.retriever.encoder.inner.model
    assert service.retriever.ranker is not None and service.retriever.nothing_fits is not None  # its own fit
    found = service.search("身份证丢了怎么补办")
    assert found.matches and "身份证" in found.matches[0].item.title
