"""Follow-up questions about the item under discussion, answered from the guide's own text.

After a one-time notification, citizens ask about the item in their own words: "我们俩户口不在一个
地方可以吗", "可以找人代办吗", "周末能办吗", "要带户口本吗", "复印件行吗". None of these is one of
the ten aspects, and searching the whole knowledge base for them finds other items. The answer is
in the guide: one of its conditions, materials (with their form, count and 容缺/承诺 flags), hours,
online channel or process steps. This module cuts a guide into those passages, finds the one that
answers the question, and says yes or no first when the passage says so, quoting the guide.

Scoring a passage is a blend of three things, because each alone fails on a whole class of
questions: the embedding model's similarity (paraphrases: "户口不在一个地方" vs "全国任一婚姻登记
机关"), shared characters (names of materials and documents), and a small table of *cues* that
say which kind of passage answers a kind of question (a question about a proxy is answered by the
passage that says who must attend in person). When nothing scores well the guide is silent on the
question, and :func:`render_follow_up` says so and gives the phone number: never a guess.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from bot.knowledge.embedding.encoder import Encoder
from bot.knowledge.model import Guide, Material
from bot.knowledge.text import normalize

Verdict = Literal["yes", "no", "partly"]

#: Below this blended score the guide is taken to be silent on the question.
MIN_SCORE = 0.30
#: The same without a model (lexical mode: shared characters stand in for the similarity).
LEXICAL_MIN_SCORE = 0.62
#: Questions and statements that have nothing to do with each other: their mean similarity is where
#: "unrelated" lies for the model in use (see :meth:`FollowUps._relative`).
NULL_QUERIES = ("你好", "今天天气怎么样", "谢谢你", "你是谁")
NULL_PASSAGES = ("申请人居民身份证（原件，1份）", "办理时间：周一至周五 9:00-12:00", "收费标准：不收费",
                 "承诺办结5个工作日")
#: How close (cosine) a thing asked for must be to a material's name to be taken for it.
NAMED_MATERIAL_SIMILARITY = 0.87
#: ... and lead the next material by this much (short texts all look alike to the model).
NAMED_MATERIAL_MARGIN = 0.006
#: A yes/no question ("…吗", "能不能…", "可以…不").
YES_NO = re.compile(
    r"吗|能不能|能否|可不可以|可以不|是否|会不会|要不要|行不行|行吗|有没有|需不需要"
    r"|用不用|算不算|可以么|得不得"
)

#: A question about something (rather than a remark): small talk with none of these is never a follow-up.
QUESTION = re.compile(r"几|多少|多久|什么|怎么|怎样|如何|哪|谁|咋|啥|how|what|where|when|why")
#: "一定得去公积金中心排队吗", "必须去现场吗": whether going there is needed at all.
_MUST_GO = re.compile(r"(?:一定|必须|非|是不是|是否)(?:得|要)?(?:去|跑|到)(?:现场|窗口|大厅|中心|那边|.{0,6}排队)")
#: Question cues -> the passage kinds and passage words that answer them. A passage that has one
#: of the words, or is of one of the kinds, gets :data:`CUE_BONUS`.
CUES: tuple[tuple[re.Pattern[str], frozenset[str], re.Pattern[str] | None], ...] = (
    # "能转给别人吗" asks about transferring the licence, not about someone else applying for it.
    (re.compile(r"转给|转让|过户给|转手|转租|借给"), frozenset(), re.compile(r"转让|转借|出租|出借|买卖|不得转")),
    (re.compile(r"代办|代理|找人|委托|别人|家人|邻居|帮我办|帮我申请|帮忙|替我|代替|代领|本人不|亲自|本人去|一个人去"
                r"|单独去|自己去|自己能|自己申请|自己办|单位给办|谁来办|谁去办|不肯|不给申请"
                r"|(?:替|帮|代)(?:他|她|孩子|娃|老人|父母|爸|妈)(?:去|来)?(?:办|申请|领|交)|家长|监护人"),
     frozenset({"proxy"}), re.compile(r"本人到场|本人.{0,4}办理|亲自|代办|委托|代理人|共同到|到场|用人单位|单位办理"
                                       r"|单位申请|亲属|近亲属|邻居|他人|职工本人|工会")),
    # "几点下班", not "我在外地上班": working there is no question about the hours.
    (re.compile(r"周末|周六|周日|星期六|星期天|礼拜|节假日|晚上|几点|(?:上|下)班(?:时间|前|后|以前|以后|了吗)|中午|时间段"),
     frozenset({"hours"}), None),
    # "一定得去公积金中心排队吗": whether going there is needed at all, which the online and visits
    # passages answer.
    (_MUST_GO, frozenset({"online", "visits"}), None),
    # "在家就能办吗" is about applying online; "孩子是在家里生的" is not.
    (re.compile(r"手机|网上|线上|网站|网址|官网|哪个网|app|APP|小程序|微信|粤省事|网办|不用去|不去现场|在家(?:里)?(?:就)?(?:能|可以)?(?:办|申请|弄|搞定)"),
     frozenset({"online"}), None),
    # "最长贷几年", "最多能领多少": a maximum is stated by a condition (or a note), not by the time limits.
    # "换的新证能用几年", "证明有效期多久": how long the result is valid, wherever the guide says it.
    (re.compile(r"有效期|能用几年|用几年|管几年|几年有效|多少年有效|能用多久|用多久|管多久|多久过期|多久失效"
                r"|什么时候过期|多长时间有效|多久有效"), frozenset(),
     re.compile(r"(?:\d+|[一二三五六十])年有效|有效期(?:为|是)|有效期.{0,2}\d+年|长期有效|内有效")),
    # "现在就能去换了吗", "能提前办吗": when one may apply is a condition ("期满前90日内").
    (re.compile(r"现在就?(?:能|可以)|提前|提早|多早|什么时候(?:可以|能)|何时(?:可以|能)"), frozenset({"condition"}),
     re.compile(r"期满|前\d+日|提前|内申请|之日起")),
    # "一年最少交多少": what is paid, even with 最少 in it.
    (re.compile(r"交多少|缴多少|交几|最少交|最低交|最少缴|最低缴|缴费档次"), frozenset({"fee"}),
     re.compile(r"元|缴费档次")),
    (re.compile(r"最长|最多|最高|最久|上限|封顶"), frozenset({"condition", "note"}),
     re.compile(r"最长|最多|最高|不超过|上限|封顶")),
    # "出生多久内要办", "过期了还能换吗": a deadline to apply by is a condition, not the processing time.
    (re.compile(r"(?:多久|几天|多少天|几个月|多长时间|几日|多少日)之?内|期限|截止|逾期|过期|超过.{0,4}(?:天|月|年)"
                r"|来不来得及|晚了"),
     frozenset({"condition", "refusal"}), re.compile(r"\d+\s*(?:日|天|个?月|年)内|期限|逾期|过期|期满")),
    (re.compile(r"多久|几天|多长时间|当天|马上|立刻|加急|多快|什么时候能拿|几耐|how long|when"),
     frozenset({"time"}), None),
    # "要钱吗", "工本费": what is paid; not "贷下来的钱打到哪", "旧卡里还有钱", "缴存满几个月".
    (re.compile(r"多少钱|几多钱|要钱|花钱|收钱|给钱|交钱|付钱|钱吗|的钱(?:是|要)?(?:交|付|出)|费|价格|价钱|什么价|要交吗"
                r"|也要交|缴费|缴多少|缴钱|这个价|一个价|同价|价吗|how much|cost|fee"), frozenset({"fee"}), None),
    (re.compile(r"寄|快递|邮递|送到家"), frozenset({"courier"}), None),
    (re.compile(r"预约|排队|挂号|约号"), frozenset({"appointment"}), None),
    (re.compile(r"跑几次|跑几趟|几趟|去几次|跑一次"), frozenset({"visits"}), None),
    (re.compile(r"外地|外省|异地|户口不在|户籍不在|不在一个地方|不在本地|不是本地|老家|全国|跨省|跨市|户口所在地"),
     frozenset(), re.compile(r"全国|异地|跨省|跨市|任一|户籍地|户口所在地|居住地|常住")),
    (re.compile(r"复印|原件|几份|彩印|扫描|电子版|照片"), frozenset({"material"}), None),
    (re.compile(r"带|材料|证明|户口本|证件|资料"), frozenset({"material"}), None),
    (re.compile(r"条件|资格|年龄|多大|几岁|满\d|不符合|能不能办|可以办"), frozenset({"condition", "refusal"}), None),
    (re.compile(r"流程|步骤|第一步|先干嘛|先做什么|先去哪|然后|怎么弄"), frozenset({"process"}), None),
    (re.compile(r"电话|打给|咨询|投诉"), frozenset({"phone"}), None),
    (re.compile(r"哪里|哪儿|去哪|哪个地方|什么地方|地址|地点|窗口|在哪|where"), frozenset({"place"}), None),
)
CUE_BONUS = 0.25
#: A runner-up passage within this much of the best is quoted beside it (when it says something else).
RUNNER_UP_MARGIN = 0.08
#: Words that carry no content in a follow-up ("那", "请问", "可以吗"), removed before the
#: character overlap is counted.
_FILLER = re.compile(
    r"请问|那么|那|这个|那个|一下|的话|可以吗|可以|能不能|能否|吗|呢|吧|啊|呀|我们|我"
    r"|你们|你|他|她|俩|要|是|不是|了|的|么"
)
_NEGATIVE = re.compile(r"不可|不能|不得|不予|不受理|不支持|不接受|不办理|不允许|不再|无需|不需要|不得委托|不可代办")
_PERSONAL = re.compile(r"本人|亲自|双方共同|共同到|到场")
_PROXY_OK = re.compile(r"可委托|委托他人|委托代理|可由.{0,8}代|代办|代理人|监护人代")
_WEEKEND_Q = re.compile(r"周末|周六|周日|星期六|星期天|礼拜六|礼拜天|节假日")
_WEEKEND = re.compile(r"周末|周六|周日|星期六|星期日|双休")
_COPY_Q = re.compile(r"复印件")
#: A question about bringing or handing in something ("要带离婚证吗"), which the material list settles;
#: "能开电子版吗" asks about the result instead.
_BRING_Q = re.compile(r"带|交|提供|准备|需要|需不需要|要不要|用不用|得")
_SENTENCES = re.compile(r"(?<=[。！？!?])")


@dataclass(frozen=True)
class Passage:
    """One statement of a guide: a condition, a material, the hours …, as the citizen will read it."""

    kind: str
    text: str
    material: Material | None = None


@dataclass(frozen=True)
class FollowUp:
    """What the guide says about a follow-up question: the passage (None when it is silent) and, for a
    yes/no question the passage settles, the verdict."""

    passage: Passage | None
    verdict: Verdict | None
    score: float
    #: A second passage that scored nearly as well (:data:`RUNNER_UP_MARGIN`): quoted too, since the
    #: guide's answer is often split between, say, a material's note and a condition.
    also: Passage | None = None


def _material_text(material: Material) -> str:
    from bot.answering.answers import material_line

    return material_line(material)


#: Which passages belong to which of the ten aspects (the aspect's own answer covers them).
ASPECT_KINDS: dict[str, frozenset[str]] = {
    "materials": frozenset({"material", "material_forms", "materials_absent"}),
    "conditions": frozenset({"condition", "refusal", "proxy"}), "fee": frozenset({"fee"}),
    "time": frozenset({"time"}), "place": frozenset({"place", "hours"}), "process": frozenset({"process", "proxy"}),
    "online": frozenset({"online", "courier"}), "appointment": frozenset({"appointment"}),
    "visits": frozenset({"visits"}), "phone": frozenset(),
}


def passages(guide: Guide) -> list[Passage]:
    """Every statement of ``guide`` a follow-up may be answered with, in the guide's order."""
    out: list[Passage] = []
    out += [Passage("proxy" if _PERSONAL.search(c) or _PROXY_OK.search(c) else "condition", c)
            for c in guide.conditions]
    out += [Passage("refusal", f"不予受理的情形：{r}") for r in guide.refusal_grounds]
    out += [Passage("material", _material_text(m), m) for m in guide.materials]
    days = [(label, d) for label, d in (("承诺办结", guide.promised_days), ("法定时限", guide.statutory_days))
            if d is not None]
    if days or guide.time_note:
        parts = [f"{label}{'即办（当场办结）' if d == 0 else f'{d}个工作日'}" for label, d in days]
        out.append(Passage("time", "；".join([*parts, *([guide.time_note] if guide.time_note else [])])))
        # A note of several sentences also gives each its own passage: "公证书拿到境外使用的，…海牙认证"
        # drowned in the time limits it was appended to.
        sentences = [x for x in _SENTENCES.split(guide.time_note or "") if x.strip()]
        if len(sentences) > 1:
            out += [Passage("note", x.strip()) for x in sentences]
    if guide.hours:
        out.append(Passage("hours", f"办理时间：{guide.hours}"))
    if guide.place or guide.window:
        out.append(Passage("place", "；".join(x for x in (guide.place and f"办理地点：{guide.place}",
                                                            guide.window and f"窗口：{guide.window}") if x)))
    if guide.online or guide.online_url:
        out.append(Passage("online", f"可在{guide.online or guide.online_url}网上办理"
                           + (f"（{guide.online_url}）" if guide.online and guide.online_url else "")))
    if guide.courier:
        out.append(Passage("courier", "办理结果可邮寄送达"))
    if guide.appointment:
        out.append(Passage("appointment", f"预约方式：{guide.appointment}"))
    if guide.visits is not None:
        out.append(Passage("visits", "全程网办，无需到现场" if guide.visits == 0 else
                           "最多跑一次" if guide.visits == 1 else f"需到现场{guide.visits}次"))
    if guide.fee:
        out.append(Passage("fee", f"收费标准：{guide.fee}"))
    for step in guide.process:
        out.append(Passage("proxy" if _PERSONAL.search(step) or _PROXY_OK.search(step) else "process", step))
    return out


def _bigrams(text: str) -> set[str]:
    text = "".join(ch for ch in text if ch.isalnum())
    return {text[i:i + 2] for i in range(len(text) - 1)} | set(text)


def _overlap(question: str, passage: str) -> float:
    """How much of the question's content is in the passage (0..1), by characters and pairs."""
    q = _bigrams(_FILLER.sub("", question))
    if not q:
        return 0.0
    p = _bigrams(passage)
    return len(q & p) / len(q)


def _cue_bonus(question: str, passage: Passage) -> float:
    """:data:`CUE_BONUS` when the passage is what the question's first cue asks for."""
    for cue, kinds, words in CUES:
        if cue.search(question):
            fits = passage.kind in kinds or (words is not None and words.search(passage.text) is not None)
            return CUE_BONUS if fits else 0.0
    return 0.0


_ASKING_VERBS = re.compile(
    r"复印件|复印|原件|扫描件|行不行|行|够不够|够|要带|要不要带|需要带|需不需要|得带"
    r"|用不用带|用带|带不带|要交|要提供|需要提供|要|带|交|提供|需要"
)


def _asked_thing(question: str) -> str:
    """What a material question names: '要带户口本吗' -> '户口本'."""
    return _ASKING_VERBS.sub("", _FILLER.sub("", question))


def _pairs(text: str) -> set[str]:
    text = "".join(ch for ch in text if ch.isalnum())
    return {text[i:i + 2] for i in range(len(text) - 1)}


def _material_named(question: str, materials: Sequence[Material], at_least: int = 1) -> Material | None:
    """The material of the list that a question names ("户口本" -> 居民户口簿), else None: the one
    sharing most character pairs with what is asked for, at least one."""
    asked = _pairs(_asked_thing(normalize(question, limit=0)))
    best: tuple[int, Material | None] = (at_least - 1, None)
    for material in materials:
        shared = len(asked & _pairs(material.name))
        if shared > best[0]:
            best = (shared, material)
    return best[1]


def _ruled_out(question: str, guide: Guide) -> Passage | None:
    """A passage of the guide that says the asked-for thing is no longer needed ("不再需要户口簿")."""
    asked = _pairs(_asked_thing(normalize(question, limit=0)))
    if not asked:
        return None
    for material in guide.materials:
        for clause in re.split(r"[；;，,。]", material.note or ""):
            if re.search(r"不再需要|无需|不需要|不用", clause) and asked & _pairs(clause):
                return Passage("material", _material_text(material), material)
    return None


#: "先办后补", "材料不齐能先受理吗": answered from the item's 容缺/承诺 flags, then the hall's rule.
DEFERRAL = re.compile(
    r"后补|先办|先受理|不齐|没带齐|缺(?:一|了|少)|少(?:一|了)|容缺|补交|晚点再交"
    r"|晚些交|告知承诺|承诺制"
)


def deferral_text(guide: Guide) -> str:
    """Which of the item's materials may be handed in later (容缺) or replaced by a written promise."""
    later = [m.name for m in guide.materials if m.deferrable]
    promise = [m.name for m in guide.materials if m.promise_ok]
    parts = []
    if later:
        parts.append("可以容缺受理、事后补交的材料：" + "、".join(later))
    if promise:
        parts.append("可以用告知承诺书代替的材料：" + "、".join(promise))
    if not parts:
        return f"【{guide.title}】的办事指南没有标注可以容缺后补或以承诺代替的材料，材料需按清单备齐。"
    return f"【{guide.title}】的办事指南标注了：" + "；".join(parts) + "。其余材料需按清单备齐。"


def _verdict(question: str, passage: Passage) -> Verdict | None:
    """Yes, no or partly, when a yes/no question is settled by the passage's own words."""
    if not YES_NO.search(question):
        return None
    text = passage.text
    if passage.kind == "hours" and _WEEKEND_Q.search(question):
        if _WEEKEND.search(text):
            return "partly" if re.search(r"部分|预约|特殊", text) else "yes"
        return "no"
    if re.search(r"代办|代理|找人|委托|别人|家人|替我|代替|代领", question):
        if _PROXY_OK.search(text):
            return "yes"
        if _PERSONAL.search(text):
            return "no"
    if passage.material is not None and _COPY_Q.search(question):
        form = passage.material.form or ""
        if form == "复印件" or "或复印件" in form:
            return "yes"
        if "原件" in form:
            return "no"
        return None
    if passage.material is not None and re.search(r"带|要|需|交", question):
        return "partly" if not passage.material.required else "yes"
    if passage.material is not None and re.search(r"后补|先办|先受理|不齐|缺|补交", question):
        return "yes" if passage.material.deferrable or passage.material.promise_ok else None
    if _NEGATIVE.search(text):
        return "no"
    if re.search(r"可在|可以|均可|可通过|可由|支持|允许|可凭|可选择", text):
        return "yes"
    return None


#: Guides whose passage vectors :class:`FollowUps` keeps.
PASSAGE_CACHE_GUIDES = 4096
#: Files of the passage vectors encoded at index build (:func:`build_passage_vectors`), in the index folder.
PASSAGE_VECTORS = "passages.npy"
PASSAGE_ROWS = "passages.json"
#: Above this many guides the build leaves passages to be encoded on first use (an hour of encoding
#: at 100,000 guides); the cache then holds the ones in use.
PASSAGE_VECTORS_MAX_GUIDES = 20_000


def _passages_key(found: list[Passage]) -> str:
    return hashlib.sha256("\n".join(f"{p.kind}:{p.text}" for p in found).encode("utf-8")).hexdigest()[:16]


def build_passage_vectors(guides: Sequence[Guide], encoder: Encoder, index_dir: Path, *, batch_size: int = 32,
                          log: Callable[[str], None] = lambda _: None) -> int:
    """Encode every guide's passages once, at index build, into ``index_dir`` (float16): a follow-up
    then costs a dot product instead of encoding the item's passages (about 8, ~6 ms each on one
    thread) on the first follow-up about it. Returns how many passages were written."""
    rows: dict[str, list[object]] = {}
    texts: list[str] = []
    for guide in guides:
        found = passages(guide)
        rows[guide.id] = [len(texts), len(texts) + len(found), _passages_key(found)]
        texts += [p.text for p in found]
    log(f"encoding {len(texts)} passages of {len(guides)} guides (follow-up answers)")
    vectors = encoder.encode(texts, kind="query", batch_size=batch_size) if texts else np.zeros((0, encoder.dim))
    scratch = index_dir / f".{PASSAGE_VECTORS}.tmp.npy"
    np.save(scratch, vectors.astype(np.float16))
    (index_dir / f".{PASSAGE_ROWS}.tmp").write_text(json.dumps({"model": encoder.name, "rows": rows}), encoding="utf-8")
    scratch.replace(index_dir / PASSAGE_VECTORS)
    (index_dir / f".{PASSAGE_ROWS}.tmp").replace(index_dir / PASSAGE_ROWS)
    return len(texts)


class PassageVectors:
    """The passage vectors :func:`build_passage_vectors` wrote, memory-mapped; a guide whose passages
    have changed since (another release's passage cutting) is not served from here."""

    def __init__(self, vectors: np.ndarray, rows: dict[str, list[object]], model: str) -> None:
        self._vectors, self._rows, self.model = vectors, rows, model

    @classmethod
    def load(cls, index_dir: Path | None, model: str) -> PassageVectors | None:
        """The store in ``index_dir`` for ``model``, or None (not built, or built with another model)."""
        if index_dir is None or not (index_dir / PASSAGE_ROWS).is_file() or not (index_dir / PASSAGE_VECTORS).is_file():
            return None
        try:
            meta = json.loads((index_dir / PASSAGE_ROWS).read_text(encoding="utf-8"))
            vectors = np.load(index_dir / PASSAGE_VECTORS, mmap_mode="r")
        except (OSError, ValueError):
            return None
        if meta.get("model") != model:
            return None
        return cls(vectors, meta.get("rows") or {}, model)

    def get(self, guide_id: str, found: list[Passage]) -> np.ndarray | None:
        row = self._rows.get(guide_id)
        if row is None or row[2] != _passages_key(found):
            return None
        start, end = int(row[0]), int(row[1])  # type: ignore[call-overload]
        return np.asarray(self._vectors[start:end], dtype=np.float32)


class FollowUps:
    """Answers follow-up questions about one guide at a time; passage vectors are computed once per
    guide and kept (a conversation asks several questions about the same item, and a hall hears the
    same items all day).

    Encoding a guide's passages (about eight, ~6 ms each) is most of the action server's CPU for a
    follow-up on an item not seen since the start, so the cache holds the passages of
    :data:`PASSAGE_CACHE_GUIDES` guides (the whole bundled base; about 12 KB each), least recently
    used first out. Encoding every passage at index build instead would cost ~2 minutes for the
    bundled base and over an hour at 100,000 guides."""

    def __init__(self, encoder: Encoder | None, *, cache_size: int = 0, store: PassageVectors | None = None) -> None:
        self.encoder = encoder
        #: Passage vectors encoded at index build, when the index has them.
        self.store = store
        self._cache: dict[str, tuple[list[Passage], np.ndarray | None]] = {}
        self._cache_size = cache_size or PASSAGE_CACHE_GUIDES
        self._null: float | None = None
        self.min_score = MIN_SCORE if encoder is not None else LEXICAL_MIN_SCORE

    def _passages(self, guide: Guide) -> tuple[list[Passage], np.ndarray | None]:
        cached = self._cache.pop(guide.id, None)
        if cached is not None:
            self._cache[guide.id] = cached  # most recently used last
        else:
            found = passages(guide)
            stored = self.store.get(guide.id, found) if self.store is not None and self.encoder is not None else None
            if stored is not None:
                self._cache[guide.id] = (found, stored)
                return found, stored
            # Past the query cache (CachedEncoder.inner): passages are kept here, and would push the
            # citizens' frequent questions out of it.
            encoder = getattr(self.encoder, "inner", self.encoder)
            vectors = (encoder.encode([p.text for p in found], kind="query")
                       if encoder is not None and found else None)
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            cached = self._cache[guide.id] = (found, vectors)
        return cached

    def _relative(self, cosines: np.ndarray) -> np.ndarray:
        """Cosines on a scale the thresholds can rely on whatever the model: 0 is as similar as a
        greeting is to anything (models differ widely there: 0.8 for the base e5, 0.1 adapted), 1 is
        identical. Computed against :data:`NULL_QUERY` once per model."""
        if self._null is None and self.encoder is not None:
            self._null = float(np.mean(self.encoder.encode(list(NULL_QUERIES), kind="query")
                                       @ self.encoder.encode(list(NULL_PASSAGES), kind="query").T))
        floor = self._null or 0.0
        return np.clip((cosines - floor) / max(1e-6, 1.0 - floor), 0.0, 1.0)

    def answer(self, guide: Guide, question: str) -> FollowUp:
        """The passage of ``guide`` that answers ``question`` and its verdict, or a silent FollowUp."""
        found, vectors = self._passages(guide)
        if not found:
            return FollowUp(None, None, 0.0)
        text = normalize(question, limit=0)
        # Without a model (lexical mode) shared characters stand in for the similarity.
        dense = (self._relative(vectors @ self.encoder.encode([text], kind="query")[0])
                 if vectors is not None and self.encoder is not None
                 else np.asarray([_overlap(text, p.text) for p in found]))
        kinds = first_cue_kinds(text)
        about_material = "material" in kinds
        named = _material_named(text, guide.materials) if about_material else _material_named(
            text, guide.materials, at_least=2)  # "体检证明多久有效": about that material, whatever the cue
        asked = _asked_thing(text) if about_material else ""
        unsure = False
        if about_material and named is None and asked and vectors is not None and self.encoder is not None:
            # "结婚照" for "双方近期半身免冠合影照片": no shared characters, similar meaning.
            thing = self.encoder.encode([asked], kind="query")[0]
            near = sorted(((float(vectors[i] @ thing), i) for i, p in enumerate(found) if p.material is not None),
                          reverse=True)
            if near and near[0][0] >= NAMED_MATERIAL_SIMILARITY and (
                    len(near) == 1 or near[0][0] - near[1][0] >= NAMED_MATERIAL_MARGIN):
                named = found[near[0][1]].material
            elif near and near[0][0] >= NAMED_MATERIAL_SIMILARITY:
                unsure = True
        # The item's own name says nothing about which of its passages answers: "周末可以办身份证吗".
        own = set(guide.title)
        asked = "".join(ch for ch in text if ch not in own) or text
        scored = []
        for position, passage in enumerate(found):
            score = 0.6 * float(dense[position]) + 0.4 * _overlap(asked, passage.text) + _cue_bonus(text, passage)
            if named is not None and passage.material is named:
                score += 0.3
            scored.append((score, -position, passage))
        only = [i for i, (_, _, p) in enumerate(scored) if p.kind in kinds]
        if len(only) == 1 and kinds & {"time", "hours", "online", "courier", "appointment", "visits", "place"}:
            # "要几耐先攞到": the guide's one time-limit passage answers a time question, however little
            # of its wording the question shares.
            sc, order, p = scored[only[0]]
            scored[only[0]] = (max(sc, self.min_score), order, p)
        scored.sort(key=lambda s: (s[0], s[1]), reverse=True)
        score, _, passage = scored[0]
        also = next((p for sc, _, p in scored[1:3] if sc >= max(self.min_score, score - RUNNER_UP_MARGIN)
                     and p.text not in passage.text and passage.text not in p.text), None)
        if about_material and YES_NO.search(text):
            ruled_out = _ruled_out(text, guide)
            if ruled_out is not None:
                return FollowUp(ruled_out, "no", 1.0)
            if _COPY_Q.search(text) and named is None:
                forms = "；".join(f"{m.name}（{m.form or '未注明原件或复印件'}）" for m in guide.materials)
                return FollowUp(Passage("material_forms", forms), None, 1.0) if forms else FollowUp(None, None, 0.0)
            if named is None and asked and _BRING_Q.search(text):
                names = "；".join(m.name for m in guide.materials)
                if names:  # "要带离婚证吗" naming nothing on the list: the list is the answer
                    return FollowUp(Passage("materials_absent", names), None if unsure else "no", 1.0)
        if score < self.min_score:
            return FollowUp(None, None, score)
        return FollowUp(passage, _verdict(text, passage), score, also)


def first_cue_kinds(question: str) -> frozenset[str]:
    """The passage kinds the question's first cue asks for (empty when no cue fits)."""
    return next((kinds for cue, kinds, _ in CUES if cue.search(question)), frozenset())


_VERDICT_WORDS: dict[str, str] = {"yes": "可以。", "no": "不可以。", "partly": "视情况而定。"}
_MATERIAL_VERDICT_WORDS: dict[str, str] = {"yes": "需要。", "no": "不需要。", "partly": "特定情形需要。"}
#: "需要公示吗", "要不要预约": asks whether something is required, not whether it is allowed.
_NEED_Q = re.compile(r"需要|需不需要|要不要|用不用|必须|是否要|是不是要|得不得")
_NOT_NEEDED = re.compile(r"无需|不需要|不用|不必|免于|免予|可不")
_NEEDED = re.compile(r"必须|须|应当|需要|需提交|需提供")


def render_follow_up(guide: Guide, question: str, follow_up: FollowUp, hotline: str) -> str:
    """The reply: yes/no first when the guide settles it, then the guide's own words, quoted."""
    phone = guide.consult_phone or hotline
    if follow_up.passage is None:
        return (f"【{guide.title}】的办事指南没有写明这一点。为免白跑一趟，请致电 {phone} 咨询确认；"
                "也可以换个说法问我这个事项的材料、条件、时间、地点等。")
    passage = follow_up.passage
    if passage.kind == "material_forms":
        return f"【{guide.title}】的办事指南对各项材料的要求：{passage.text}。"
    if passage.kind == "materials_absent" and follow_up.verdict is None:
        return (f"【{guide.title}】的办事指南所列申请材料为：{passage.text}。请对照是否包含您说的材料；"
                f"拿不准的请致电 {phone} 确认。")
    if passage.kind == "materials_absent":
        return (f"不需要。【{guide.title}】的办事指南所列申请材料中没有您说的这项，所列材料为：{passage.text}。"
                f"如有疑问请致电 {phone} 确认。")
    asks_material = passage.material is not None and re.search(r"带|要|需|交", question) \
        and not _COPY_Q.search(question) and not re.search(r"后补|先办|先受理|不齐|缺|补交", question)
    words = _MATERIAL_VERDICT_WORDS if asks_material else _VERDICT_WORDS
    head = words[follow_up.verdict] if follow_up.verdict else ""
    if follow_up.verdict == "no" and passage.kind == "proxy" and not asks_material:
        head = "不可以，需要本人到场。"
    if passage.kind == "hours":
        head = {"no": "一般不可以。", "partly": "部分地方可以。"}.get(follow_up.verdict or "", head)
    elif passage.kind == "online" and _MUST_GO.search(question):
        head = "不一定，可以网上办理。"  # "一定得去中心排队吗": going is not the only way
    elif follow_up.verdict and not asks_material and passage.kind != "proxy" and _NEED_Q.search(question):
        # Whether it is *required*: "可以预约" does not say 需要; only the guide's own 无需/须 settle it.
        head = "不需要。" if _NOT_NEEDED.search(passage.text) else "需要。" if _NEEDED.search(passage.text) else ""
    said = f"{head}【{guide.title}】的办事指南写明：“{passage.text}”"
    if follow_up.also is not None:
        said += f"\n相关的还有：“{follow_up.also.text}”"
    return said
