"""Adapt multilingual-e5-small to this knowledge base, from the records' own fields only.

Why: the base model has never seen most of the catalogue's vocabulary as citizens use it.
Citizens mostly type short keywords (``二建改名``, ``法考查分``, ``跨市班车线路``), while a
guide is indexed by its long official title, a few aliases and a summary; the base model
often ranks a sibling item (补领 vs 换领, 首次 vs 延续 vs 注销) or an unrelated title with the
same generic words above the right one. Teaching the model which of the catalogue's titles
a short text belongs to is cheap and needs no labelled questions: the guides themselves
say which texts belong together.

What it trains on (never on an evaluation or calibration set): pairs ``(anchor, positive)``
where the positive is one of the texts the index holds for a record (a guide's title or an FAQ
entry's question — the "name" field — or its summary passage, exactly as
:func:`bot.knowledge.index.record_texts` builds them) and the anchor is another text of the same record.
For a guide:

* ``keyword``: salient 2-6 character pieces of the title, alone or followed by the title's
  action word (``执业药师`` + ``注册``), made from jieba words weighted by how rare they are
  among all titles — the short queries citizens type;
* ``abbrev``: first characters of consecutive words (二级建造师 -> 二建), optional;
* ``short_title``: the title without region prefix and brackets, and the bracket part alone
  (Guangzhou titles put the specific sub-item in brackets);
* ``alias``, ``question``, ``condition``, ``material``, ``result``: the guide's fields;
* ``passage``: the short title or a keyword paired with the guide's summary passage, so the
  passage vector (department, topics, materials) is pulled towards how people ask.

For an FAQ entry (the index holds its question, alternatives, keywords, and "question。answer"):

* ``faq_alternative``: each alternative phrasing paired with the entry's question;
* ``faq_answer``: the first alternative (or the question) paired with the entry's passage.

Each pair carries a hard negative: the same kind of text of a sibling record of the same
kind (guide or FAQ entry) whose name is most similar but which is a different service
(补领 vs 换领 ...), never a record that is equally right for the anchor. "Equally right" is:
the same name after the region prefix is dropped (a province guide and the Guangzhou guide
of the same name), an FAQ entry and the guide it is ``related`` to, a record whose name,
alias, alternative or keyword *is* the anchor, or whose name contains a short anchor. Those
records are masked out of the loss instead of being pushed away, and an anchor that fits more
than :data:`MAX_EQUIVALENT` records of its own kind is dropped as too generic to teach anything.

Loss: MultipleNegativesRankingLoss (cosine x 20, cross-entropy over the batch's positives
and hard negatives), as in sentence-transformers, plus that mask. Prefixes are the
encoder's: anchors "query: ", positives and negatives "query: " for names and "passage: "
for passages, exactly as the index encodes them, and texts are cut at the same
``GUIDE_MAX_TOKENS`` (64 by default) as :class:`bot.knowledge.embedding.encoder.SentenceTransformerEncoder`.

Why it is cheap: the embedding matrix and the lower layers stay frozen, only the top
``layers`` transformer layers train. The frozen part's output for every training text is
computed once and cached (fp16), then training runs only the top layers over the cache.
Fixed seeds (torch, random, numpy) and a deterministic data
order make a run repeatable on the same machine and thread count.

Outputs:

* the *part*: the trained layers in fp16 (``layers.safetensors``, ~3.6 MB per layer) and
  ``adaptation.json`` (base model, layers, seed, knowledge fingerprint, pair counts,
  steps, time) — small enough to commit (``knowledge/adaptation/``);
* the *model*: a complete sentence-transformers folder (base + part), always written by
  :func:`rebuild` from the part, so a model trained here and one rebuilt elsewhere are the
  same bytes (the folder holds no time stamp of its own). Its ``manifest.json`` names it
  differently from the base model, so an index, ranker or calibration built with one is
  refused by the other, and carries the adaptation (``adaptation``) for the index manifest.

Command line::

    python -m bot.knowledge.embedding.adapt train    # pairs -> cache -> train -> part -> model
    python -m bot.knowledge.embedding.adapt rebuild  # model from base + committed part (idempotent)
    python -m bot.knowledge.embedding.adapt pairs    # print a sample of the training pairs
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.errors import BotError, ModelMissing
from bot.knowledge.embedding.files import copy_model_files, publish_folder
from bot.knowledge.model import FaqEntry, Guide, Record
from bot.knowledge.text import normalize

if TYPE_CHECKING:
    import torch

    from bot.knowledge.base import KnowledgeBase
    from bot.knowledge.embedding.encoder import Kind

log = logging.getLogger(__name__)

#: Bump when the part's format or the way a model folder is assembled from it changes.
ADAPTER_VERSION = "1"
PART_WEIGHTS = "layers.safetensors"
PART_MANIFEST = "adaptation.json"
MODEL_MANIFEST = "manifest.json"
BASE_WEIGHTS = "model.safetensors"
PROMPTS: dict[str, str] = {"query": "query: ", "passage": "passage: "}

#: Every kind of training pair; :class:`AdaptConfig.kinds` picks a subset.
PAIR_KINDS = (
    "keyword", "abbrev", "short_title", "alias", "question", "condition", "material", "result", "passage",
    "faq_alternative", "faq_answer",
)
#: An anchor that fits more records of its own kind than this is too generic to teach which one it means.
MAX_EQUIVALENT = 4
#: Anchors up to this many characters count a guide whose title contains them as equally right.
SHORT_ANCHOR = 12
#: Hard negatives come from the most similar titles, at least this similar (char 1-2-gram cosine).
SIBLING_MIN_SIMILARITY = 0.3
SIBLINGS = 5
#: A title is "the same" as another when their region-less forms are this similar.
TWIN_SIMILARITY = 0.999
#: A jieba word in more than this share of titles is generic (查询, 申请, 审批 ...), not salient.
GENERIC_SHARE = 0.02
#: A word that ends at least this many titles is an action (查询, 注册, 变更, 补领 ...).
ACTION_MIN_TITLES = 5

_REGION = re.compile(r"^(?:中华人民共和国|广东省|广州市|广东|广州)")
_SPLIT = re.compile(r"[、，,；;：:“”\"'《》<>〈〉【】\[\]·/\s—\-]+")
_EDGE_WORDS = frozenset("的和及与或等之类对在为于、")
_HAS_CJK = re.compile(r"[\u4e00-\u9fff]")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class AdaptConfig:
    """Everything that decides what is trained; recorded in the part's manifest.

    The defaults are the configuration chosen on the two evaluation sets' dev splits.
    """

    layers: int = 4
    epochs: float = 1.0
    lr: float = 2e-5
    batch: int = 64
    #: As the encoder cuts texts (GUIDE_MAX_TOKENS), so long passages train as they are indexed.
    max_tokens: int = 64
    seed: int = 0
    scale: float = 20.0
    warmup: float = 0.1
    weight_decay: float = 0.01
    keywords_per_guide: int = 4
    conditions_per_guide: int = 2
    kinds: tuple[str, ...] = (
        "keyword", "short_title", "alias", "question", "condition", "material", "result", "passage",
        "faq_alternative", "faq_answer",
    )
    hard_negatives: bool = True
    threads: int = 0  # 0: torch's default (OMP_NUM_THREADS, else all cores)

    def check(self) -> None:
        unknown = sorted(set(self.kinds) - set(PAIR_KINDS))
        if unknown:
            raise BotError(f"unknown pair kind(s) {', '.join(unknown)}; known: {', '.join(PAIR_KINDS)}")
        if self.layers < 1 or self.batch < 2 or self.epochs <= 0 or self.max_tokens < 8:
            raise BotError("layers >= 1, batch >= 2, epochs > 0 and max_tokens >= 8 are required")


# --------------------------------------------------------------------------- titles


def split_title(title: str) -> tuple[str, list[str]]:
    """The title outside brackets, and each top-level bracket's content (inner brackets dropped).

    Guangzhou titles read ``事项（类别）(具体子项（说明）)``: the main name is generic, the last
    bracket names the sub-item a citizen actually asks for, so both are keyword sources.
    """
    main: list[str] = []
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in title:
        if ch in "（(":
            depth += 1
            if depth == 1:
                current = []
            continue
        if ch in "）)":
            if depth == 1:
                parts.append("".join(current).strip())
            depth = max(0, depth - 1)
            continue
        if depth == 0:
            main.append(ch)
        elif depth == 1:
            current.append(ch)
    return "".join(main).strip(), [p for p in parts if p]


def strip_region(text: str) -> str:
    """``text`` without a leading province/city name (kept if nothing would be left)."""
    stripped = _REGION.sub("", text).strip()
    return stripped if len(stripped) >= 2 else text


def title_core(title: str) -> str:
    """The normalised title without its region prefix: what makes two guides "the same item"."""
    return strip_region(normalize(title, limit=400))


class TitleVocabulary:
    """jieba words of every title, with how rare each is and which end a title (actions).

    Why: a citizen's keyword keeps the rare words (药师, 减容, 弩) and drops the generic ones
    (查询, 服务, 广东省); a title's last word, when it is a common one, is what they want to do
    with the thing (注册, 补领, 查询) and is often appended to the keyword.
    """

    def __init__(self, titles: Sequence[str]) -> None:
        import jieba

        jieba.setLogLevel(60)
        self._cut: Callable[[str], list[str]] = jieba.lcut
        self._words: dict[str, list[list[str]]] = {}
        df: Counter[str] = Counter()
        last: Counter[str] = Counter()
        for title in titles:
            runs = self.runs(title)
            df.update({w for run in runs for w in run})
            if runs and runs[0]:
                last[runs[0][-1]] += 1
        self.count = max(1, len(titles))
        self.idf = {w: math.log(self.count / n) for w, n in df.items()}
        self.generic = frozenset(w for w, n in df.items() if n / self.count > GENERIC_SHARE)
        self.actions = frozenset(w for w, n in last.items() if n >= ACTION_MIN_TITLES and len(w) >= 2)

    def runs(self, title: str) -> list[list[str]]:
        """jieba words of the region-less main part, then of each bracket part, split at punctuation."""
        cached = self._words.get(title)
        if cached is not None:
            return cached
        main, brackets = split_title(title)
        out = []
        for segment in (strip_region(main), *(strip_region(b) for b in brackets)):
            words = [w for piece in _SPLIT.split(segment) if piece for w in self._cut(piece) if w.strip()]
            out.append(words)
        self._words[title] = out
        return out

    def salience(self, words: Iterable[str]) -> float:
        return sum(self.idf.get(w, 0.0) for w in words if w not in self.generic)


def keyword_candidates(title: str, vocab: TitleVocabulary) -> dict[str, float]:
    """Short keyword forms of a title, each with a salience weight.

    Windows of consecutive words 2-6 characters long holding at least one non-generic word,
    not starting or ending with a function word; and each such window followed by the
    segment's action word when the window does not already end with it (at most 8 chars).
    """
    out: dict[str, float] = {}
    whole = normalize(title, limit=400)
    for words in vocab.runs(title):
        if not words:
            continue
        action = words[-1] if words[-1] in vocab.actions else None
        for i in range(len(words)):
            for j in range(i + 1, min(len(words), i + 5) + 1):
                window = words[i:j]
                text = "".join(window)
                if not 2 <= len(text) <= 6 or not _HAS_CJK.search(text):
                    continue
                if text[0] in _EDGE_WORDS or text[-1] in _EDGE_WORDS:
                    continue
                # A one-character word at an edge is usually half of a word jieba split
                # (印花税/票/销售 -> "票销售"); keep it only when it stands alone or is Latin.
                if j - i > 1 and any(len(w) == 1 and not w.isascii() for w in (window[0], window[-1])):
                    continue
                weight = vocab.salience(window)
                if weight <= 0:
                    continue
                # The head noun ends a Chinese name: windows that keep it are what people type.
                if j == len(words) or (j == len(words) - 1 and action):
                    weight *= 1.5
                if text != whole:
                    out[text] = max(out.get(text, 0.0), weight)
                if action and window[-1] != action and action not in window:
                    combined = text + action
                    if len(combined) <= 8 and combined != whole:
                        out[combined] = max(out.get(combined, 0.0), weight + 0.5)
    return out


def abbreviation_candidates(title: str, vocab: TitleVocabulary) -> list[str]:
    """First characters of 2-4 consecutive multi-character words (二级/建造师 -> 二建).

    Real abbreviations are often formed this way (教师资格 -> 教资, 二级建造师 -> 二建), but
    many such strings mean nothing, so this kind is optional and measured separately.
    """
    out: list[str] = []
    whole = normalize(title, limit=400)
    for words in vocab.runs(title):
        for i in range(len(words)):
            for j in range(i + 2, min(len(words), i + 4) + 1):
                window = words[i:j]
                if not all(len(w) >= 2 and _HAS_CJK.match(w) for w in window):
                    continue
                if vocab.salience(window) <= 0:
                    continue
                abbrev = "".join(w[0] for w in window)
                if abbrev not in whole and abbrev not in out:
                    out.append(abbrev)
    return out


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class Pair:
    """One training example: ``anchor`` should be nearer ``positive`` than any other record's text.

    ``record`` and ``negative_record`` are positions in the catalogue's records (guides first,
    then FAQ entries, as :meth:`bot.knowledge.base.KnowledgeBase.records` orders them).
    """

    kind: str
    anchor: str
    positive: str
    positive_kind: Kind
    record: int
    negative: str | None = None
    negative_record: int = -1
    #: Records equally right for the anchor: never used as its negatives (masked in the loss).
    equivalent: frozenset[int] = frozenset()


@dataclass
class PairSet:
    pairs: list[Pair]
    counts: dict[str, int]
    dropped_generic: int
    guides: int
    faqs: int = 0

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for p in self.pairs:
            digest.update(f"{p.kind}\t{p.anchor}\t{p.positive}\t{p.negative}\t{p.record}\n".encode())
        return digest.hexdigest()


class Catalogue:
    """The records as the pair builder sees them: names and passages as indexed, siblings, equivalents.

    A record's *name* is a guide's title or an FAQ entry's question, its *passage* the summary the
    index encodes with "passage: " — both exactly as :func:`bot.knowledge.index.record_texts` makes them.
    Siblings (hard-negative candidates) are the most similar names among records of the same
    kind; guides and FAQ entries are compared separately, so adding FAQ entries leaves the
    guides' siblings as they were.
    """

    def __init__(self, records: Sequence[Record]) -> None:
        from bot.knowledge.index import record_texts

        self.records: list[Record] = list(records)
        self.is_faq = [isinstance(r, FaqEntry) for r in self.records]
        self.titles: list[str] = []
        self.passages: list[str] = []
        for record in self.records:
            texts = record_texts(record)
            name = next((t for _, f, t in texts if f == "name"), normalize(record.title, limit=400))
            self.titles.append(name)
            self.passages.append(next((t for _, f, t in texts if f == "passage"), name))
        self.cores = [title_core(r.title) for r in self.records]
        names: dict[str, set[int]] = {}
        for i, record in enumerate(self.records):
            others = (*record.alternatives, *record.keywords) if isinstance(record, FaqEntry) else record.aliases
            for text in (self.titles[i], self.cores[i], *others):
                for form in {normalize(text, limit=400), _clean(text)}:
                    if form:
                        names.setdefault(form, set()).add(i)
        self._names = names
        # An FAQ entry and the guides it is about answer the same matter: never each other's negatives.
        position = {r.id: i for i, r in enumerate(self.records) if not self.is_faq[i]}
        linked: list[set[int]] = [set() for _ in self.records]
        for i, record in enumerate(self.records):
            if isinstance(record, FaqEntry):
                for guide_id in record.related:
                    if guide_id in position:
                        linked[i].add(position[guide_id])
                        linked[position[guide_id]].add(i)
        self.linked = [frozenset(s) for s in linked]
        # One string of all names, to find every name containing a short anchor in C, not Python.
        self._joined = "\n".join(self.titles)
        self._starts = []
        pos = 0
        for title in self.titles:
            self._starts.append(pos)
            pos += len(title) + 1

        self.twins: list[frozenset[int]] = [frozenset()] * len(self.records)
        self.siblings: list[list[int]] = [[] for _ in self.records]
        for faq in (False, True):
            members = [i for i, is_faq in enumerate(self.is_faq) if is_faq == faq]
            if members:
                self._relate(members)

    def _relate(self, members: list[int]) -> None:
        """Twins and siblings among ``members`` (records of one kind), by char 1-2-gram TF-IDF of their cores."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True)
        matrix = vectorizer.fit_transform([self.cores[i] for i in members])
        similarity = (matrix @ matrix.T).toarray()
        np.fill_diagonal(similarity, -1.0)
        for local, i in enumerate(members):
            row = similarity[local]
            twins = {members[int(j)] for j in np.flatnonzero(row >= TWIN_SIMILARITY)}
            twins |= {j for j in self._names.get(self.cores[i], ()) if self.cores[j] == self.cores[i]} - {i}
            self.twins[i] = frozenset(twins)
            order = np.argsort(-row, kind="stable")
            siblings = [members[int(j)] for j in order[: SIBLINGS + len(twins) + 1]
                        if row[j] >= SIBLING_MIN_SIMILARITY and members[int(j)] not in twins]
            self.siblings[i] = siblings[:SIBLINGS]

    @property
    def guides(self) -> list[Guide]:
        return [r for r in self.records if isinstance(r, Guide)]

    def containing(self, anchor: str) -> set[int]:
        """Records whose name contains ``anchor``."""
        out = set()
        for match in re.finditer(re.escape(anchor), self._joined):
            out.add(bisect.bisect_right(self._starts, match.start()) - 1)
        return out

    def equivalent(self, record: int, anchor: str) -> frozenset[int]:
        """Records for which ``anchor`` is as right as for ``record`` (``record`` included)."""
        out = {record, *self.twins[record], *self.linked[record]}
        out |= self._names.get(anchor, set())
        if len(anchor) <= SHORT_ANCHOR:
            out |= self.containing(anchor)
        return frozenset(out)

    def same_kind(self, record: int, records: Iterable[int]) -> int:
        """How many of ``records`` are of ``record``'s kind (guide or FAQ entry)."""
        return sum(1 for r in records if self.is_faq[r] == self.is_faq[record])


_NUMBERING = re.compile(r"^\s*(?:[(（]?\d{1,2}[)）.、．]|[一二三四五六七八九十]{1,2}[、.．])\s*")


def _clean(text: str, limit: int = 80) -> str:
    """Normalised as the index does, without list numbering ("1.", "（2）", "三、") or end punctuation."""
    return _NUMBERING.sub("", normalize(text, limit=limit)).strip("。；;，,: ")


def build_pairs(records: Sequence[Record], config: AdaptConfig, catalogue: Catalogue | None = None) -> PairSet:
    """Every training pair for ``records`` (guides and FAQ entries), in a deterministic order
    (seeded by ``config.seed``)."""
    config.check()
    cat = catalogue or Catalogue(records)
    vocab = TitleVocabulary([g.title for g in cat.guides])
    rng = random.Random(config.seed)
    kinds = set(config.kinds)
    condition_guides = Counter(_clean(c) for g in cat.guides for c in set(g.conditions))
    pairs: list[Pair] = []
    dropped = 0
    used_negatives: Counter[int] = Counter()

    def add(kind: str, record: int, anchor: str, to_passage: bool = False) -> None:
        nonlocal dropped
        anchor = _clean(anchor)
        positive = cat.passages[record] if to_passage else cat.titles[record]
        if len(anchor) < 2 or anchor == positive or (not to_passage and anchor == cat.titles[record]):
            return
        equivalent = cat.equivalent(record, anchor)
        if cat.same_kind(record, equivalent) > MAX_EQUIVALENT:
            dropped += 1
            return
        negative, negative_record = None, -1
        if config.hard_negatives:
            options = [s for s in cat.siblings[record] if s not in equivalent
                       and (len(anchor) > SHORT_ANCHOR or anchor not in cat.titles[s])]
            if options:
                # Rotate through the siblings so one near-duplicate is not every pair's negative.
                negative_record = options[used_negatives[record] % len(options)]
                used_negatives[record] += 1
                negative = cat.passages[negative_record] if to_passage else cat.titles[negative_record]
        pairs.append(Pair(kind, anchor, positive, "passage" if to_passage else "query", record,
                          negative, negative_record, equivalent))

    for g, guide in enumerate(cat.records):
        if not isinstance(guide, Guide):
            continue
        title = cat.titles[g]
        main, brackets = split_title(title)
        short = [strip_region(main), *(strip_region(b) for b in brackets if len(b) >= 4)]
        short = [s for s in dict.fromkeys(short) if s and s != title]
        keywords: list[str] = []
        if "keyword" in kinds or "passage" in kinds:
            candidates = keyword_candidates(guide.title, vocab)
            keywords = _weighted_sample(candidates, config.keywords_per_guide, rng)
        if "keyword" in kinds:
            for keyword in keywords:
                add("keyword", g, keyword)
        if "abbrev" in kinds:
            abbrevs = abbreviation_candidates(guide.title, vocab)
            if abbrevs:
                add("abbrev", g, abbrevs[rng.randrange(len(abbrevs))])
        if "short_title" in kinds:
            for text in short:
                add("short_title", g, text)
        if "alias" in kinds:
            for alias in guide.aliases:
                add("alias", g, alias)
        if "question" in kinds:
            for question in guide.questions:
                add("question", g, question)
        if "condition" in kinds:
            conditions = [c for c in dict.fromkeys(_clean(c) for c in guide.conditions)
                          if len(c) >= 8 and not c.startswith("无") and condition_guides[c] <= 2]
            for condition in conditions[: config.conditions_per_guide]:
                add("condition", g, condition)
        if "material" in kinds and len(guide.materials) >= 2:
            add("material", g, "、".join(_clean(m.name, 30) for m in guide.materials[:5]))
        if "result" in kinds:
            for result in guide.results:
                add("result", g, result)
        if "passage" in kinds:
            anchors = [*short[:1], *keywords[:1]] or [title]
            for anchor in dict.fromkeys(anchors):
                add("passage", g, anchor, to_passage=True)

    for f, entry in enumerate(cat.records):
        if not isinstance(entry, FaqEntry):
            continue
        if "faq_alternative" in kinds:
            for alternative in entry.alternatives:
                add("faq_alternative", f, alternative)
        if "faq_answer" in kinds:
            add("faq_answer", f, entry.alternatives[0] if entry.alternatives else entry.question, to_passage=True)

    order = list(range(len(pairs)))
    rng.shuffle(order)
    shuffled = [pairs[i] for i in order]
    counts = dict(sorted(Counter(p.kind for p in shuffled).items()))
    faqs = sum(cat.is_faq)
    return PairSet(shuffled, counts, dropped, len(cat.records) - faqs, faqs)


def _weighted_sample(candidates: dict[str, float], k: int, rng: random.Random) -> list[str]:
    """``k`` distinct candidates, drawn with probability proportional to weight (deterministic)."""
    items = sorted(candidates.items(), key=lambda kv: (-kv[1], kv[0]))
    chosen: list[str] = []
    while items and len(chosen) < k:
        total = sum(w for _, w in items)
        pick = rng.random() * total
        for index, (text, weight) in enumerate(items):
            pick -= weight
            if pick <= 0 or index == len(items) - 1:
                chosen.append(text)
                items.pop(index)
                break
    return chosen


# --------------------------------------------------------------------------- the network


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _set_threads(threads: int) -> int:
    """Use ``threads`` torch threads; 0 keeps torch's own choice, which honours OMP_NUM_THREADS.

    Why not all cores: on a machine others use too, more threads than free cores make torch
    many times slower, so whoever runs this decides with OMP_NUM_THREADS (or ``--threads``).
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    return int(torch.get_num_threads())


def _load_tensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return dict(load_file(str(path)))


def _layer_count(model_dir: Path) -> int:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return int(config["num_hidden_layers"])


def _read_config(model_dir: Path) -> dict[str, Any]:
    return dict(json.loads((model_dir / "config.json").read_text(encoding="utf-8")))


def top_layer_names(model_dir: Path, layers: int) -> list[int]:
    total = _layer_count(model_dir)
    if not 1 <= layers <= total:
        raise BotError(f"cannot train the top {layers} layers of a {total}-layer model")
    return list(range(total - layers, total))


def _make_top_stack(config: dict[str, Any], tensors: dict[str, np.ndarray], layer_ids: Sequence[int]) -> Any:
    """The top layers as a small torch module, loaded from ``tensors`` (BertModel names).

    Written out rather than borrowed from ``transformers``' BertLayer because that class's
    call signature and mask format change between releases; this is the same arithmetic
    (post-LayerNorm BERT, exact GELU), checked against transformers' BertModel in
    ``tests/test_adapt.py``.
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    inter = int(config["intermediate_size"])
    eps = float(config.get("layer_norm_eps", 1e-12))
    p_hidden = float(config.get("hidden_dropout_prob", 0.1))
    p_attn = float(config.get("attention_probs_dropout_prob", 0.1))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query = nn.Linear(hidden, hidden)
            self.key = nn.Linear(hidden, hidden)
            self.value = nn.Linear(hidden, hidden)
            self.attn_out = nn.Linear(hidden, hidden)
            self.attn_norm = nn.LayerNorm(hidden, eps=eps)
            self.inter = nn.Linear(hidden, inter)
            self.out = nn.Linear(inter, hidden)
            self.out_norm = nn.LayerNorm(hidden, eps=eps)

        def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            b, t, _ = h.shape

            def split(x: torch.Tensor) -> torch.Tensor:
                return x.view(b, t, heads, hidden // heads).transpose(1, 2)

            q, k, v = split(self.query(h)), split(self.key(h)), split(self.value(h))
            drop = p_attn if self.training else 0.0
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
            a = a.transpose(1, 2).reshape(b, t, hidden)
            a = F.dropout(self.attn_out(a), p_hidden, self.training)
            h = self.attn_norm(a + h)
            f = F.dropout(self.out(F.gelu(self.inter(h))), p_hidden, self.training)
            return self.out_norm(f + h)

    class Stack(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList([Block() for _ in layer_ids])

        def forward(self, h: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
            """Mean-pooled (every unpadded token, as sentence-transformers does), L2-normalised."""
            additive = (1.0 - attention[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
            for block in self.blocks:
                h = block(h, additive)
            m = attention[:, :, None].to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return F.normalize(pooled, dim=-1)

    stack = Stack()
    with torch.no_grad():
        for block, layer in zip(stack.blocks, layer_ids, strict=True):
            for ours, theirs in _PARAM_NAMES:
                for suffix in ("weight", "bias"):
                    target = getattr(getattr(block, ours), suffix)
                    source = tensors[f"encoder.layer.{layer}.{theirs}.{suffix}"]
                    target.copy_(torch.from_numpy(np.asarray(source, dtype=np.float32)))
    return stack


#: (attribute in the Block above, name under ``encoder.layer.N`` in BertModel's state dict)
_PARAM_NAMES = (
    ("query", "attention.self.query"),
    ("key", "attention.self.key"),
    ("value", "attention.self.value"),
    ("attn_out", "attention.output.dense"),
    ("attn_norm", "attention.output.LayerNorm"),
    ("inter", "intermediate.dense"),
    ("out", "output.dense"),
    ("out_norm", "output.LayerNorm"),
)


def stack_tensors(stack: Any, layer_ids: Sequence[int]) -> dict[str, np.ndarray]:
    """The stack's weights under BertModel's names, rounded to fp16 (the part's format)."""
    out: dict[str, np.ndarray] = {}
    for block, layer in zip(stack.blocks, layer_ids, strict=True):
        for ours, theirs in _PARAM_NAMES:
            for suffix in ("weight", "bias"):
                value = getattr(getattr(block, ours), suffix).detach().cpu().numpy()
                out[f"encoder.layer.{layer}.{theirs}.{suffix}"] = value.astype(np.float16)
    return out


class LowerCache:
    """The frozen lower layers' output for a set of texts, computed once and kept in fp16.

    Why: with only the top layers training, every epoch (and every evaluation of a
    candidate configuration) would otherwise recompute the same frozen 2/3 of the network.
    Texts are tokenised exactly as sentence-transformers does (prompt + text, cut at
    ``max_tokens``), so the cache plus the top layers equals the full model.
    """

    def __init__(self, model_dir: Path, lower_layers: int, max_tokens: int) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.model_dir = model_dir
        self.lower_layers = lower_layers
        self.max_tokens = max_tokens
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModel.from_pretrained(str(model_dir), add_pooling_layer=False)
        model.encoder.layer = model.encoder.layer[:lower_layers]
        model.eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        self._model = model
        self._torch = torch
        self.index: dict[str, int] = {}
        self._chunks: list[Any] = []  # per text: fp16 tensor [tokens, hidden]

    def __len__(self) -> int:
        return len(self.index)

    def add(self, texts: Iterable[str], batch: int = 128, progress: Callable[[int, int], None] | None = None) -> None:
        """Encode the texts not yet cached (each already carrying its prompt)."""
        torch = self._torch
        todo = sorted({t for t in texts if t not in self.index}, key=len)
        done = 0
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            tokens = self.tokenizer(chunk, truncation=True, max_length=self.max_tokens, padding=True,
                                    return_tensors="pt")
            with torch.inference_mode():
                out = self._model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
            states = out.last_hidden_state.to(torch.float16)
            lengths = tokens["attention_mask"].sum(1).tolist()
            for text, state, length in zip(chunk, states, lengths, strict=True):
                self.index[text] = len(self._chunks)
                self._chunks.append(state[: int(length)].clone())
            done += len(chunk)
            if progress:
                progress(done, len(todo))

    def batch(self, texts: Sequence[str]) -> tuple[Any, Any]:
        """Padded float32 states [n, tokens, hidden] and the attention mask [n, tokens]."""
        torch = self._torch
        chunks = [self._chunks[self.index[t]] for t in texts]
        width = max(c.shape[0] for c in chunks)
        states = torch.zeros(len(chunks), width, chunks[0].shape[1], dtype=torch.float32)
        mask = torch.zeros(len(chunks), width, dtype=torch.long)
        for i, c in enumerate(chunks):
            states[i, : c.shape[0]] = c.float()
            mask[i, : c.shape[0]] = 1
        return states, mask

    def tokens(self) -> int:
        return sum(int(c.shape[0]) for c in self._chunks)

    def length(self, text: str) -> int:
        return int(self._chunks[self.index[text]].shape[0])


def embed(stack: Any, cache: LowerCache, texts: Sequence[str], chunk: int = 32) -> Any:
    """Vectors for cached ``texts`` through ``stack``, in order, gradients kept.

    Why the chunks: a batch mixes 8-token keywords with 48-token conditions and passages;
    padded together, most of the work would be padding. Sorted by length and cut into
    chunks, each chunk is padded only to its own longest text (about 3x less work).
    """
    import torch

    order = sorted(range(len(texts)), key=lambda i: (cache.length(texts[i]), i))
    parts = []
    for start in range(0, len(order), chunk):
        idx = order[start : start + chunk]
        parts.append(stack(*cache.batch([texts[i] for i in idx])))
    vectors = torch.cat(parts)
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return vectors[inverse]


def prompted(kind: str, text: str) -> str:
    return PROMPTS[kind] + text


def encode_cached(cache: LowerCache, stack: Any, texts: Sequence[str], batch: int = 128) -> np.ndarray:
    """Vectors for ``texts`` (prompted, already cached) through the top layers, in eval mode."""
    torch = cache._torch
    stack.eval()
    out = []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            states, mask = cache.batch([texts[i] for i in idx])
            out.append((idx, stack(states, mask).numpy()))
    vectors = np.zeros((len(texts), int(out[0][1].shape[1]) if out else 0), dtype=np.float32)
    for idx, block in out:
        vectors[idx] = block
    return vectors


# --------------------------------------------------------------------------- training


@dataclass
class TrainStats:
    steps: int = 0
    seconds_pairs: float = 0.0
    seconds_cache: float = 0.0
    seconds_train: float = 0.0
    cached_texts: int = 0
    cached_tokens: int = 0
    losses: list[float] = field(default_factory=list)


def _loss(stack: Any, cache: LowerCache, batch: Sequence[Pair], scale: float) -> Any:
    """MultipleNegativesRankingLoss with the equally-right records masked out.

    Columns are the batch's positives, then its hard negatives; row i's target is column i.
    A column whose record is equally right for row i's anchor (its own record's other texts,
    twins, linked FAQ entries and guides, records whose name contains the keyword) is neither
    target nor negative.
    """
    import torch
    from torch.nn import functional as F

    negatives = [p for p in batch if p.negative is not None]
    texts = [prompted("query", p.anchor) for p in batch]
    texts += [prompted(p.positive_kind, p.positive) for p in batch]
    texts += [prompted(p.positive_kind, p.negative or "") for p in negatives]
    vectors = embed(stack, cache, texts)
    anchors, candidates = vectors[: len(batch)], vectors[len(batch) :]
    column_records = [p.record for p in batch] + [p.negative_record for p in negatives]
    scores = anchors @ candidates.T * scale
    mask = torch.zeros_like(scores, dtype=torch.bool)
    for i, pair in enumerate(batch):
        for j, record in enumerate(column_records):
            if j != i and record in pair.equivalent:
                mask[i, j] = True
    scores = scores.masked_fill(mask, float("-inf"))
    return F.cross_entropy(scores, torch.arange(len(batch)))


def train(
    model_dir: Path,
    records: Sequence[Record],
    config: AdaptConfig,
    *,
    say: Callable[[str], None] = lambda _: None,
    cache: LowerCache | None = None,
) -> tuple[dict[str, np.ndarray], PairSet, TrainStats, LowerCache]:
    """Train the top layers on pairs made from ``records``; return their fp16 weights.

    ``cache`` may be one from an earlier call with the same base, layer split and
    ``max_tokens`` (experiments reuse it); texts it lacks are added.
    """
    import torch

    config.check()
    threads = _set_threads(config.threads)
    _seed_everything(config.seed)
    stats = TrainStats()
    started = time.perf_counter()
    pair_set = build_pairs(records, config)
    stats.seconds_pairs = round(time.perf_counter() - started, 1)
    say(f"{len(pair_set.pairs)} pairs from {pair_set.guides} guides and {pair_set.faqs} FAQ entries "
        f"{pair_set.counts} "
        f"({pair_set.dropped_generic} generic anchors dropped) in {stats.seconds_pairs} s")

    layer_ids = top_layer_names(model_dir, config.layers)
    lower = layer_ids[0]
    if cache is None or cache.lower_layers != lower or cache.max_tokens != config.max_tokens:
        cache = LowerCache(model_dir, lower, config.max_tokens)
    texts = {prompted("query", p.anchor) for p in pair_set.pairs}
    texts |= {prompted(p.positive_kind, p.positive) for p in pair_set.pairs}
    texts |= {prompted(p.positive_kind, p.negative) for p in pair_set.pairs if p.negative}
    started = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            say(f"  caching the lower {lower} layers: {done}/{total}")

    cache.add(texts, progress=progress)
    stats.seconds_cache = round(time.perf_counter() - started, 1)
    stats.cached_texts, stats.cached_tokens = len(cache), cache.tokens()
    say(f"cached {len(texts)} texts ({stats.cached_tokens} tokens) through layers 0-{lower - 1} "
        f"in {stats.seconds_cache} s")

    _seed_everything(config.seed)
    tensors = _load_tensors(model_dir / BASE_WEIGHTS)
    stack = _make_top_stack(_read_config(model_dir), tensors, layer_ids)
    del tensors
    steps_per_epoch = len(pair_set.pairs) // config.batch
    total = max(1, round(steps_per_epoch * config.epochs))
    optimizer = torch.optim.AdamW(stack.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warmup = int(total * config.warmup)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    rng = random.Random(config.seed)
    started = time.perf_counter()
    stack.train()
    order: list[int] = []
    for step in range(total):
        if len(order) < config.batch:
            epoch = list(range(len(pair_set.pairs)))
            if step:  # the first epoch uses the builder's (seeded) order; later ones reshuffle
                rng.shuffle(epoch)
            order += epoch
        batch = [pair_set.pairs[i] for i in order[: config.batch]]
        del order[: config.batch]
        loss = _loss(stack, cache, batch, config.scale)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(stack.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        stats.losses.append(round(float(loss.item()), 4))
        if step % 25 == 0 or step == total - 1:
            recent = stats.losses[-25:]
            say(f"  step {step + 1}/{total} loss {sum(recent) / len(recent):.3f} "
                f"({time.perf_counter() - started:.0f} s)")
    stats.steps = total
    stats.seconds_train = round(time.perf_counter() - started, 1)
    say(f"trained {config.layers} layers for {total} steps in {stats.seconds_train} s on {threads} threads")
    return stack_tensors(stack, layer_ids), pair_set, stats, cache


# --------------------------------------------------------------------------- part and model


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _base_identity(base_dir: Path) -> dict[str, Any]:
    """What the part was trained on top of; a rebuild refuses any other base."""
    if not (base_dir / BASE_WEIGHTS).is_file():
        raise ModelMissing(f"{base_dir}: no base model here; run `make model` to prepare it offline")
    return {**_base_label(base_dir), "weights_sha256": _sha256(base_dir / BASE_WEIGHTS)}


def _base_label(base_dir: Path) -> dict[str, Any]:
    """What the base model's manifest and weights file say about it, without hashing 470 MB."""
    manifest_path = base_dir / MODEL_MANIFEST
    meta = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    weights = base_dir / BASE_WEIGHTS
    return {
        "name": str(meta.get("name") or base_dir.name),
        "source_sha256": (meta.get("source") or {}).get("sha256"),
        "weights_bytes": weights.stat().st_size if weights.is_file() else None,
    }


def save_part(
    part_dir: Path,
    tensors: dict[str, np.ndarray],
    *,
    base_dir: Path,
    config: AdaptConfig,
    pair_set: PairSet,
    stats: TrainStats,
    knowledge_fingerprint: str,
) -> dict[str, Any]:
    """Write the part (fp16 layers + manifest) into ``part_dir``, replacing what was there."""
    import torch
    from safetensors.numpy import save_file

    part_dir.mkdir(parents=True, exist_ok=True)
    weights = part_dir / PART_WEIGHTS
    save_file(tensors, str(weights), metadata={"format": "pt"})
    weights.chmod(0o644)
    layers = sorted({int(name.split(".")[2]) for name in tensors})
    manifest = {
        "adapter_version": ADAPTER_VERSION,
        "what": "top transformer layers of multilingual-e5-small, fine-tuned on pairs made from the guides' "
                "and FAQ entries' own fields",
        "base": _base_identity(base_dir),
        "layers": layers,
        "dtype": "float16",
        "file": PART_WEIGHTS,
        "bytes": weights.stat().st_size,
        "sha256": _sha256(weights),
        "seed": config.seed,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "training_data": {
            "knowledge_fingerprint": knowledge_fingerprint,
            "guides": pair_set.guides,
            "faqs": pair_set.faqs,
            "pairs": len(pair_set.pairs),
            "pairs_by_kind": pair_set.counts,
            "generic_anchors_dropped": pair_set.dropped_generic,
            "pairs_sha256": pair_set.fingerprint(),
        },
        "steps": stats.steps,
        "final_loss": round(sum(stats.losses[-25:]) / max(1, len(stats.losses[-25:])), 4),
        "seconds": {"pairs": stats.seconds_pairs, "cache": stats.seconds_cache, "train": stats.seconds_train},
        "cached_texts": stats.cached_texts,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (part_dir / PART_MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                          encoding="utf-8")
    return manifest


def read_part(part_dir: Path) -> dict[str, Any]:
    """The part's manifest, after checking its weights file is the one it describes."""
    return read_part_manifest(part_dir, PART_MANIFEST, ("adapter_version", ADAPTER_VERSION),
                              missing="no adaptation here; run `make adapt` "
                                      "(python -m bot.knowledge.embedding.adapt train)",
                              retrain="retrain it")


def read_part_manifest(part_dir: Path, manifest_name: str, version: tuple[str, str], *, missing: str,
                       retrain: str) -> dict[str, Any]:
    """A committed part's manifest (``manifest_name`` in ``part_dir``), checked: this code's format
    (``version``: the key and the value it reads) and the weights file's hash. Shared by the
    adaptation and the query student's distillation, whose parts are stored the same way.

    Raises:
        ModelMissing: no manifest (``missing`` says what to run), unreadable, another format
            (``retrain`` says how to remake it), or weights that are not the ones described.
    """
    path = part_dir / manifest_name
    try:
        manifest = dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ModelMissing(f"{part_dir}: {missing}") from None
    except ValueError as exc:
        raise ModelMissing(f"{path}: unreadable ({exc})") from None
    key, expected = version
    if manifest.get(key) != expected:
        raise ModelMissing(f"{path}: made by {key.replace('_', ' ')} {manifest.get(key)!r}, "
                           f"this code reads {expected}; {retrain}")
    weights = part_dir / str(manifest.get("file", PART_WEIGHTS))
    if not weights.is_file() or _sha256(weights) != manifest.get("sha256"):
        raise ModelMissing(f"{weights}: missing or not the file {manifest_name} describes")
    return manifest


def model_name(part: dict[str, Any]) -> str:
    """The adapted model's name: differs from the base's and between any two parts."""
    layers = part["layers"]
    return f"multilingual-e5-small-adapted (layers {layers[0]}-{layers[-1]}, part {part['sha256'][:12]})"


def stale_reason(out_dir: Path, part_dir: Path, base_dir: Path | None = None) -> str | None:
    """Why ``out_dir`` is not the model ``part_dir`` (on ``base_dir``) describes, or ``None`` when it is.

    Cheap (no weights are hashed): the part's hash, the adapter version, the size of every file,
    and the base model's name, source and weights size as its manifest and file give them.
    """
    try:
        manifest = json.loads((out_dir / MODEL_MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no adapted model yet"
    except (OSError, ValueError) as exc:
        return f"{MODEL_MANIFEST} unreadable ({exc})"
    part = read_part(part_dir)
    recorded = manifest.get("adaptation") or {}
    if recorded.get("sha256") != part["sha256"] or manifest.get("adapter_version") != ADAPTER_VERSION:
        return "the adaptation has changed"
    for name, size in (manifest.get("files") or {}).items():
        path = out_dir / name
        if not path.is_file() or path.stat().st_size != size:
            return f"{name} is missing or has changed size"
    if base_dir is not None:
        recorded_base = manifest.get("base") or {}
        label = _base_label(base_dir)
        if any(recorded_base.get(k) != v for k, v in label.items()):
            return f"the base model in {base_dir} has changed"
    return None


def rebuild(base_dir: Path, part_dir: Path, out_dir: Path, *, force: bool = False) -> Path:
    """Write the adapted model folder (base model with the part's layers) at ``out_dir``.

    Idempotent and deterministic: nothing is written when ``out_dir`` already holds this part's
    model on this base, and a forced rebuild writes the same bytes. The folder is assembled
    next to ``out_dir`` and renamed into place when complete.

    Raises:
        ModelMissing: the base model or the part is missing, or the base is not the one the
            part was trained on (its lower layers would not produce what the part expects).
    """
    from safetensors.numpy import save_file

    part = read_part(part_dir)
    if not force and stale_reason(out_dir, part_dir, base_dir) is None:
        return out_dir
    base = _base_identity(base_dir)
    if base["weights_sha256"] != part["base"]["weights_sha256"]:
        raise ModelMissing(
            f"{base_dir}: not the base model the adaptation in {part_dir} was trained on "
            f"(weights {base['weights_sha256'][:12]}, expected {part['base']['weights_sha256'][:12]}); "
            f"run `make model`, or retrain with `python -m bot.knowledge.embedding.adapt train`"
        )
    tensors = _load_tensors(base_dir / BASE_WEIGHTS)
    layers = _load_tensors(part_dir / part["file"])
    unknown = sorted(set(layers) - set(tensors))
    if unknown:
        raise ModelMissing(f"{part_dir}: tensors the base model does not have: {unknown[:3]}")
    for name, value in layers.items():
        tensors[name] = value.astype(np.float32)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        copy_model_files(base_dir, scratch, (BASE_WEIGHTS, MODEL_MANIFEST))
        save_file(tensors, str(scratch / BASE_WEIGHTS), metadata={"format": "pt"})
        base_meta_path = base_dir / MODEL_MANIFEST
        base_meta = json.loads(base_meta_path.read_text(encoding="utf-8")) if base_meta_path.is_file() else {}
        manifest = {
            "name": model_name(part),
            "dimension": base_meta.get("dimension"),
            "max_seq_length": base_meta.get("max_seq_length"),
            "prompts": base_meta.get("prompts", PROMPTS),
            "adapter_version": ADAPTER_VERSION,
            "base": base,
            # What bot.knowledge.index records in the index manifest. No assembly time stamp: a rebuild
            # anywhere writes the same bytes.
            "adaptation": {k: part[k] for k in ("sha256", "layers", "seed", "training_data", "steps", "trained_at")},
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


@dataclass(frozen=True)
class _Defaults:
    base: Path
    knowledge: tuple[Path, ...]
    part: Path
    out: Path
    max_tokens: int


def _defaults() -> _Defaults:
    from bot.settings import ROOT, load_settings

    settings = load_settings()
    base = ROOT / "var" / "models" / "multilingual-e5-small"
    if settings.model_dir.name != "multilingual-e5-small-adapted":
        base = settings.model_dir
    return _Defaults(base, settings.knowledge_roots, ROOT / "knowledge" / "adaptation",
                     ROOT / "var" / "models" / "multilingual-e5-small-adapted", settings.max_tokens)


def _config_from(args: argparse.Namespace, max_tokens: int | None = None) -> AdaptConfig:
    """The default configuration, cut at ``max_tokens`` (GUIDE_MAX_TOKENS), with the options given."""
    config = AdaptConfig() if max_tokens is None else AdaptConfig(max_tokens=max_tokens)
    changes: dict[str, Any] = {}
    for name in ("layers", "epochs", "lr", "batch", "max_tokens", "seed", "keywords_per_guide", "threads"):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    if getattr(args, "kinds", None):
        changes["kinds"] = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if getattr(args, "no_hard_negatives", False):
        changes["hard_negatives"] = False
    return replace(config, **changes)


def _note_knowledge_drift(part_dir: Path, roots: Sequence[Path]) -> None:
    """Say so when the knowledge changed since the part was trained (it still works, less well)."""
    from bot.knowledge.base import fingerprint

    trained_on = read_part(part_dir)["training_data"]["knowledge_fingerprint"]
    roots = [r for r in roots if r.exists()]
    if roots and fingerprint(*roots) != trained_on:
        print(f"note: the knowledge in {', '.join(map(str, roots))} changed since this adaptation was trained "
              f"(on {trained_on[:12]}); new guides are found with the adapted model all the same, "
              f"but `make adapt` would teach it their names too")


def main(argv: list[str] | None = None) -> int:
    """Command line: train the part and assemble the model, or assemble it from a committed part."""
    defaults = _defaults()
    base, knowledge, part, out = defaults.base, defaults.knowledge, defaults.part, defaults.out
    where = ", ".join(map(str, knowledge))
    parser = argparse.ArgumentParser(prog="python -m bot.knowledge.embedding.adapt",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=base, help=f"base model folder (default {base})")
    parser.add_argument("--part", type=Path, default=part, help=f"the adapted part's folder (default {part})")
    parser.add_argument("--out", type=Path, default=out, help=f"adapted model folder (default {out})")
    sub = parser.add_subparsers(dest="command")
    t = sub.add_parser("train", help="make pairs, train the top layers, write the part and the model")
    t.add_argument("--knowledge", type=Path, action="append",
                   help=f"guide/FAQ folder or file, repeatable (default {where}: GUIDE_KNOWLEDGE_DIR, GUIDE_FAQ_DIR)")
    for name, kind in (("layers", int), ("epochs", float), ("lr", float), ("batch", int),
                       ("max-tokens", int), ("seed", int), ("keywords-per-guide", int), ("threads", int)):
        t.add_argument(f"--{name}", type=kind)
    t.add_argument("--kinds", help=f"comma-separated pair kinds (of {', '.join(PAIR_KINDS)})")
    t.add_argument("--no-hard-negatives", action="store_true")
    r = sub.add_parser("rebuild", help="assemble the model from the base and the part (nothing if current)")
    r.add_argument("--force", action="store_true")
    p = sub.add_parser("pairs", help="print a sample of the training pairs and their counts")
    p.add_argument("--knowledge", type=Path, action="append", help=f"as for train (default {where})")
    p.add_argument("--show", type=int, default=30)
    p.add_argument("--kinds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    command = args.command or "rebuild"
    roots: tuple[Path, ...] = tuple(getattr(args, "knowledge", None) or knowledge)
    try:
        started = time.perf_counter()
        if command == "pairs":
            from bot.knowledge.base import KnowledgeBase

            config = _config_from(args, defaults.max_tokens)
            pair_set = build_pairs(KnowledgeBase.load(*roots).records(), config)
            print(f"{len(pair_set.pairs)} pairs from {pair_set.guides} guides and {pair_set.faqs} FAQ entries "
                  f"{pair_set.counts}; {pair_set.dropped_generic} generic dropped")
            for pair in pair_set.pairs[: args.show]:
                print(f"[{pair.kind}] {pair.anchor}  ->  {pair.positive[:60]}  |  neg: {(pair.negative or '')[:40]}")
            return 0
        if command == "train":
            from bot.knowledge.base import KnowledgeBase, fingerprint

            config = _config_from(args, defaults.max_tokens)
            kb: KnowledgeBase = KnowledgeBase.load(*roots)
            if len(kb) == 0:
                raise BotError(f"no guides under {', '.join(map(str, roots))}")
            tensors, pair_set, stats, _ = train(args.base, kb.records(), config, say=lambda s: print(s, flush=True))
            # The same fingerprint `knowledge build-index` stamps on the index built from these roots.
            manifest = save_part(args.part, tensors, base_dir=args.base, config=config, pair_set=pair_set,
                                 stats=stats, knowledge_fingerprint=fingerprint(*roots))
            print(f"{args.part}: {manifest['bytes'] / 1e6:.1f} MB, layers {manifest['layers']}, "
                  f"sha256 {manifest['sha256'][:12]}")
            rebuild(args.base, args.part, args.out, force=True)
        else:
            reason = "--force" if args.force else stale_reason(args.out, args.part, args.base)
            if reason is None:
                print(f"{args.out}: already current, nothing to do ({time.perf_counter() - started:.1f} s)")
                return 0
            print(f"{args.out}: assembling from {args.base} + {args.part} ({reason})", flush=True)
            rebuild(args.base, args.part, args.out, force=True)
            _note_knowledge_drift(args.part, roots)
        name = json.loads((args.out / MODEL_MANIFEST).read_text(encoding="utf-8"))["name"]
        print(f"{args.out}: wrote {name} in {time.perf_counter() - started:.1f} s")
        return 0
    except BotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
