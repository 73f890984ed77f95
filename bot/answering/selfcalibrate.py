"""Calibrating "nothing fits" for any knowledge base, without hand-labelled questions.

An office that imports its own region's guides cannot use the calibration fitted on ours: the
scores its questions get depend on its titles, its aliases and how alike its items are. So it
fits its own (``knowledge calibrate``) from questions made out of its knowledge base itself:

* **answerable**: pseudo-queries made from each record's own name — a keyword cut from its title
  (what most people type into a search box), alone or in an everyday question around it ("…怎么办",
  "办…要带什么") — searched in the full knowledge base. Never a text the index holds verbatim (an
  alias, a typical question): those match themselves perfectly, and a cut set on them would turn
  away every real, imperfect question;
* **unanswerable**: a bundled list of everyday questions that are not about government services
  at all (``knowledge/calibration/everyday.txt``).

The cut is chosen, as for the labelled calibration, so that at most ``MAX_LOST`` of the
answerable pseudo-queries are turned away. The result is cautious by design: measured on the
labelled dev splits of the bundled knowledge base, a self-calibration turns away 41% of the
unanswerable questions and 0.8% of the answerable ones (the labelled calibration: 67% and 2.5%).
Searching the same pseudo-queries with their item left out, as government-sounding requests the
office has no guide for, was tried as a second kind of unanswerable example: it halved the
unanswerable questions recognised on the dev splits, so it is not used. Everything is seeded: the
same knowledge base gives the same calibration.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.answering.calibration import MAX_LOST, NothingFits, fit_nothing_fits
from bot.knowledge.model import Guide, Record
from bot.knowledge.text import normalize
from bot.settings import ROOT

EVERYDAY = ROOT / "knowledge" / "calibration" / "everyday.txt"
#: At most this many records are sampled for pseudo-queries (enough for a stable fit, quick to run).
MAX_RECORDS = 500
SEED = 20261202

_BRACKETS = re.compile(r"[(（][^()（）]*[)）]")
_REGION = re.compile(r"^(广东省|广州市|.{2,3}[省市区县])")
_FILLER = re.compile(r"(审批|核准|许可|登记|办理|申请|查询|服务|备案|认定|证明|事项|指引)$")


#: Everyday questions around an item's keyword ({} is the keyword).
TEMPLATES = ("{}", "{}", "{}怎么办", "{}怎么办理", "办{}要带什么材料", "{}在哪里办", "我想申请{}", "{}需要什么条件",
             "请问{}去哪办", "{}要多久", "想问下{}的事")


@dataclass(frozen=True)
class Pseudo:
    """One made-up question and the record it was made from ('' for an everyday one)."""

    text: str
    record_id: str
    source: str


def title_keyword(title: str, rng: random.Random) -> str | None:
    """A short keyword a citizen might type for an item: a 2–6 character run of its name, without the
    bracketed case, a leading region or a trailing generic word ('审批', '查询' ...)."""
    main = _BRACKETS.sub("", normalize(title, limit=0)).strip()
    main = _REGION.sub("", main) or main
    words = [w for w in re.split(r"[、，,；;和及与或的\s]+", main) if w]
    if not words:
        return None
    word = max(words, key=len)
    trimmed = _FILLER.sub("", word) or word
    if len(trimmed) <= 6:
        return trimmed if len(trimmed) >= 2 else None
    width = rng.randint(3, 6)
    start = rng.randint(0, len(trimmed) - width)
    return trimmed[start:start + width]


def pseudo_queries(records: Sequence[Record], *, seed: int = SEED, max_records: int = MAX_RECORDS) -> list[Pseudo]:
    """Answerable pseudo-queries, one per sampled item guide, made only from its own title."""
    rng = random.Random(seed)
    guides = [r for r in records if isinstance(r, Guide)]
    sampled = guides if len(guides) <= max_records else rng.sample(guides, max_records)
    out: list[Pseudo] = []
    for guide in sampled:
        keyword = title_keyword(guide.title, rng)
        if keyword:
            out.append(Pseudo(rng.choice(TEMPLATES).format(keyword), guide.id, "title keyword"))
    return out


def everyday_questions(path: Path = EVERYDAY) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def self_calibrate(search: Callable[..., Any], records: Sequence[Record], *, model: str, knowledge: str,
                   everyday: Sequence[str], max_lost: float = MAX_LOST, seed: int = SEED,
                   max_records: int = MAX_RECORDS) -> tuple[NothingFits, dict[str, Any]]:
    """Fit the "nothing fits" model on pseudo-queries (see the module docstring).

    ``search(text)`` is the retriever's search."""
    pseudo = pseudo_queries(records, seed=seed, max_records=max_records)
    rows: list[dict[str, float]] = []
    labels: list[bool] = []
    for item in pseudo:
        result = search(item.text)
        if result.signals:
            rows.append(result.signals)
            labels.append(False)
    for text in everyday:
        result = search(text)
        if result.signals:
            rows.append(result.signals)
            labels.append(True)
    model_fitted, figures = fit_nothing_fits(
        rows, labels, model=model, knowledge=knowledge, max_lost=max_lost,
        fitted_on=f"pseudo-queries of this knowledge base (seed {seed}) and {len(everyday)} everyday questions")
    return model_fitted, {"pseudo_queries": len(pseudo), "everyday": len(everyday), **figures}
