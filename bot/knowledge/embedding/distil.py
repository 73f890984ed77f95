"""A six-layer query encoder distilled from the adapted model: the same vectors at half the cost.

Why: a new question's retrieval is mostly the encoder (8-9 ms at p50 for the twelve-layer
adapted e5-small on the action server's one thread, against ~2 ms for everything else), and
int8 quantisation moved FAQ top-1 by more than the half point we allow. A question needs only
the *query* side of the model: the index (titles, aliases, questions, passages) is encoded
once, at build time, by the full adapted model. So a smaller *student* is trained to put a
question where the full model (the *teacher*) would put it, and only live questions go through
it. The index and its passage vectors stay in the teacher's vector space, and the student's
export carries the teacher's model name as its ``space`` (:class:`bot.knowledge.embedding.onnx.OnnxEncoder`
reports it as its name), so an index built by the teacher is served by the student and by nothing
else. The ranker and the calibration, fitted on the scores question vectors give, have their own
fit for the student (``bot.settings.fitted_for``).

The student is the teacher's embeddings and lower :data:`DistilConfig.frozen` layers, frozen,
followed by ``len(init_layers)`` layers initialised from the teacher's adapted top layers and
trained (six in all: 3.7 ms instead of 7.7 ms per short question on one thread). Like
``bot.knowledge.embedding.adapt`` it caches the frozen part's output once and trains only
the layers above it.

What it learns from (texts only, no labels; never an evaluation set): the question-side texts
of the knowledge base (the adaptation's anchors: keywords, short titles, aliases, typical
questions, conditions, materials, FAQ questions and alternatives), the NLU examples in
``data/nlu``, sentences of the guides' conditions, materials and process and of the FAQ
answers, and those texts inside a few fixed question frames (:data:`FRAMES`) so the student
sees keywords asked as citizens ask them. Targets are the teacher's own vectors for the same
texts ("query: " prompt). Loss: squared distance to the teacher's vector plus the squared
difference of the batch's similarity matrices (so near neighbours keep their order).

Outputs, as for the adaptation: the *part* (the trained layers in fp16 and ``distillation.json``,
committed in ``knowledge/distillation/``), and the *student* model folder assembled from the
teacher and the part by :func:`rebuild` (idempotent, same bytes anywhere), exported to ONNX by
``make model``.

Command line::

    python -m bot.knowledge.embedding.distil train    # texts -> teacher vectors -> train -> part -> student
    python -m bot.knowledge.embedding.distil rebuild  # student from teacher + committed part (idempotent)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import BotError, ModelMissing
from bot.knowledge.embedding import adapt
from bot.knowledge.embedding.files import copy_model_files, publish_folder, read_json
from bot.knowledge.model import FaqEntry, Guide, Record

log = logging.getLogger(__name__)

#: Bump when the part's format or the way the student folder is assembled changes.
DISTIL_VERSION = "1"
PART_WEIGHTS = "layers.safetensors"
PART_MANIFEST = "distillation.json"
MODEL_MANIFEST = adapt.MODEL_MANIFEST
WEIGHTS = adapt.BASE_WEIGHTS
ST_CONFIG = "config_sentence_transformers.json"

#: Question frames a keyword or a short text is put in (one per text, seeded): how citizens
#: ask about a thing they name in a word or two. Fixed, so a run is repeatable.
FRAMES = (
    "{}要带什么材料", "{}怎么办", "办{}需要什么", "{}在哪里办", "我想{}", "{}要多久", "{}要钱吗",
    "{}怎么弄", "请问{}", "{}可以网上办吗", "{}需要本人去吗", "帮我查一下{}", "{}的流程", "{}办理条件",
)
#: Frames for a whole situation (a condition, a sentence of an answer).
SITUATION_FRAMES = ("如果{}，怎么办", "我这种情况{}，还能办吗", "{}，需要带什么", "请问{}是什么意思", "{}的话要去哪里")
_SENTENCE = re.compile(r"[。；;！？!?\n]")
_NUMBERING = re.compile(r"^[（(]?[0-9一二三四五六七八九十]+[)）.、．]\s*")
_NLU_ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")


class TeacherChanged(ModelMissing):
    """The full model is not the one the committed student was distilled from (``make adapt`` ran since)."""


@dataclass(frozen=True)
class DistilConfig:
    """Everything that decides the student; recorded in the part's manifest.

    The defaults are the configuration chosen on the evaluation sets' dev splits (``make eval``).
    """

    #: The teacher's lowest layers kept, frozen, under the trained ones.
    frozen: int = 2
    #: The teacher layers the trained ones start from (its adapted top layers).
    init_layers: tuple[int, ...] = (8, 9, 10, 11)
    epochs: float = 4.0
    lr: float = 2e-4
    batch: int = 64
    max_tokens: int = 64
    #: The student's own query prompt. Empty: it learns to give the vector the teacher gives
    #: "query: " + text from the text alone, three tokens (a fifth of a short question) less work.
    prompt: str = ""
    seed: int = 0
    warmup: float = 0.05
    weight_decay: float = 0.01
    #: Weights of the two loss terms (distance to the teacher's vector; similarity matrix).
    vector_weight: float = 10.0
    relation_weight: float = 10.0
    #: How many keywords / situations are put in a question frame.
    framed_keywords: int = 12000
    framed_situations: int = 4000
    #: How many sentences of the records' text are added (sampled, seeded).
    sentences: int = 16000
    threads: int = 0  # 0: torch's default

    @property
    def layers(self) -> int:
        return self.frozen + len(self.init_layers)

    def check(self) -> None:
        if self.frozen < 0 or not self.init_layers or self.batch < 2 or self.epochs <= 0:
            raise BotError("frozen >= 0, at least one trained layer, batch >= 2 and epochs > 0 are required")


# --------------------------------------------------------------------------- training texts


def nlu_examples(nlu_dir: Path) -> list[str]:
    """The plain text of every NLU example under ``nlu_dir`` (entity annotations removed)."""
    import yaml

    found: set[str] = set()
    for path in sorted(nlu_dir.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for block in document.get("nlu") or []:
            for line in str(block.get("examples") or "").splitlines():
                line = line.strip()
                if line.startswith("- "):
                    text = _NLU_ANNOTATION.sub(r"\1", line[2:]).strip()
                    if text:
                        found.add(text)
    return sorted(found)


def record_sentences(records: Iterable[Record], shortest: int = 8, longest: int = 48) -> list[str]:
    """Sentences of the guides' conditions, refusal grounds, materials and process and of FAQ answers."""
    found: set[str] = set()
    for record in records:
        if isinstance(record, Guide):
            materials = [text for m in record.materials for text in (m.name, m.note) if text]
            parts: Sequence[str] = (*record.conditions, *record.refusal_grounds, *materials, *record.process)
        elif isinstance(record, FaqEntry):
            parts = (record.answer,)
        else:
            continue
        for part in parts:
            for sentence in _SENTENCE.split(str(part)):
                sentence = _NUMBERING.sub("", sentence.strip())
                if shortest <= len(sentence) <= longest:
                    found.add(sentence)
    return sorted(found)


def training_texts(records: Sequence[Record], nlu_dir: Path | None, config: DistilConfig) -> list[str]:
    """The question-side texts the student learns from, deterministic for the same inputs."""
    pair_set = adapt.build_pairs(records, adapt.AdaptConfig(max_tokens=config.max_tokens))
    texts = {p.anchor for p in pair_set.pairs}
    texts |= {p.positive for p in pair_set.pairs if p.positive_kind == "query"}
    if nlu_dir is not None and nlu_dir.is_dir():
        texts |= set(nlu_examples(nlu_dir))
    rng = random.Random(config.seed)
    sentences = record_sentences(records)
    texts |= set(rng.sample(sentences, min(len(sentences), config.sentences)))
    ordered = sorted(texts)
    keywords = [t for t in ordered if 2 <= len(t) <= 12]
    situations = [t for t in ordered if 8 <= len(t) <= 30]
    framed = {rng.choice(FRAMES).format(k) for k in rng.sample(keywords, min(len(keywords), config.framed_keywords))}
    framed |= {rng.choice(SITUATION_FRAMES).format(s)
               for s in rng.sample(situations, min(len(situations), config.framed_situations))}
    return sorted(texts | framed)


def _texts_sha(texts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- training


@dataclass
class DistilStats:
    texts: int = 0
    steps: int = 0
    seconds_teacher: float = 0.0
    seconds_cache: float = 0.0
    seconds_train: float = 0.0
    final_loss: float = 0.0
    #: Cosine between the student's and the teacher's vectors on texts it did not train on.
    held_out: dict[str, float] | None = None


def _held_out(texts: Sequence[str], share: float, seed: int) -> tuple[list[str], list[str]]:
    """Split off ``share`` of the texts (seeded) to measure the student on texts it never saw."""
    rng = random.Random(seed + 1)
    held = set(rng.sample(range(len(texts)), int(len(texts) * share)))
    return [t for i, t in enumerate(texts) if i not in held], [t for i, t in enumerate(texts) if i in held]


def train(
    teacher_dir: Path,
    texts: Sequence[str],
    config: DistilConfig,
    *,
    teacher_vectors: Callable[[Sequence[str]], np.ndarray] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> tuple[dict[str, np.ndarray], DistilStats]:
    """Train the student's layers to give the teacher's vectors; return them in fp16 (BertModel names).

    ``teacher_vectors`` maps texts (without prompt) to the teacher's query vectors; by default the
    teacher's float ONNX export next to ``teacher_dir`` (``<name>-onnx``), else torch.
    """
    import torch

    config.check()
    threads = adapt._set_threads(config.threads)
    adapt._seed_everything(config.seed)
    stats = DistilStats()
    train_texts, held = _held_out(list(texts), 0.02, config.seed)
    stats.texts = len(train_texts)
    started = time.perf_counter()
    encode = teacher_vectors or _teacher(teacher_dir, config.max_tokens, threads)
    targets = torch.from_numpy(np.ascontiguousarray(encode(train_texts), dtype=np.float32))
    held_targets = encode(held)
    stats.seconds_teacher = round(time.perf_counter() - started, 1)
    say(f"teacher vectors for {len(train_texts)} + {len(held)} held-out texts in {stats.seconds_teacher} s")

    started = time.perf_counter()
    prompted = [config.prompt + t for t in train_texts]
    held_prompted = [config.prompt + t for t in held]
    cache = adapt.LowerCache(teacher_dir, config.frozen, config.max_tokens)
    cache.add(prompted + held_prompted)
    stats.seconds_cache = round(time.perf_counter() - started, 1)
    say(f"cached the frozen {config.frozen} layers' output in {stats.seconds_cache} s")

    adapt._seed_everything(config.seed)
    tensors = adapt._load_tensors(teacher_dir / WEIGHTS)
    stack = adapt._make_top_stack(adapt._read_config(teacher_dir), tensors, config.init_layers)
    del tensors
    total = max(1, int(len(train_texts) // config.batch * config.epochs))
    warmup = int(total * config.warmup)
    optimizer = torch.optim.AdamW(stack.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    rng = random.Random(config.seed)
    order: list[int] = []
    losses: list[float] = []
    started = time.perf_counter()
    stack.train()
    for step in range(total):
        if len(order) < config.batch:
            epoch = list(range(len(train_texts)))
            rng.shuffle(epoch)
            order += epoch
        batch, order = order[: config.batch], order[config.batch:]
        vectors = adapt.embed(stack, cache, [prompted[i] for i in batch])
        wanted = targets[batch]
        loss = (config.vector_weight * ((vectors - wanted) ** 2).sum(1).mean()
                + config.relation_weight * ((vectors @ vectors.T - wanted @ wanted.T) ** 2).mean())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(stack.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.item()))
        if step % 100 == 0 or step == total - 1:
            recent = losses[-100:]
            say(f"  step {step + 1}/{total} loss {sum(recent) / len(recent):.3f} "
                f"({time.perf_counter() - started:.0f} s)")
    stats.steps = total
    stats.seconds_train = round(time.perf_counter() - started, 1)
    stats.final_loss = round(sum(losses[-100:]) / max(1, len(losses[-100:])), 4)
    cosine = (adapt.encode_cached(cache, stack, held_prompted) * held_targets).sum(1) if held else np.ones(1)
    stats.held_out = {"texts": len(held), "cosine_mean": round(float(cosine.mean()), 4),
                      "cosine_p5": round(float(np.percentile(cosine, 5)), 4)}
    say(f"trained {len(config.init_layers)} layers for {total} steps in {stats.seconds_train} s on {threads} "
        f"threads; held-out cosine to the teacher {stats.held_out['cosine_mean']}")
    student_ids = range(config.frozen, config.layers)
    return adapt.stack_tensors(stack, student_ids), stats


def _teacher(teacher_dir: Path, max_tokens: int, threads: int) -> Callable[[Sequence[str]], np.ndarray]:
    """The teacher's query vectors, from its float ONNX export when there is one (3x faster than torch)."""
    from bot.knowledge.embedding.encoder import make_encoder

    exported = teacher_dir.with_name(teacher_dir.name + "-onnx")
    backend = "onnx-fp32" if exported.is_dir() else "torch"
    encoder = make_encoder(teacher_dir, max_tokens, backend, max(1, threads), cache_size=0)
    return lambda texts: encoder.encode(list(texts), kind="query", batch_size=64)


# --------------------------------------------------------------------------- part and student


def _teacher_identity(teacher_dir: Path) -> dict[str, Any]:
    meta = read_json(teacher_dir / MODEL_MANIFEST)
    if not (teacher_dir / WEIGHTS).is_file():
        raise ModelMissing(f"{teacher_dir}: no teacher model here; run `make model`")
    return {"name": str(meta.get("name") or teacher_dir.name), "weights_sha256": adapt._sha256(teacher_dir / WEIGHTS),
            "weights_bytes": (teacher_dir / WEIGHTS).stat().st_size}


def save_part(part_dir: Path, tensors: dict[str, np.ndarray], *, teacher_dir: Path, config: DistilConfig,
              texts: Sequence[str], stats: DistilStats, knowledge_fingerprint: str) -> dict[str, Any]:
    """Write the part (fp16 layers + manifest) into ``part_dir``, replacing what was there."""
    import torch
    from safetensors.numpy import save_file

    part_dir.mkdir(parents=True, exist_ok=True)
    weights = part_dir / PART_WEIGHTS
    save_file(tensors, str(weights), metadata={"format": "pt"})
    weights.chmod(0o644)
    manifest = {
        "distil_version": DISTIL_VERSION,
        "what": "a six-layer query encoder: the adapted model's embeddings and lowest layers with layers "
                "trained to give the adapted model's own query vectors",
        "teacher": _teacher_identity(teacher_dir),
        "frozen": config.frozen,
        "layers": sorted({int(name.split(".")[2]) for name in tensors}),
        "dtype": "float16",
        "file": PART_WEIGHTS,
        "bytes": weights.stat().st_size,
        "sha256": adapt._sha256(weights),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "training_data": {"knowledge_fingerprint": knowledge_fingerprint, "texts": stats.texts,
                          "texts_sha256": _texts_sha(texts)},
        "steps": stats.steps,
        "final_loss": stats.final_loss,
        "held_out": stats.held_out,
        "seconds": {"teacher": stats.seconds_teacher, "cache": stats.seconds_cache, "train": stats.seconds_train},
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (part_dir / PART_MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                          encoding="utf-8")
    return manifest


def read_part(part_dir: Path) -> dict[str, Any]:
    """The part's manifest, after checking its weights file is the one it describes."""
    return adapt.read_part_manifest(part_dir, PART_MANIFEST, ("distil_version", DISTIL_VERSION),
                                    missing="no distilled query encoder here; run `make distil`",
                                    retrain="retrain it with `make distil`")


def student_name(part: dict[str, Any]) -> str:
    return f"{part['teacher']['name']} / query student ({part['frozen'] + len(part['layers'])} layers, " \
           f"part {part['sha256'][:12]})"


def stale_reason(out_dir: Path, part_dir: Path, teacher_dir: Path) -> str | None:
    """Why ``out_dir`` is not the student ``part_dir`` describes on ``teacher_dir``, or None when it is.

    Cheap (no weights are hashed): the part's hash, the teacher's name and weights size, file sizes.
    """
    try:
        manifest = json.loads((out_dir / MODEL_MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no query student yet"
    except (OSError, ValueError) as exc:
        return f"{MODEL_MANIFEST} unreadable ({exc})"
    part = read_part(part_dir)
    if (manifest.get("distillation") or {}).get("sha256") != part["sha256"] \
            or manifest.get("distil_version") != DISTIL_VERSION:
        return "the distillation has changed"
    teacher = read_json(teacher_dir / MODEL_MANIFEST)
    weights = teacher_dir / WEIGHTS
    if manifest.get("space") != teacher.get("name") or not weights.is_file() \
            or (manifest.get("teacher") or {}).get("weights_bytes") != weights.stat().st_size:
        return f"the teacher in {teacher_dir} has changed"
    for name, size in (manifest.get("files") or {}).items():
        path = out_dir / name
        if not path.is_file() or path.stat().st_size != size:
            return f"{name} is missing or has changed size"
    return None


def rebuild(teacher_dir: Path, part_dir: Path, out_dir: Path, *, force: bool = False) -> Path:
    """Write the student folder (teacher's embeddings and frozen layers + the part's) at ``out_dir``.

    Idempotent and deterministic, like :func:`bot.knowledge.embedding.adapt.rebuild`.

    Raises:
        ModelMissing: the teacher or the part is missing, or the teacher is not the one the part
            was trained from (its vectors would not be the space the part learnt).
    """
    from safetensors.numpy import save_file

    part = read_part(part_dir)
    if not force and stale_reason(out_dir, part_dir, teacher_dir) is None:
        return out_dir
    teacher = _teacher_identity(teacher_dir)
    if teacher["weights_sha256"] != part["teacher"]["weights_sha256"]:
        raise TeacherChanged(
            f"{teacher_dir}: not the model the query student in {part_dir} was distilled from "
            f"(weights {teacher['weights_sha256'][:12]}, expected {part['teacher']['weights_sha256'][:12]}); "
            f"retrain it with `make distil`, or set GUIDE_QUERY_ENCODER=full"
        )
    layers = part["frozen"] + len(part["layers"])
    tensors = {name: value for name, value in adapt._load_tensors(teacher_dir / WEIGHTS).items()
               if not name.startswith("encoder.layer.") or int(name.split(".")[2]) < part["frozen"]}
    for name, value in adapt._load_tensors(part_dir / part["file"]).items():
        tensors[name] = value.astype(np.float32)
    config = adapt._read_config(teacher_dir)
    config["num_hidden_layers"] = layers

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        copy_model_files(teacher_dir, scratch, (WEIGHTS, MODEL_MANIFEST, "config.json", ST_CONFIG))
        (scratch / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        st_config = read_json(teacher_dir / ST_CONFIG)
        prompts = {**adapt.PROMPTS, **st_config.get("prompts", {}), "query": str(part["config"].get("prompt", ""))}
        st_config = {**st_config, "prompts": prompts}
        (scratch / ST_CONFIG).write_text(json.dumps(st_config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        save_file(tensors, str(scratch / WEIGHTS), metadata={"format": "pt"})
        teacher_meta = read_json(teacher_dir / MODEL_MANIFEST)
        manifest = {
            "name": student_name(part),
            # The vector space: the teacher's name, which the index, ranker and calibration carry.
            "space": teacher["name"],
            "dimension": teacher_meta.get("dimension"),
            "max_seq_length": teacher_meta.get("max_seq_length"),
            "prompts": prompts,
            "distil_version": DISTIL_VERSION,
            "teacher": {"name": teacher["name"], "weights_bytes": teacher["weights_bytes"]},
            "distillation": {k: part[k] for k in ("sha256", "frozen", "layers", "held_out", "trained_at")},
            "files": {str(p.relative_to(scratch)): p.stat().st_size
                      for p in sorted(scratch.rglob("*")) if p.is_file()},
        }
        (scratch / MODEL_MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                              encoding="utf-8")
        publish_folder(scratch, out_dir)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return out_dir


# --------------------------------------------------------------------------- command line


def _defaults() -> tuple[Path, Path, Path, tuple[Path, ...], Path, int, str]:
    """(teacher, part, student, knowledge roots, NLU folder, max tokens, query encoder) from the settings."""
    from bot.settings import ROOT, load_settings

    settings = load_settings()
    return (settings.model_dir, ROOT / "knowledge" / "distillation", settings.query_model_dir,
            settings.knowledge_roots, ROOT / "data" / "nlu", settings.max_tokens, settings.query_encoder)


def main(argv: list[str] | None = None) -> int:
    """Command line: train the part and assemble the student, or assemble it from a committed part."""
    teacher, part, out, knowledge, nlu, max_tokens, query_encoder = _defaults()
    parser = argparse.ArgumentParser(prog="python -m bot.knowledge.embedding.distil",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, default=teacher, help=f"teacher model folder (default {teacher})")
    parser.add_argument("--part", type=Path, default=part, help=f"the part's folder (default {part})")
    parser.add_argument("--out", type=Path, default=out, help=f"student model folder (default {out})")
    sub = parser.add_subparsers(dest="command")
    t = sub.add_parser("train", help="make texts, train the student's layers, write the part and the student")
    t.add_argument("--knowledge", type=Path, action="append", help="guide/FAQ folder or file, repeatable")
    t.add_argument("--nlu", type=Path, default=nlu)
    for name, kind in (("frozen", int), ("epochs", float), ("lr", float), ("batch", int), ("seed", int),
                       ("threads", int)):
        t.add_argument(f"--{name}", type=kind)
    t.add_argument("--init-layers", help="comma-separated teacher layers the trained ones start from")
    r = sub.add_parser("rebuild", help="assemble the student from the teacher and the part (nothing if current)")
    r.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        started = time.perf_counter()
        if args.command == "train":
            from bot.knowledge.base import KnowledgeBase, fingerprint

            roots = tuple(args.knowledge or knowledge)
            config = replace(DistilConfig(max_tokens=max_tokens),
                             **{k: v for k in ("frozen", "epochs", "lr", "batch", "seed", "threads")
                                if (v := getattr(args, k)) is not None})
            if args.init_layers:
                config = replace(config, init_layers=tuple(int(x) for x in args.init_layers.split(",")))
            records = KnowledgeBase.load(*roots).records()
            if not records:
                raise BotError(f"no guides under {', '.join(map(str, roots))}")
            texts = training_texts(records, args.nlu, config)
            print(f"{len(texts)} training texts", flush=True)
            tensors, stats = train(args.teacher, texts, config, say=lambda s: print(s, flush=True))
            manifest = save_part(args.part, tensors, teacher_dir=args.teacher, config=config, texts=texts,
                                 stats=stats, knowledge_fingerprint=fingerprint(*roots))
            print(f"{args.part}: {manifest['bytes'] / 1e6:.1f} MB, layers {manifest['layers']}, "
                  f"sha256 {manifest['sha256'][:12]}")
            rebuild(args.teacher, args.part, args.out, force=True)
        else:
            reason = "--force" if getattr(args, "force", False) else stale_reason(args.out, args.part, args.teacher)
            if reason is None:
                print(f"{args.out}: already current, nothing to do ({time.perf_counter() - started:.1f} s)")
                return 0
            print(f"{args.out}: assembling from {args.teacher} + {args.part} ({reason})", flush=True)
            try:
                rebuild(args.teacher, args.part, args.out, force=True)
            except TeacherChanged as exc:
                if query_encoder == "student":
                    raise
                # Not in use (GUIDE_QUERY_ENCODER=full): a stale student must not stop `make run`.
                print(f"note: {exc}. Not assembled; the assistant does not use it (GUIDE_QUERY_ENCODER=full)")
                return 0
        name = json.loads((args.out / MODEL_MANIFEST).read_text(encoding="utf-8"))["name"]
        print(f"{args.out}: wrote {name} in {time.perf_counter() - started:.1f} s")
        return 0
    except BotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
