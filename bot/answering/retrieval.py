"""Finding the guide or FAQ entry a citizen means.

Candidates come from two sides: the dense side (the e5 embedding of the question against every
record's vectors) finds paraphrases; a character n-gram TF-IDF over names and aliases rescues
exact terms the embedding blurs (证件 names, 公积金, item codes). Each candidate is then described
by a few features and ordered by the learned ranker of :mod:`bot.answering.ranking`. A region or office the
citizen names ("在广州", "公安局") drops records tied to another place and counts for those of that
place or office (:mod:`bot.answering.scope`). Then one of three outcomes:

* ``clear``: answer the best record;
* ``ambiguous``: the top candidates are too close to call — offer them as buttons;
* ``none``: nothing fits — say so and give the next step (phone, window). This is decided
  by the calibrated model of :mod:`bot.answering.calibration` when one fits this knowledge base and
  model, otherwise by the ``GUIDE_MIN_SCORE`` threshold.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

import numpy as np

from bot.answering.answers import core_title
from bot.answering.calibration import NothingFits
from bot.answering.ranking import HOW_TO, SHORT_QUERY, YES_NO, Ranker, fallback_score, features
from bot.answering.scope import Mentions, Scope
from bot.knowledge.embedding.encoder import Encoder
from bot.knowledge.homophones import Homophones
from bot.knowledge.index import FIELDS, LoadedIndex
from bot.knowledge.model import FaqEntry, Guide, Record
from bot.knowledge.synonyms import Synonyms
from bot.knowledge.text import has_content, normalize
from bot.settings import Settings

Status = Literal["clear", "ambiguous", "none", "empty"]

#: How many nearest vectors to pull from FAISS before grouping them by record.
DENSE_POOL = 64
#: How many lexical hits join the candidates even when the embedding missed them.
LEXICAL_POOL = 16
#: How many candidates (by the fixed blend) the ranker looks at closely.
RERANK = 24
#: What a search-box keyword says besides the thing it names ("驾照的事情", "房产证怎么办"): removed
#: before asking whether the thing names one item or a family of them.
_KEYWORD_FILLER = re.compile(
    r"怎么办理|怎样办理|如何办理|怎么办|怎么弄|怎么搞|怎样办|咋办|咋整|怎么|怎样|如何|的事情|的事儿|的事|相关的?"
    r"|手续|请问|我想|我要|一下|[吗呢啊呀吧？?！!，,。\s]"
)
#: What is left of "我在广州，…" / "住在天河区的话…" once the place is taken out.
_PLACE_LEAD = re.compile(r"^(?:我|我们|人|家)?(?:现在)?(?:在|是|住在|到了|去)?(?:的话)?[，,。\s]*")
#: Longest keyword (after the filler) that may name a family of items.
FAMILY_KEYWORD_CHARS = 8
#: ... and how far ahead (ranker log-odds: 3.5 is 97%) the first of them may be and still share the
#: choice: "护照怎么办理" means issuing one, far ahead of 加注 and the progress look-up.
FAMILY_MARGIN = 3.5
_BRACKETS = re.compile(r"[（(][^）)]*[）)]")
#: "Nothing fits" yields to a sentence naming one of the first this many guides whole, by a name this long.
NAMED_INSIDE_TOP = 3
NAMED_INSIDE_CHARS = 3
#: How a spoken or chatted question starts without saying anything ("那我去哪里反映", "请问一下…",
#: "嗯那个…"): left out of what is searched, where one-character terms like 那 and 我 would match
#: titles such as "那山、那水、那人" and "我的户号". "我的…" stays (a title may start so).
_LEAD_IN = re.compile(r"^(?:(?:那个|那么|那(?=[我你这要就还如怎能可在去多])|请问一下|请问|麻烦问一下|麻烦问下"
                      r"|我想问一下|我想问下|我想问|想问一下|想问下|问一下|问下|你好|您好|喂|嗯|哦|呃|就是|还有|另外|对了)[，,、\s]*)+"
                      r"(?:我们|我(?!的))?")
#: What a question asks of an item besides naming it ("注册公司要多久", "港澳通行证在哪办"): removed, with
#: the keyword filler, before asking whether the rest is exactly one item's name.
_ASKS_OF_IT = re.compile(
    r"要多久|多久|要几天|几天|要多少钱|多少钱|要钱吗|收费吗|要带什么|带什么|要什么材料|需要什么材料|什么材料"
    r"|要什么|需要什么|在哪里办|在哪办|去哪里办|去哪办|在哪里|去哪里|哪里办|流程|怎么申请|怎么领|怎么换|怎么补"
)


@dataclass(frozen=True)
class Match:
    """One candidate record and why it scored as it did."""

    item: Record
    score: float
    dense: float
    lexical: float
    features: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_faq(self) -> bool:
        return isinstance(self.item, FaqEntry)


@dataclass(frozen=True)
class SearchResult:
    """The outcome of one query."""

    query: str
    status: Status
    matches: list[Match] = field(default_factory=list)
    seconds: float = 0.0
    #: The signals the "nothing fits" decision saw (see ``bot.answering.calibration.FEATURES``).
    signals: dict[str, float] = field(default_factory=dict)
    #: P(nothing fits) from the calibrated model, when one is in use.
    p_none: float | None = None
    mentions: Mentions = field(default_factory=Mentions)

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches else None


_RUNS = re.compile(r"[a-z0-9]+|[^\sa-z0-9]+")


def _terms(text: str) -> list[str]:
    """Lexical terms: Chinese as character 1- and 2-grams, Latin words and numbers whole.

    Single Latin letters would make every English word match every guide with a Latin
    abbreviation in its name (ATA, CNAS, TBT); whole words do not.
    """
    out: list[str] = []
    for run in _RUNS.findall(text):
        if run[0].isascii() and run[0].isalnum():
            out.append(run)
            continue
        chars = [ch for ch in run if ch.isalnum()]
        out.extend(chars)
        out.extend(a + b for a, b in pairwise(chars))
    return out


def names_of(record: Record) -> tuple[str, ...]:
    """What a record is called: a guide's title and aliases; an FAQ entry's question, other phrasings
    and keywords."""
    if isinstance(record, FaqEntry):
        return (record.question, *record.alternatives, *record.keywords)
    return (record.title, *record.aliases)


class _Lexical:
    """Character 1-2-gram TF-IDF over each name of every record.

    Like the dense side, a record scores by its best text, so a short exact alias ("扯证")
    counts fully. Typical questions are left to the dense side: their shared wording
    ("要多少钱", "去哪里办") would make a bare aspect question look like a match.
    """

    def __init__(self, records: list[Record]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts: list[str] = []
        rows: list[int] = []
        for position, record in enumerate(records):
            for text in names_of(record):
                texts.append(normalize(text, limit=0))
                rows.append(position)
        self._rows = np.asarray(rows, dtype=np.int64)
        self._count = len(records)
        self._vectorizer = TfidfVectorizer(analyzer=_terms, sublinear_tf=True)
        matrix: Any = self._vectorizer.fit_transform(texts)

        #: The fitted vocabulary, idf and term columns, for :meth:`scores` to weigh a question itself:
        #: ``TfidfVectorizer.transform`` validates and builds a sparse matrix per call, ~1 ms of a 3 ms search.
        self._vocabulary: dict[str, int] = self._vectorizer.vocabulary_
        self._idf = self._vectorizer.idf_
        self._columns: Any = matrix.tocsc()

    def scores(self, query: str) -> np.ndarray:
        """Each record's best cosine between ``query`` and one of its names: the vectorizer's own
        weighting (sublinear tf times idf, L2-normalised), computed for the question's few terms."""
        counts: dict[int, int] = {}
        for term in _terms(query):
            column = self._vocabulary.get(term)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        best = np.zeros(self._count, dtype=np.float64)
        if not counts:
            return best
        columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
        weights = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * self._idf[columns]
        weights /= np.sqrt(weights @ weights)
        per_text = self._columns[:, columns] @ weights
        hit = np.flatnonzero(per_text)
        np.maximum.at(best, self._rows[hit], per_text[hit])
        return best


def _without_places(query: str, spans: Sequence[tuple[int, int]]) -> str:
    """``query`` without the regions and departments it names (``spans``, from :class:`Mentions`), nor
    the "我在…" around them."""
    text = query
    for start, end in sorted(spans, reverse=True):
        if end <= len(query):
            text = text[:start] + text[end:]
    return _PLACE_LEAD.sub("", text) or query


class Retriever:
    """Search over a loaded index with one encoder. Build once; share across requests."""

    def __init__(self, index: LoadedIndex, encoder: Encoder, settings: Settings) -> None:
        self.index = index
        self.encoder = encoder
        self.settings = settings
        self.records = index.records
        self.guides = [r for r in index.records if isinstance(r, Guide)]
        self.by_id = {r.id: r for r in index.records}
        self._lexical = _Lexical(index.records)
        self._names = [normalize(" ".join(names_of(r)), limit=0) for r in index.records]
        self._titles = [normalize(r.title, limit=0) for r in index.records]
        #: Each guide's whole names (title, title without its bracketed case, aliases): a question that
        #: is exactly one of them names that item.
        whole = [[normalize(t, limit=0) for t in names_of(r)] if isinstance(r, Guide) else [] for r in index.records]
        self._exact = [{n for t in names for n in (t, _BRACKETS.sub("", t))} for names in whole]
        self._position = {r.id: i for i, r in enumerate(index.records)}
        self._vectors = index.vectors()
        #: For an FAQ entry, the item it belongs to (see :meth:`item_of`); "" for guides.
        self._item_of = [self._belongs_to(r) if isinstance(r, FaqEntry) else "" for r in index.records]
        self.synonyms = Synonyms.load(settings.synonyms)
        self.homophones = Homophones.from_names(
            [n for names in whole for n in names] + [term for _, term in self.synonyms.pairs],
            [p.pattern for p, _ in self.synonyms.pairs if p.pattern.isalpha()])
        from bot.knowledge.entities import EntityFinder

        self.entities = (EntityFinder.load(index.directory, index.records) if index.directory is not None
                         else EntityFinder.from_records(index.records))
        self.scope = Scope(index.records, self.entities)
        self.ranker = Ranker.load(settings.ranker, model=encoder.name)
        self.nothing_fits = NothingFits.load(settings.calibration, model=encoder.name,
                                             knowledge=index.manifest.fingerprint)

    def _belongs_to(self, entry: FaqEntry) -> str:
        """The item an FAQ entry belongs to: its first related guide, when the entry is answered by that
        guide's own department (the FAQ schema's rule for item entries). A hall entry (answered by the
        政务服务中心) lists items only as examples ("承诺时限和法定时限有什么不同" names 护照 and 不动产转移):
        it belongs to none of them."""
        if not entry.related:
            return ""
        guide = self.by_id.get(entry.related[0])
        if not isinstance(guide, Guide) or (entry.department and guide.department
                                            and entry.department != guide.department):
            return ""
        return guide.id

    def item_of(self, record: Record) -> str:
        """The item a record is about: a guide itself, the item an FAQ entry belongs to ("" for none: the
        hall's own rules)."""
        return self._item_of[self._position[record.id]] if isinstance(record, FaqEntry) else record.id

    def search(
        self, text: str, *, k: int | None = None, region: str | None = None, department: str | None = None,
        exclude: Collection[str] = (),
    ) -> SearchResult:
        """Rank records for ``text`` and decide clear / ambiguous / none.

        ``region`` and ``department`` are names the citizen gave earlier in the conversation;
        names in ``text`` itself are found without them. ``exclude`` leaves records out (by id),
        as if the knowledge base did not have them (self-calibration uses it).
        """
        started = time.perf_counter()
        query = normalize(text)
        if not has_content(query):
            return SearchResult(query=query, status="empty")
        k = k or self.settings.max_candidates
        content = _LEAD_IN.sub("", query)
        if has_content(content) and content != query:
            query = content
        expanded = self.synonyms.expand(self.homophones.expand(query))
        mentions = self.scope.mentions(expanded, region=region, department=department)
        vector = self.encoder.encode([expanded], kind="query")[0]
        dense = self.index.search(vector, DENSE_POOL)
        lexical = self._lexical.scores(expanded)
        candidates = set(dense)
        candidates.update(int(i) for i in np.argsort(-lexical)[:LEXICAL_POOL] if lexical[i] > 0)
        floor = min(dense.values()) if dense else 0.0
        blended: list[tuple[float, int, float]] = []
        for position in candidates:
            if exclude and self.records[position].id in exclude:
                continue
            scope = 0.0
            if mentions:
                fits = self.scope.fits_region(position, mentions.regions)
                if fits is False:
                    continue
                scope = 1.0 if fits or self.scope.fits_department(position, mentions.departments) else 0.0
            prescore = fallback_score({"dense": dense.get(position, floor), "lexical": float(lexical[position]),
                                       "scope": scope})
            blended.append((prescore, position, scope))
        blended.sort(reverse=True)
        shortlist = blended[:RERANK]
        items = {self.records[p].id for _, p, _ in shortlist}
        about = {self._item_of[p] for _, p, _ in shortlist if self._item_of[p]}
        scored: list[tuple[float, int, dict[str, float]]] = []
        for prescore, position, scope in shortlist:
            record = self.records[position]
            sibling = self._item_of[position] in items if isinstance(record, FaqEntry) else record.id in about
            values = self._features(expanded, vector, position, float(lexical[position]), scope, sibling)
            scored.append((self.ranker.score(values) if self.ranker else prescore, position, values))
        scored.sort(key=lambda item: item[0], reverse=True)
        self._prefer_the_item(expanded, scored)
        matches = [Match(self.records[p], round(s, 4), round(v["dense"], 4), round(v["lexical"], 4), v)
                   for s, p, v in scored[:k]]
        # "我在广州，社保卡怎么办": the place filters the question; the words that name an item are the rest.
        asked = _without_places(query, mentions.spans) if mentions.spans and expanded.startswith(query) else query
        named = self._named_exactly(asked, matches)
        regions = mentions.regions if mentions else frozenset()
        regional = regions if self._of_the_named_region(matches, regions) else frozenset()
        signals = self._signals(query, scored, float(lexical.max()) if len(lexical) else 0.0)
        p_none = self.nothing_fits.probability(signals) if self.nothing_fits and signals else None
        return SearchResult(
            query=query, status=self._decide(asked, matches, p_none, named=named, regional=regional),
            matches=matches,
            seconds=time.perf_counter() - started, signals=signals, p_none=p_none, mentions=mentions,
        )

    def _prefer_the_item(self, query: str, scored: list[tuple[float, int, dict[str, float]]]) -> None:
        """"身份证过期了怎么办" asks how to get the item done: when an FAQ entry about an item ranks first
        and the item's own guide is among the candidates, the guide goes first — its one-time
        notification answers the whole question, where the entry answers one situation. A question
        about a situation or a permission ("过期了还能换吗") keeps the entry first."""
        if not scored or not HOW_TO.search(query) or YES_NO.search(query):
            return
        item = self._item_of[scored[0][1]]
        if not item:
            return
        for i, (_, position, _) in enumerate(scored):
            if self.records[position].id == item:
                moved = scored.pop(i)
                scored.insert(0, (scored[0][0] + 1e-3, moved[1], moved[2]))
                return

    def _features(self, query: str, vector: np.ndarray, position: int, lexical: float, scope: float,
                  sibling: bool) -> dict[str, float]:
        start, end = self.index.spans[position]
        cosines = self._vectors[start:end] @ vector
        per_field: dict[str, float] = {}
        for cosine, code in zip(cosines.tolist(), self.index.fields[start:end].tolist(), strict=True):
            name = FIELDS[code]
            if cosine > per_field.get(name, -1.0):
                per_field[name] = cosine
        record = self.records[position]
        return features(query, names=self._names[position], title=self._titles[position], dense=per_field,
                        lexical=lexical, sample=record.sample, faq=isinstance(record, FaqEntry),
                        vectors=end - start, scope=scope, sibling=sibling)

    def _signals(self, query: str, scored: list[tuple[float, int, dict[str, float]]], lexical_max: float
                 ) -> dict[str, float]:
        """The inputs of the "nothing fits" decision (names in ``bot.answering.calibration.FEATURES``)."""
        if not scored:
            return {}
        top_score, _, top = scored[0]
        chars = sum(1 for ch in query if ch.isalnum())
        return {
            "top": top_score,
            "margin": top_score - scored[1][0] if len(scored) > 1 else top_score,
            "dense": top["dense"],
            "lexical": top["lexical"],
            "q_cover": top["q_cover"],
            "t_cover": top["t_cover"],
            "lcs_q": top["lcs_q"],
            "log_length": math.log(chars + 1),
            "lexical_max": lexical_max,
            "short": 1.0 if chars <= SHORT_QUERY else 0.0,
        }

    def _named_exactly(self, query: str, matches: list[Match]) -> bool:
        """Is the question, less what it asks of the item, exactly one candidate's name ("教师资格认定
        怎么办", "注册公司要多久", "港澳通行证怎么办": a title or an alias written whole)? That candidate
        then goes first when it is within :data:`FAMILY_MARGIN` of the first, and is answered however
        close its rivals: the citizen named it. Reorders ``matches`` in place; True when it applied."""
        keyword = _KEYWORD_FILLER.sub("", _ASKS_OF_IT.sub("", query))
        if len(keyword) < 2 or not matches or not isinstance(matches[0].item, Guide):
            return False  # an FAQ entry first is the office's answer to the question as asked: it stays
        exact = [i for i, m in enumerate(matches)
                 if isinstance(m.item, Guide) and keyword in self._exact[self._position[m.item.id]]]
        if len(exact) > 1:
            # A catalogue name several imported items carry as an alias ("教师资格认定" for 高等学校… and
            # 高级中学…) is named by the one item whose own title it is.
            titled = [i for i in exact if keyword in (self._titles[p := self._position[matches[i].item.id]],
                                                      _BRACKETS.sub("", self._titles[p]))]
            exact = titled if len(titled) == 1 else exact
        if len(exact) != 1 or matches[0].score - matches[exact[0]].score > FAMILY_MARGIN:
            return False
        matches.insert(0, matches.pop(exact[0]))
        return True

    def _of_the_named_region(self, matches: list[Match], regions: frozenset[str]) -> bool:
        """Is the first match the one guide of the region the citizen named ("我在广州，办护照去哪里":
        Guangzhou's own passport guide) among close rivals that only apply anywhere (a sample or a
        province-wide guide)? Then those rivals are no reason to ask which one: the local office's guide
        is the answer. Moves that guide first when it is within the clear margin of the first."""
        if not regions or not matches:
            return False
        close = [i for i, m in enumerate(matches)
                 if isinstance(m.item, Guide) and matches[0].score - m.score < self.settings.clear_margin]
        local = [i for i in close if self.scope.fits_region(self._position[matches[i].item.id], regions) is True]
        if len(local) != 1:
            return False
        matches.insert(0, matches.pop(local[0]))
        return True

    def _decide(self, query: str, matches: list[Match], p_none: float | None, *, named: bool = False,
                regional: frozenset[str] = frozenset()) -> Status:
        if not matches:
            return "none"
        if self.nothing_fits is not None and p_none is not None:
            if p_none >= self.nothing_fits.cut:
                # A search-box keyword written out inside an item's name ("收养", "异地就医") is not
                # turned away: the items that contain it are offered as candidates.
                first_features = matches[0].features
                if first_features.get("short_lcs_q", 0.0) >= 1.0 and first_features.get("lcs_abs", 0.0) >= 0.25:
                    return "ambiguous"
                # A chatty sentence that names an item whole ("我想问下点样办居住证啊", "身份证断成两截了")
                # is not turned away either: its wording is what the model finds unlike any guide.
                if self._names_inside(query, matches[:NAMED_INSIDE_TOP]):
                    return "ambiguous"
                return "none"
        elif matches[0].dense < self.settings.min_score:
            return "none"
        if named:
            return "clear"
        # Only another item is a rival: an FAQ entry about the first item (or that entry's item) is not.
        first = matches[0].item
        family = {first.id, self.item_of(first)} - {""}
        rivals = [m for m in matches[1:] if m.item.id not in family and self.item_of(m.item) not in family]
        if regional:  # the named region's own guide leads: only other guides of that region are rivals
            rivals = [m for m in rivals if isinstance(m.item, Guide)
                      and self.scope.fits_region(self._position[m.item.id], regional) is True]
        if rivals and matches[0].score - rivals[0].score < self.settings.clear_margin:
            return "ambiguous"
        if self.names_a_family(query, matches):
            return "ambiguous"
        return "clear"

    def _names_inside(self, query: str, matches: list[Match]) -> bool:
        """Does ``query`` contain the whole name (title or alias, :data:`NAMED_INSIDE_CHARS` characters
        or more) of one of the guides first among ``matches``?"""
        text = normalize(query, limit=0)
        return any(len(name) >= NAMED_INSIDE_CHARS and name in text
                   for m in matches if isinstance(m.item, Guide)
                   for name in self._exact[self._position[m.item.id]])

    def names_a_family(self, query: str, matches: list[Match]) -> bool:
        """Is ``query`` a bare keyword that names several items alike ("社保卡": 申领 and 挂失补换;
        "驾照的事情", "公积金怎么提取", "户口")? Then the citizen chooses, however far ahead the ranker
        puts one of them: nothing in the words says which. A keyword with a word that tells them apart
        ("社保卡丢了") covers only one; the province's and a city's guide of one item count once; a
        keyword that is an item's whole title ("户口迁出") names that item, and so does one whose first
        item leads the others by :data:`FAMILY_MARGIN`."""
        keyword = _KEYWORD_FILLER.sub("", query)
        if not keyword or len(keyword) > FAMILY_KEYWORD_CHARS or not matches or not isinstance(matches[0].item, Guide):
            return False
        # The keyword as written, or with a citizen's word in it replaced by the official term
        # ("社保卡" -> 社会保障卡, "房产证" -> 不动产权证书): a member's name holds one of these whole.
        forms = {keyword} | {keyword.replace(found.group(0), term) for pattern, term in self.synonyms.pairs
                             if (found := pattern.search(keyword))}
        # "居住证怎么办" asks how to get it done: a progress look-up of the same card is no rival.
        lookups_count = "查" in keyword or not HOW_TO.search(query)
        family: set[str] = set()
        for match in matches:
            record = match.item
            if not isinstance(record, Guide) or matches[0].score - match.score > FAMILY_MARGIN:
                continue
            if not lookups_count and "查询" in record.title:
                continue
            title = normalize(record.title, limit=0)
            if title == keyword or _BRACKETS.sub("", title) == keyword:
                return False
            names = normalize(" ".join(names_of(record)), limit=0)
            if any(form in names for form in forms):
                family.add(core_title(record.title))
        # "普通护照签发（首次申请、换发、补发）" and a city's "普通护照签发" are one item; 提取（购房） and
        # 提取（租房） are two.
        return len({t for t in family if _BRACKETS.sub("", t) not in family - {t}}) >= 2
