"""The knowledge base's own names in a sentence: items, materials, regions, departments, life events.

A citizen's sentence names things the knowledge base knows: "我在广州，办护照去哪里" names a region
(广州 -> 广东省广州市) and an item (护照); "要带户口本吗" names a material; "去公安局办" a department.
Retrieval uses the regions and departments as filters for that sentence's question; the
conversation uses items to tell a new question from a follow-up about the item under discussion,
and materials to resolve "要带X吗" against the item's list.

The names come from the knowledge base, never from code: :func:`patterns` derives them from the
records when the index is built (``entities.jsonl`` beside the index), so an office that imports its
own region's guides gets its own place, office and item names. :class:`EntityFinder` runs them
through spaCy: a blank ``zh`` pipeline segmenting with jieba, whose dictionary is given every name
(so a name is one token wherever it appears), and a ``PhraseMatcher`` that reports every label of a
span (户口本 is a material and part of an item's alias at once).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.knowledge.model import Guide, Record
from bot.knowledge.text import normalize

log = logging.getLogger(__name__)

LABELS = ("ITEM", "MATERIAL", "REGION", "DEPARTMENT", "LIFE_EVENT")
FILE = "entities.jsonl"

_LEVEL = re.compile(r"(特别行政区|自治州|自治区|地区|街道|省|市|盟|县|区|镇)$")
_BRACKETS = re.compile(r"[(（][^)）]*[)）]")
#: How department names end (stripped to find their distinctive stem) and stems too generic to count.
_DEPT_SUFFIX = re.compile(r"(管理局|管理所|管理部门|委员会|办公室|总局|局|厅|所|处|委|中心|部门|机关|机构)$")
_DEPT_IGNORED = {"人民政府", "政府", "有限责任公司", "研究", "协会", "学会"}
_DEPT_SUFFIXES = ("局", "厅", "所", "处", "委", "部", "部门", "机关", "中心", "办")
#: Names too short or too common to mean anything on their own.
_MIN_CHARS = 2
_MAX_CHARS = 30
_IGNORED = {"申请", "办理", "证明", "材料", "其他", "登记", "服务", "公告", "备案", "许可", "审批"}


@dataclass(frozen=True)
class Entity:
    """One name found in a sentence: its label, the words as typed, what it stands for (a guide id,
    a full region, a department stem, a material name, an event), and where it is."""

    label: str
    text: str
    keys: tuple[str, ...]
    start: int
    end: int


def region_parts(region: str) -> list[str]:
    """'广东省广州市天河区' -> ['广东省', '广州市', '天河区'] (each level ends in its level word)."""
    return re.findall(r".+?(?:特别行政区|自治州|自治区|地区|省|市|盟|县|区)", region) or [region]


def place_names(part: str) -> set[str]:
    """A region level and its short form: 广州市 -> {广州市, 广州}."""
    names = {part}
    short = _LEVEL.sub("", part)
    if len(short) >= 2:
        names.add(short)
    return names


def department_stems(name: str, regions: Iterable[str] = ()) -> set[str]:
    """The distinctive part of a department name: 广州市公安局 -> {公安}; 广东省人力资源和社会保障厅 ->
    {人力资源和社会保障}; 公安机关交通管理部门（车辆管理所） -> {公安, 公安机关交通, 车辆}."""
    text = normalize(name, limit=0)
    pieces = [_BRACKETS.sub("", text), *re.findall(r"[(（]([^)）]*)[)）]", text)]
    prefixes = sorted({p for r in regions for part in region_parts(r) for p in place_names(part)},
                      key=len, reverse=True)
    stems: set[str] = set()
    for piece in pieces:
        for chunk in re.split(r"[、，,；;]", piece):
            stem = chunk.strip()
            changed = True
            while changed:
                changed = False
                for prefix in (*prefixes, "国家税务总局", "县级人民政府", "县级以上", "县级", "县区", "中共"):
                    if stem.startswith(prefix) and len(stem) > len(prefix) + 1:
                        stem, changed = stem[len(prefix):], True
                stripped = _DEPT_SUFFIX.sub("", stem)
                if stripped != stem and len(stripped) >= 2:
                    stem, changed = stripped, True
            if len(stem) >= 2 and stem not in _DEPT_IGNORED and len(stem) <= 12:
                stems.add(stem)
                if stem.startswith("公安") and stem != "公安":
                    stems.add("公安")
    return stems


def _item_names(guide: Guide, prefixes: Sequence[str]) -> set[str]:
    title = normalize(guide.title, limit=0)
    names = {title, _BRACKETS.sub("", title)}
    for prefix in prefixes:
        if title.startswith(prefix) and len(title) > len(prefix) + 2:
            names.add(_BRACKETS.sub("", title[len(prefix):]))
    names |= {normalize(a, limit=0) for a in guide.aliases}
    return names


def patterns(records: Iterable[Record]) -> list[dict[str, Any]]:
    """Every name of the knowledge base with its label and what it stands for."""
    records = list(records)
    guides = [r for r in records if isinstance(r, Guide)]
    regions = {g.region for g in guides if g.region and not g.sample}
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    places: dict[str, str] = {}
    for region in sorted(regions, key=len):
        parts = region_parts(region)
        for depth in range(1, len(parts) + 1):
            for name in place_names(parts[depth - 1]):
                places.setdefault(name, "".join(parts[:depth]))
    for name, full in places.items():
        found[("REGION", name)].add(full)
    prefixes = sorted(places, key=len, reverse=True)
    for guide in guides:
        for name in _item_names(guide, prefixes):
            found[("ITEM", name)].add(guide.id)
        for material in guide.materials:
            name = normalize(material.name, limit=0)
            for form in {name, _BRACKETS.sub("", name)}:
                found[("MATERIAL", form)].add(material.name)
        if guide.department:
            found[("DEPARTMENT", normalize(guide.department, limit=0))] |= department_stems(guide.department, regions)
            for stem in department_stems(guide.department, regions):
                for suffix in _DEPT_SUFFIXES:
                    found[("DEPARTMENT", stem + suffix)].add(stem)
        for event in guide.life_events:
            found[("LIFE_EVENT", event)].add(event)
            if event.endswith("一件事") and len(event) > 4:
                found[("LIFE_EVENT", event[:-3])].add(event)
    out = []
    for (label, name), keys in sorted(found.items()):
        if _MIN_CHARS <= len(name) <= _MAX_CHARS and name not in _IGNORED and keys:
            out.append({"label": label, "pattern": name, "keys": sorted(keys)})
    return out


def write_patterns(records: Iterable[Record], path: Path) -> int:
    """Write :func:`patterns` as JSON Lines (at index build); returns how many were written."""
    rows = patterns(records)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)


def read_patterns(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


class EntityFinder:
    """spaCy (blank zh, jieba) + PhraseMatcher over the knowledge base's names; built on first use."""

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self._rows = list(rows)
        self._keys: dict[tuple[str, str], tuple[str, ...]] = {
            (r["label"], r["pattern"]): tuple(r["keys"]) for r in self._rows}
        self._nlp: Any = None
        self._matcher: Any = None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, index_dir: Path, records: Sequence[Record] = ()) -> EntityFinder:
        """The names written beside an index, or (an index built before they were) made from ``records``."""
        path = index_dir / FILE
        if path.is_file():
            return cls(read_patterns(path))
        log.warning("%s missing: entity names made from the records (rebuild the index to store them)", path)
        return cls(patterns(records))

    @classmethod
    def from_records(cls, records: Sequence[Record]) -> EntityFinder:
        return cls(patterns(records))

    def _build(self) -> None:
        import jieba
        from spacy.lang.zh import Chinese
        from spacy.matcher import PhraseMatcher

        nlp = Chinese.from_config({"nlp": {"tokenizer": {"segmenter": "jieba"}}})
        # A tokenizer of our own: the knowledge base's names must not leak into other users of jieba.
        segmenter = jieba.Tokenizer()
        segmenter.initialize()
        for row in self._rows:
            segmenter.add_word(row["pattern"], freq=max(1000, 10 ** min(len(row["pattern"]), 6)))
        for row in self._rows:
            if row["label"] == "DEPARTMENT":
                # jieba's own dictionary has "省公安厅", "市公安局" as words, which would hide the office
                # name inside them: "省" / "市" before an office stays a token of its own.
                for level in ("省", "市"):
                    if segmenter.FREQ.get(level + row["pattern"]):
                        segmenter.del_word(level + row["pattern"])
        nlp.tokenizer.jieba_seg = segmenter  # type: ignore[union-attr]
        matcher = PhraseMatcher(nlp.vocab)
        by_label: dict[str, list[Any]] = defaultdict(list)
        for row in self._rows:
            by_label[row["label"]].append(nlp.make_doc(row["pattern"]))
        for label, docs in by_label.items():
            matcher.add(label, docs)
        self._nlp, self._matcher = nlp, matcher

    def find(self, text: str, labels: Iterable[str] = LABELS) -> list[Entity]:
        """The names in ``text`` (normalised first), longest first where they overlap within a label."""
        wanted = set(labels)
        text = normalize(text, limit=0)
        if not text:
            return []
        with self._lock:
            if self._nlp is None:
                self._build()
            doc = self._nlp.make_doc(text)
            matches = self._matcher(doc)
        out: list[Entity] = []
        for match_id, start, end in matches:
            label = self._nlp.vocab.strings[match_id]
            if label not in wanted:
                continue
            span = doc[start:end]
            keys = self._keys.get((label, span.text))
            if keys:
                out.append(Entity(label, span.text, keys, span.start_char, span.end_char))
        out.sort(key=lambda e: (e.start, -(e.end - e.start)))
        kept: list[Entity] = []
        for entity in out:  # within a label, a longer name wins over the names inside it
            if any(k.label == entity.label and k.start <= entity.start and entity.end <= k.end and k != entity
                   for k in kept):
                continue
            kept.append(entity)
        return kept

    def regions(self, text: str) -> set[str]:
        return {key for e in self.find(text, ("REGION",)) for key in e.keys}

    def departments(self, text: str) -> set[str]:
        return {key for e in self.find(text, ("DEPARTMENT",)) for key in e.keys}

    def items(self, text: str) -> list[Entity]:
        return self.find(text, ("ITEM",))
