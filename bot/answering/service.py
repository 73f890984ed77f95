"""The guide service: what the custom actions call.

It turns a question into a channel-neutral :class:`Reply`: what kind of answer it is, the
guides it is about, the aspect asked, buttons, and the rich text for chat channels. Other
channels render the same reply their own way (:mod:`bot.answering.speech` for the kiosk's voice,
:mod:`bot.answering.sheet` for the printable one-time-notification sheet). Actions stay glue: read
slots, call one method here, send the reply.

:func:`get_service` is the one process-wide accessor. The model and index are loaded on
its first call — the action server makes that call at start-up (``bot.servers.action_server``),
so no citizen waits for it, and merely importing ``actions`` stays cheap.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bot.answering import answers, followup
from bot.answering.followup import FollowUps
from bot.answering.lifeevents import LifeEvents
from bot.answering.ranking import HOW_TO
from bot.answering.retrieval import Retriever, SearchResult
from bot.contract import Answer, ButtonSpec, ItemRef
from bot.knowledge.embedding.encoder import Encoder, make_query_encoder
from bot.knowledge.index import LoadedIndex, read_manifest
from bot.knowledge.model import FaqEntry, Guide, Record
from bot.knowledge.text import has_content, normalize
from bot.lazy import Lazy
from bot.settings import Settings, get_settings

Kind = Literal[
    "notification", "aspect", "faq", "life_event", "candidates", "not_found", "empty", "which_item", "off_topic",
    "follow_up", "scope_noted", "escalate",
]
_STATUS = {
    "notification": "clear", "aspect": "clear", "faq": "clear", "life_event": "clear", "candidates": "ambiguous",
    "follow_up": "clear", "scope_noted": "none", "escalate": "none",
    "not_found": "none", "which_item": "none", "off_topic": "none", "empty": "empty",
}

#: After this many unresolved questions in a row, the reply offers the escalation.
ESCALATE_AFTER = 2
#: Payload of the escalation button (intent ``request_human``).
ESCALATE_PAYLOAD = "/request_human"
#: When "nothing fits" is less certain than this, the closest guides are still offered as
#: buttons under the apology: a citizen whose question was turned away loses one tap, not the item.
NEAR_MISS_P_NONE = 0.9
NEAR_MISS_BUTTONS = 3


@dataclass(frozen=True)
class Button:
    title: str
    payload: str


@dataclass(frozen=True)
class Reply:
    """One answer, before any channel renders it.

    ``guides`` is what the reply is about: the one item of a notification or aspect answer,
    a life event's items in the order to do them, the candidates offered (guides or FAQ entries),
    or the FAQ entry answered. ``guide_id`` is the item now under discussion (kept in the
    conversation), or None.
    """

    kind: Kind
    text: str
    buttons: list[Button] = field(default_factory=list)
    guides: tuple[Record, ...] = ()
    guide_id: str | None = None
    aspect: str | None = None
    event: str | None = None
    shared_materials: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def status(self) -> str:
        """clear / ambiguous / none / empty, as the retrieval calls them."""
        return _STATUS[self.kind]

    @property
    def resolved(self) -> bool:
        """Did this reply answer the citizen (rather than ask back or apologise)?"""
        return self.status == "clear"


def choose_payload(guide_id: str) -> str:
    """The button payload that selects a guide (intent ``choose_guide`` with entity ``guide_id``)."""
    return "/choose_guide" + json.dumps({"guide_id": guide_id})


def _guide_buttons(guides: Sequence[Record]) -> list[Button]:
    """One button per guide, labelled short and so that similar items can be told apart."""
    return [Button(label, choose_payload(g.id)) for label, g in zip(answers.button_labels(guides), guides, strict=True)]


def _candidates(result: SearchResult) -> Reply:
    """The close candidates of an unclear match, one button each."""
    guides = tuple(m.item for m in result.matches)
    return Reply("candidates", answers.render_candidates_prompt(), buttons=_guide_buttons(guides), guides=guides)


def _near_misses(result: SearchResult, settings: Settings) -> list[Record]:
    if result.p_none is not None:
        close = result.p_none < NEAR_MISS_P_NONE
    else:
        close = result.best is not None and result.best.dense >= settings.min_score - 0.03
    return [m.item for m in result.matches[:NEAR_MISS_BUTTONS]] if close else []


#: Words that only say *what* is asked ("要多少钱", "在哪办") or fill a sentence; what is left
#: of an aspect question after removing them names the thing asked about, if anything.
_ASPECT_WORDING = re.compile(
    # Longest first: an alternation takes the first that fits, and "几" must not leave "天" of "几天".
    r"(?:"
    r"where|long|much|when|what|价钱|地方|问一下|how|请问|想问|我想|那个|这个|需要|准备|提供|什么|哪些|多少|收费|费用|价格|免费|多久|时间|几天|时限|多长|哪里|哪儿|"
    r"地址|窗口|地点|几点|上班|办理|怎么|如何|流程|步骤|手续|材料|资料|证件|东西|网上|线上|预约|电话|热线|咨询|投诉|联系|方式|号码|结果|出来|下来|拿到|审批|审核|条件|资格|可以|"
    r"没有|一下|弄好|搞定|那|这|它|的|呢|吗|嘛|啊|呀|吧|了|么|哦|喔|还|也|都|就|要|得|需|带|啥|几|钱|价|贵|哪|办|去|在|跑|趟|次|批|好|能|不|是|有|我|你|您|们|弄|"
    r"搞|\s|[^\w]"
    r")+"
)


#: Intents that are answered from the knowledge base only when it clearly has the answer (a follow-up
#: about the item under discussion, or a confident match); otherwise their own response is given.
SMALL_TALK = frozenset({"greet", "chitchat", "out_of_scope", "affirm", "deny", "goodbye", "thank"})
#: Intents whose own response (small talk, the complaint form, the status form) is given only when the
#: knowledge base has no confident answer: a follow-up must fit well, a new question be clear.
TRIAGED = SMALL_TALK | {"complain", "ticket_status", "rate"}
#: Share of an aspect question's leftover pairs that must be in the item's own text for the question
#: to be about the item rather than about the hall's general rule.
GUIDE_TEXT_SHARE = 0.6
#: Search results :meth:`GuideService.search` keeps (a few KB each).
SEARCH_CACHE = 1024
#: A follow-up answer this strong stands even when the message also names another item's words.
STRONG_FOLLOW_UP = 0.85
#: How many first candidates, all of the item under discussion, make its FAQ entry among them the answer.
OWN_FAQ_TOP = 2
#: ... unless the question is (this close to) one of the guide's own names or typical questions.
OWN_QUESTION = 0.95
#: An aspect question whose leftover has less than this share of its characters in the item's text (and
#: that retrieval finds nothing for) is about something else ("特斯拉多少钱" after 身份证).
ELSEWHERE_SHARE = 0.5
#: A follow-up passage this close beats the aspect the NLU heard when the passage is of another kind.
OTHER_KIND_FOLLOW_UP = 0.40
#: Things that are not people asking for what only people can have ("给我家的猫办身份证", "火星签证"):
#: the nearest real item would be a wrong answer, so nothing fits. Person-only documents and subjects
#: that cannot hold them; animals' own items (犬只登记, 动物防疫) are not in the first list.
_NOT_A_PERSON = re.compile(
    r"猫|狗狗|宠物|电子宠物|游戏角色|游戏里|虚拟人|外星人?|火星|月球|玩偶|布娃娃|鹦鹉"
    r"|仓鼠|兔子|乌龟|穿越|时光机|时空|唐朝|宋朝|明朝|清朝|古代|神仙|长生不老|永生|魔法|奥特曼|哈利波特|霍格沃茨"
)
_PERSON_ONLY = re.compile(
    r"身份证|户口|护照|结婚|离婚|出生证明|出生医学|社保|医保|驾照|驾驶证|签证|学籍"
    r"|低保|公积金|退休|养老|居住证|通行证|营业执照|许可证"
)
#: What a bare place or office name ("我在广州", "天河区的") says besides the name.
_SCOPE_FILLER = re.compile(
    r"我在|我是|我住在?|我人在|人在|在|住|是|的|这边|那边|那里|这里|附近|本地|我|呢|啊"
    r"|呀|吧|哦|嗯|了|\s|[^\w]"
)


#: A complaint that asks for a person or says the matter cannot be done goes to the window.
_FOR_THE_WINDOW = (r"人工|真人|活人|客服|坐席|工作人员|领导|负责人|主管|human|让人来|派个人|找个人|投诉|反映"
                   r"|办不成|没办成|办不了|没办下来|不给办|跑了.{0,3}[趟次]|[三四五六七八九十几]次都")
_WANTS_A_PERSON = re.compile(_FOR_THE_WINDOW + r"|没人审核|没人管|没人理")
#: A complaint with nothing under discussion goes straight to the window's form when it asks for a person
#: or tells what the window is for (办不成, 跑了三趟); one that only says nobody sees to something ("他公积金
#: 里的钱到现在都没人管") is searched first: the item it is about, with the way to a person beside it.
_GOES_TO_THE_WINDOW = re.compile(_FOR_THE_WINDOW)
#: Intents a question about the item under discussion arrives with: its own, and the chat it is
#: sometimes heard as.
_MAY_ASK_OF_THE_ITEM = frozenset({"ask_item", "ask_aspect", "out_of_scope", "chitchat", "thank", "affirm", "deny"})
#: "…怎么办": what to do about a situation, which may be one of the item under discussion.
_WHAT_TO_DO = re.compile(r"(?:怎么办|咋办|咋整|怎么弄|怎么搞)[?？。!！]*$")
#: Questions about the assistant itself ("你是机器人吗", "你们这机器人不累吗"): small talk, whatever is
#: under discussion.
_ABOUT_THE_BOT = re.compile(
    r"你是|你们是|你叫|你几岁|你累|不累|机器人|助手|真人|聊天|你好|谢谢|你会|你能不能陪|讲个笑话|天气")
#: A complaint that asks what to do or whether something is allowed ("跑了三趟，怎么办", "让我点满意，
#: 这样可以吗") rather than venting ("到底怎么回事", "凭什么"): the knowledge base may answer it.
_COMPLAINT_ASKS = re.compile(
    r"怎么办|咋办|咋整|可以吗|行吗|对吗|合理吗|合法吗|正常吗|能不能|可不可以|是否|去哪|哪里|找谁|应该怎么"
    r"|该怎么|怎么处理|怎么反映|怎么投诉|要多久|多少钱|什么材料|要带"
)
#: "什么是一件事一次办", "容缺受理是啥意思": asks what a term means.
_WHAT_IS = re.compile(r"什么是|啥是|什么叫|何为|是什么|是啥|什么意思|啥意思|指的是")
#: A person asked for in so many words, whatever else the message says ("预约两次都失败，想找人工").
_ASKS_FOR_A_PERSON = re.compile(r"(?:想|要|找|转|叫|联系|接|请)个?(?:人工|真人|工作人员|客服|坐席)")
#: ... unless it asks what such a thing is ("办不成事反映窗口是干啥的").
_ASKS_ABOUT = re.compile(r"是干啥|是什么|干什么的|干嘛的|什么意思|怎么用|在哪|哪里")
#: "这件衣服", "这个手机": a thing pointed at, which a follow-up must be about the item to be one.
_THIS_THING = re.compile(
    r"这(?:件|个|条|双|台|辆|部|套|把|瓶|杯|张|块)(?!多少|要|能|可以|怎么|在|是|吗|呢)"
    r"([\u4e00-\u9fff]{1,4}?)(?:多少|要|能|可以|怎么|在|是|吗|呢|$)"
)
#: What "整个新的", "再办一个", "重新弄一下" say besides pointing back at the item under discussion.
_POINTS_BACK = re.compile(r"[整弄办补换搞做领拿重新再个一张本件份下它这那的了呢啊呀]")
#: Words before a name that make it something to bring, not another item to do.
_BRINGS = re.compile(r"带|交|提供|开|准备|拿|复印")


def impossible(text: str) -> bool:
    """A request no government service can fulfil: a person-only document for an animal or a toy,
    a visa for Mars. Recognised as nothing-fits instead of matched to the nearest real item."""
    return bool(_NOT_A_PERSON.search(text) and _PERSON_ONLY.search(text))


def _clear_faq(result: SearchResult) -> FaqEntry | None:
    """The FAQ entry retrieval clearly found, if its best match is one."""
    best = result.best.item if result.best is not None and result.status == "clear" else None
    return best if isinstance(best, FaqEntry) else None


def _guide_text(guide: Guide) -> str:
    """Every passage of ``guide`` a follow-up may be answered with, as one normalised text."""
    return normalize(" ".join(p.text for p in followup.passages(guide)), limit=0)


def _word_pairs(words: str) -> set[str]:
    """The pairs of adjacent letters or digits in ``words`` (punctuation breaks a pair)."""
    return {words[i:i + 2] for i in range(len(words) - 1) if words[i].isalnum() and words[i + 1].isalnum()}


def _leftover(text: str) -> str:
    """What an aspect question names besides the aspect: '这件衣服多少钱' -> '件衣服'."""
    return _ASPECT_WORDING.sub("", normalize(text))


class GuideService:
    """Answers questions from one knowledge base index."""

    def __init__(self, retriever: Retriever, settings: Settings) -> None:
        self.retriever = retriever
        self.settings = settings
        self.life_events = LifeEvents(retriever.guides)
        encoder = getattr(retriever, "encoder", None)
        index = getattr(retriever, "index", None)
        store = None if encoder is None else followup.PassageVectors.load(getattr(index, "directory", None),
                                                                          encoder.name)
        self.follow_ups = FollowUps(encoder, store=store)
        self._searches: dict[tuple[object, ...], SearchResult] = {}
        self._searches_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, encoder: Encoder | None = None) -> GuideService:
        """Load the model (unless given) and the index named by ``settings``."""
        read_manifest(settings.index_dir)  # fail fast, before spending seconds loading the model
        encoder = encoder or make_query_encoder(settings.model_dir, settings.query_model_dir, settings.query_encoder,
                                                settings.max_tokens, settings.encoder, settings.threads)
        index = LoadedIndex.load(settings.index_dir, expect_model=encoder.name, expect_dim=encoder.dim)
        import faiss

        # FAISS's OpenMP pool takes every core by default; one search over ten thousand vectors is
        # faster on one thread (0.2 ms, 0.5 ms on two), and the other core is Rasa's.
        faiss.omp_set_num_threads(settings.threads)
        return cls(Retriever(index, encoder, settings), settings)

    def guide(self, guide_id: str | None) -> Guide | None:
        """The item guide with this id (None for an unknown id or an FAQ entry's)."""
        record = self.retriever.by_id.get(guide_id) if guide_id else None
        return record if isinstance(record, Guide) else None

    def record(self, record_id: str | None) -> Record | None:
        """The guide or FAQ entry with this id."""
        return self.retriever.by_id.get(record_id) if record_id else None

    def sheet_url(self, guide_id: str) -> str:
        """Where a citizen opens (and prints or forwards) an item's one-time-notification sheet."""
        from urllib.parse import quote

        return self.settings.sheet_url.replace("{id}", quote(guide_id, safe=""))

    def sheet_html(self, guide_id: str) -> str | None:
        """The printable sheet of an item, or None for an unknown id."""
        from bot.answering.sheet import render_sheet

        guide = self.guide(guide_id)
        if guide is None:
            return None
        related = [g for g in (self.guide(r) for r in guide.related) if g is not None]
        return render_sheet(guide, self.settings.hotline, related)

    def search(self, text: str, *, region: str | None = None, department: str | None = None,
               k: int | None = None, exclude: Collection[str] = ()) -> SearchResult:
        """The retriever's result, remembered: deciding one message asks about the same text several
        times (is it a follow-up, does the NLU's item span name an item, a family, an event's item), and
        a hall hears the same questions all day. The index never changes under a running service, so a
        remembered result stays right; :data:`SEARCH_CACHE` results are kept, least recently used out."""
        key = (text, region, department, k, frozenset(exclude))
        with self._searches_lock:
            hit = self._searches.pop(key, None)
            if hit is not None:
                self._searches[key] = hit
                return hit
        result = self.retriever.search(text, region=region, department=department, k=k, exclude=exclude)
        with self._searches_lock:
            self._searches[key] = result
            while len(self._searches) > SEARCH_CACHE:
                self._searches.pop(next(iter(self._searches)))
        return result

    # --- answers ------------------------------------------------------------------------

    def answer_question(
        self, text: str, *, region: str | None = None, department: str | None = None, failures: int = 0
    ) -> Reply:
        """Answer "what do I need to get X done": the notification, candidate buttons, or next steps.

        ``failures`` is how many questions in a row went unresolved before this one; when
        this one fails too and the count reaches :data:`ESCALATE_AFTER`, the reply offers
        the escalation (a person, the window, the hotline) instead of asking yet again.
        """
        result = self.search(text, region=region, department=department)
        if result.status == "empty":
            return Reply("empty", answers.render_empty())
        if result.status == "none" or result.best is None:
            return self._not_found(result, failures)
        if result.status == "ambiguous":
            if failures + 1 >= ESCALATE_AFTER:
                reply = _candidates(result)
                return Reply("candidates", reply.text + "\n" + answers.render_escalation_offer(self.settings.hotline),
                             buttons=[*reply.buttons, self._escalate_button()], guides=reply.guides)
            return _candidates(result)
        return self.answer_record(result.best.item.id)

    def answer_record(self, record_id: str) -> Reply:
        """A chosen or found record: a guide's one-time notification, or an FAQ entry's answer."""
        record = self.record(record_id)
        if isinstance(record, FaqEntry):
            return self.answer_faq(record)
        return self.answer_guide(record_id)

    def answer_faq(self, entry: FaqEntry, current_id: str | None = None) -> Reply:
        """The office's official answer, verbatim, with its department and source, and buttons to the
        items it belongs to. The first of them becomes the item under discussion (else the current one
        stays), so "那要多少钱？" next refers to it."""
        related = [g for g in (self.guide(r) for r in entry.related) if g is not None]
        text = answers.render_faq(entry, self.settings.hotline)
        # A hall rule's related items are examples: the item under discussion stays.
        under_discussion = self._item_of(entry) or current_id
        return Reply("faq", text, buttons=_guide_buttons(related), guides=(entry,), guide_id=under_discussion)

    def _escalate_button(self) -> Button:
        return Button(answers.ESCALATE_BUTTON, ESCALATE_PAYLOAD)

    def _not_found(self, result: SearchResult | None, failures: int) -> Reply:
        hotline = self.settings.hotline
        near = _near_misses(result, self.settings) if result is not None else []
        text = answers.render_not_found(hotline, offer_near=bool(near))
        buttons = _guide_buttons(near)
        if failures + 1 >= ESCALATE_AFTER:
            text += "\n" + answers.render_escalation_offer(hotline)
            buttons.append(self._escalate_button())
        return Reply("not_found", text, buttons=buttons, guides=tuple(near))

    def answer_guide(self, guide_id: str) -> Reply:
        """The full one-time notification for a known guide, with its related items as buttons."""
        guide = self.guide(guide_id)
        if guide is None:
            return self._not_found(None, 0)
        related = [g for g in (self.guide(r) for r in guide.related) if g is not None]
        text = answers.render_notification(guide, self.settings.hotline, related)
        return Reply("notification", text, buttons=_guide_buttons(related), guides=(guide,), guide_id=guide.id)

    def answer_aspect(
        self, text: str, aspect: str | None, current_id: str | None, *, names_item: bool,
        region: str | None = None, failures: int = 0, last_question: str | None = None,
    ) -> Reply:
        """Answer one aspect ("要多少钱?") of the item named in ``text``, else of the current item.

        Args:
            text: the user's message.
            aspect: canonical aspect name (see ``answers.ASPECTS``); None means the whole notification.
            current_id: the guide under discussion, from the conversation.
            names_item: True when the NLU found an item mention in ``text``, so the
                message may switch the conversation to another item.
        """
        guide = self.guide(current_id)
        leftover = _leftover(text)
        result: SearchResult | None = None
        if guide is None and not names_item and len(leftover) < 2 and last_question and aspect in answers.ASPECTS:
            offered = self._offered(last_question, region)
            if offered:  # "要带什么" right after candidates: the first one's answer, the others still offered
                first, others = offered[0], offered[1:]
                body = answers.render_aspect(first, aspect, self.settings.hotline)
                if others:
                    body += "\n" + answers.render_other_candidates()
                buttons = [Button(answers.FULL_NOTIFICATION_BUTTON, choose_payload(first.id)), *_guide_buttons(others)]
                return Reply("aspect", body, buttons=buttons, guides=(first,), guide_id=first.id, aspect=aspect)
        if guide is None and not names_item and len(leftover) < 2 and failures + 1 < ESCALATE_AFTER:
            # "要多少钱" with nothing under discussion: it names nothing to search for.
            return Reply("which_item", answers.render_which_item(aspect or ""), aspect=aspect)
        if names_item or guide is None or len(leftover) >= 2:
            result = self.search(text, region=region)
            rule = self._hall_rule(result)
            if rule is not None and (guide is None or names_item or not self._refers_to(leftover, guide)):
                # "办事要带复印件吗", "综合窗口是什么": the hall's own answer, not an aspect of some guide.
                return self.answer_faq(rule, current_id)
            found = [m for m in result.matches if isinstance(m.item, Guide)]  # an aspect is a guide's
            # The retriever's own "clear" stands when a guide leads: it knows an item named whole
            # ("注册公司要多久") from rivals that only score alike.
            clear = bool(found) and ((result.status == "clear" and result.matches[0] is found[0]) or (
                result.status != "none" and (
                    len(found) == 1 or found[0].score - found[1].score >= self.settings.clear_margin)))
            if clear and isinstance(found[0].item, Guide):
                # Another item only when the question names it: "多久能拿到新证" stays with the item, and
                # so does "要我自己回老家开证明吗" after 医保转移 (retrieval places it at 户籍证明, which it
                # does not name).
                if guide is None or names_item or (not self._refers_to(leftover, guide)
                                                   and self.names_other_item(text, guide)):
                    guide = found[0].item
            elif result.status != "none" and found and (names_item or guide is None):
                guides = tuple(m.item for m in found)
                return Reply("candidates", answers.render_candidates_prompt(), buttons=_guide_buttons(guides),
                             guides=guides)
            elif guide is not None and not names_item and not self._refers_to(leftover, guide) \
                    and self._elsewhere(text, leftover, guide, result):
                # "这件衣服多少钱" right after an identity-card answer: not a question about that item.
                return Reply("off_topic", answers.render_off_topic(guide, aspect, self.settings.hotline),
                             buttons=[Button(answers.FULL_NOTIFICATION_BUTTON, choose_payload(guide.id))],
                             guide_id=guide.id, aspect=aspect)
        if guide is None:
            if failures + 1 >= ESCALATE_AFTER or (result is not None and len(leftover) >= 2):
                # "特斯拉多少钱": it names something, and nothing in the knowledge base fits it.
                return self._not_found(result, failures)
            return Reply("which_item", answers.render_which_item(aspect or ""), aspect=aspect)
        if aspect not in answers.ASPECTS:
            return self.answer_guide(guide.id)
        full = Button(answers.FULL_NOTIFICATION_BUTTON, choose_payload(guide.id))
        return Reply("aspect", answers.render_aspect(guide, aspect, self.settings.hotline), buttons=[full],
                     guides=(guide,), guide_id=guide.id, aspect=aspect)

    def _about_the_candidates(self, text: str, last_question: str, region: str | None) -> Reply | None:
        """"女方才19岁可以吗" right after candidates for "我和对象打算下个月去扯证", none chosen yet: a
        follow-up question is answered for the first candidate (the ranker's best), the others still
        offered, unless the question finds an item of its own. A kiosk voice user may never tap one."""
        said = normalize(text, limit=0)
        if not (followup.first_cue_kinds(said) or followup.YES_NO.search(said) or followup.QUESTION.search(said)):
            return None
        offered = self._offered(last_question, region)
        if not offered:
            return None
        own = self.search(text, region=region)
        if own.status == "clear" and own.best is not None and self._item_of(own.best.item) not in {
                g.id for g in offered}:
            return None  # a question about another item
        first, others = offered[0], offered[1:]
        reply, _ = self._follow_up(first, text, strict=False)
        if reply is None:
            return None
        body = reply.text + ("\n" + answers.render_other_candidates() if others else "")
        return Reply(reply.kind, body, buttons=[*reply.buttons, *_guide_buttons(others)], guides=(first,),
                     guide_id=first.id)

    def _offered(self, last_question: str, region: str | None) -> list[Guide]:
        """The items offered as candidates for the last question (none when it found one, or nothing)."""
        earlier = self.search(last_question, region=region)
        if earlier.status != "ambiguous":
            return []
        return [m.item for m in earlier.matches if isinstance(m.item, Guide)]

    def _own_words(self, words: str, guide: Guide, text: str) -> bool:
        """Are ``words`` (what the NLU took for an item name) a phrase of ``guide``'s own text, in a
        message retrieval does not place elsewhere (clearly, or as a family of items this one is not in)?
        ("需要公示吗" after 企业注销登记: yes;
        "身份证怎么办" after 结婚登记, whose materials name the identity card: no.)"""
        clean = normalize(words, limit=0)
        if len(clean) < 2 or not (clean in normalize(guide.title, limit=0) or any(
                clean in normalize(p.text, limit=0) for p in followup.passages(guide))):
            return False
        result = self.search(text)
        if result.status == "ambiguous" and self.retriever.names_a_family(result.query, result.matches):
            matches = result.matches  # "身份证怎么办": the identity-card items, this one not among them
        elif result.status == "clear":
            matches = result.matches[:1]
        else:
            return True
        return guide.id in {self._item_of(m.item) for m in matches}

    def _names_an_item(self, words: str, guide: Guide, text: str) -> bool:
        """Are ``words`` (what the NLU took for an item name) the name of another item: one of the
        knowledge base's item names or aliases, or words retrieval clearly places at another item?
        The NLU marks spans like "新证", "证明" or "开个" as items; only the knowledge base can say."""
        clean = normalize(words, limit=0)
        if len(clean) < 2:
            return False
        if any(guide.id not in e.keys for e in self.retriever.entities.items(clean)):
            return True
        whole = self.search(text)
        if whole.status == "ambiguous" and self.retriever.names_a_family(whole.query, whole.matches):
            # "身份证怎么办": the message names a family of items (补领, 换领, 临时…), this one not among them.
            return guide.id not in {self._item_of(m.item) for m in whole.matches}
        result = self.search(clean)
        if result.status != "clear" or result.best is None:
            return False
        return self._item_of(result.best.item) not in ("", guide.id)

    def _refers_to(self, leftover: str, guide: Guide) -> bool:
        """Does what an aspect question names besides the aspect refer to ``guide``: its names, or words
        of its own text ("原件复印件" of its materials' forms)?"""
        return self._about(leftover, guide) or self._in_guide_text(leftover, guide)

    @staticmethod
    def _in_guide_text(words: str, guide: Guide) -> bool:
        """Are most of ``words``' character pairs in ``guide``'s own passages? "原件复印件" (of
        "材料要原件还是复印件") is in the forms of the item's materials: a question about this item's
        materials, not about the hall's rule for copies."""
        pairs = _word_pairs(words)
        if not pairs:
            return False
        body = _guide_text(guide)
        return sum(1 for pair in pairs if pair in body) / len(pairs) >= GUIDE_TEXT_SHARE

    def _faq_of(self, text: str, guide: Guide) -> FaqEntry | None:
        """An FAQ entry about ``guide`` that retrieval clearly finds for the whole message, or that leads
        it with nothing but ``guide`` itself beside it: "旧卡里还有钱怎么办" after 社保卡补换 is too chatty for
        retrieval to be sure on its own, but with the item under discussion the item's own entry about
        it (its first two candidates: the guide and the entry, as likely as each other) is the answer —
        unless the question is one of the guide's own ("我身份证过期了怎么办" asked again)."""
        result = self.search(text)
        entry = _clear_faq(result)
        if entry is not None:
            return entry if self._item_of(entry) == guide.id else None
        top = result.matches[:OWN_FAQ_TOP]
        if result.status == "clear" and top and isinstance(top[0].item, Guide) and max(
                top[0].features.get(f, 0.0) for f in ("d_name", "d_alias", "d_question")) >= OWN_QUESTION:
            return None  # "我身份证过期了怎么办" again: one of the guide's own questions, its whole answer
        if len(top) < OWN_FAQ_TOP or any(self._item_of(m.item) != guide.id for m in top):
            return None
        if (len(result.matches) > OWN_FAQ_TOP
                and top[-1].score - result.matches[OWN_FAQ_TOP].score < self.settings.clear_margin):
            return None  # something else is as close
        return next((m.item for m in top if isinstance(m.item, FaqEntry)
                     and top[0].score - m.score < self.settings.clear_margin), None)  # the entry as likely

    def _placed_at(self, text: str, guide: Guide) -> bool:
        """Does retrieval clearly place the whole message at ``guide`` (its guide or an FAQ entry of it)?"""
        result = self.search(text)
        return result.status == "clear" and result.best is not None and self._item_of(result.best.item) == guide.id

    def _item_of(self, record: Record) -> str:
        """The item a record is about (:meth:`Retriever.item_of`: "" for the hall's own rules)."""
        return self.retriever.item_of(record)

    def _asks_for_another(self, clean: str, guide: Guide) -> bool:
        """Does a how-to question ask for an item of its own ("飞船驾驶证怎么办理")? A bare "…怎么办" about
        words of the item's own text ("旧卡里还有钱怎么办" after 社保卡补换) does not."""
        if not HOW_TO.search(clean):
            return False
        if not _WHAT_TO_DO.search(clean):
            return True
        body = _guide_text(guide)
        return not any(pair in body for pair in _word_pairs(_WHAT_TO_DO.sub("", clean)))

    def _hall_rule(self, result: SearchResult) -> FaqEntry | None:
        """The hall's own FAQ entry (one about no particular item) when retrieval clearly found one."""
        entry = _clear_faq(result)
        return entry if entry is not None and not self._item_of(entry) else None

    def _hall_rule_for(self, text: str) -> bool:
        """Does retrieval clearly answer ``text`` with one of the hall's own rules?"""
        return self._hall_rule(self.search(text)) is not None

    def _elsewhere(self, text: str, leftover: str, guide: Guide, result: SearchResult) -> bool:
        """Is an aspect question that names something besides the aspect about something other than
        ``guide``? Only a thing pointed at ("这件衣服多少钱"), or words the knowledge base has nothing
        for and the item's text shares no character with ("特斯拉多少钱"). "要带哪些东西去", "改名字收费不"
        right after an item are about it: a citizen asking is told the item's answer, never "out of
        scope"."""
        thing = _THIS_THING.search(normalize(text, limit=0))
        if thing and _ASPECT_WORDING.sub("", thing.group(1)):
            return True
        if result.status != "none":
            return False
        body = _guide_text(guide) + normalize(guide.title, limit=0)
        chars = [ch for ch in leftover if ch.isalnum()]
        return bool(chars) and sum(1 for ch in chars if ch in body) / len(chars) < ELSEWHERE_SHARE

    def _about(self, leftover: str, guide: Guide) -> bool:
        """Does the leftover of an aspect question plausibly refer to ``guide``? Words that only point
        back at it ("整个新的要多少钱", "再补一个") do."""
        if not _POINTS_BACK.sub("", leftover):
            return True
        names = normalize(" ".join((guide.title, *guide.aliases)), limit=0)
        return any(ch in names for ch in leftover if ch.isalnum())

    def to_answer(self, reply: Reply) -> Answer:
        """The reply as the contract every channel reads (:mod:`bot.contract`): built here, once."""
        from bot.answering.speech import speak

        labels = answers.button_labels(reply.guides) if reply.guides else []
        items = tuple(ItemRef(r.id, r.title if isinstance(r, Guide) else r.question, label,
                              "guide" if isinstance(r, Guide) else "faq")
                      for r, label in zip(reply.guides, labels, strict=True))
        guide = self.guide(reply.guide_id)
        sections = answers.notification_sections(guide, self.settings.hotline) \
            if reply.kind == "notification" and guide is not None else ()
        return Answer(
            kind=reply.kind, text=reply.text, speech=speak(reply, self.settings.hotline), items=items,
            item_id=reply.guide_id, aspect=reply.aspect, event=reply.event, sections=sections,
            buttons=tuple(ButtonSpec(b.title, b.payload) for b in reply.buttons),
            sheet_url=self.sheet_url(reply.guide_id) if reply.guide_id and reply.kind == "notification" else None,
        )

    # --- conversation: follow-ups, places, routing ----------------------------------------------

    def names_other_item(self, text: str, guide: Guide) -> bool:
        """Does ``text`` name an item other than ``guide`` (by one of the knowledge base's item names)?"""
        own = {normalize(n, limit=0) for n in (guide.title, *guide.aliases)}
        clean = normalize(text, limit=0)
        return any(guide.id not in e.keys and e.text not in own and len(e.text) >= 2
                   and not _BRINGS.search(clean[max(0, e.start - 4):e.start])  # "要带结婚证吗": a material
                   for e in self.retriever.entities.items(clean))

    def answer_deferral(self, guide: Guide | None, text: str) -> Reply:
        """"能不能先办后补材料": the item's own 容缺/承诺 flags first, then the hall's general rule."""
        result = self.search(text)
        rule = next((m.item for m in result.matches if isinstance(m.item, FaqEntry) and not self._item_of(m.item)),
                    None)
        if guide is None:
            if rule is not None:
                return self.answer_faq(rule)
            return self.answer_question(text)
        parts = [followup.deferral_text(guide)]
        if rule is not None:
            parts.append("大厅的一般规定（" + rule.question + "）：" + rule.answer.strip())
        parts.append(f"具体以窗口审核为准，拿不准可致电 {guide.consult_phone or self.settings.hotline}。")
        full = Button(answers.FULL_NOTIFICATION_BUTTON, choose_payload(guide.id))
        return Reply("follow_up", "\n".join(parts), buttons=[full], guides=(guide,), guide_id=guide.id)

    def follow_up(self, guide: Guide, text: str, *, strict: bool = False) -> Reply | None:
        """Answer a question about the item under discussion from the guide's own text.

        Returns None when the question is not a follow-up the guide can answer or decline: with
        ``strict`` (the NLU took the message for small talk) only a passage that fits well, or a
        question with a clear cue of what it asks, is answered."""
        return self._follow_up(guide, text, strict=strict)[0]

    def _follow_up(self, guide: Guide, text: str, *, strict: bool, found: followup.FollowUp | None = None,
                   silent_ok: bool = False) -> tuple[Reply | None, followup.FollowUp | None]:
        """:meth:`follow_up`, with the passage search's result when it ran (the caller weighs its score);
        ``found``: that search, when the caller already ran it. ``silent_ok``: a question no passage
        answers is told that the guide is silent (and the phone), not passed on."""
        said = normalize(text, limit=0)  # the cues are written in Simplified: "最長貸幾年嗎" must meet them
        if followup.DEFERRAL.search(said):
            return self.answer_deferral(guide, text), None
        thing = _THIS_THING.search(said)
        # "这个价", "这个时间": the aspect itself pointed at, not a thing; "这件衣服" is a thing.
        if thing and _ASPECT_WORDING.sub("", thing.group(1)) and not self._about(thing.group(1), guide):
            return None, None  # "这件衣服多少钱" right after an identity-card answer: about something else
        found = found or self.follow_ups.answer(guide, text)
        cue = bool(followup.first_cue_kinds(said))
        asks = cue or bool(followup.YES_NO.search(said) or followup.QUESTION.search(said))
        if found.passage is None and not (silent_ok and asks) and (
                not cue or (strict and not followup.YES_NO.search(said))):
            return None, found
        weak = found.score < self.follow_ups.min_score + 0.05
        if found.passage is not None and strict and (not asks or (not cue and weak)):
            return None, found
        full = Button(answers.FULL_NOTIFICATION_BUTTON, choose_payload(guide.id))
        body = followup.render_follow_up(guide, said, found, self.settings.hotline)
        return Reply("follow_up", body, buttons=[full], guides=(guide,), guide_id=guide.id), found

    def respond(
        self, text: str, intent: str, *, current_id: str | None = None, aspect: str | None = None,
        names_item: bool = False, region: str | None = None, department: str | None = None, failures: int = 0,
        last_question: str | None = None, item_words: str | None = None, event: str | None = None,
    ) -> Reply | None:
        """The knowledge base's answer to a message the NLU took for ``intent``, or None when the
        intent's own response (small talk, out of scope, the complaint form) should be given.

        Retrieval goes first: a follow-up about the item under discussion is answered from its
        guide; a region or department in the sentence filters that sentence's question; a message
        declared small talk or a complaint is answered when the knowledge base clearly fits it;
        requests no service can fulfil are nothing-fits.

        ``names_item``: the NLU found an item mention (``item_words``, when given, are its words).
        ``event``: the life event last answered (一件事), when no single item is under discussion: an
        aspect question ("在哪办") is answered for each of its items, a question about one of them
        ("刻章要钱吗") for that one."""
        clean = normalize(text)
        if not has_content(clean):
            return Reply("empty", answers.render_empty())
        if impossible(clean):
            return self._not_found(None, failures)
        if intent != "complain" and _ASKS_FOR_A_PERSON.search(clean) and not _ASKS_ABOUT.search(clean):
            # Whatever the NLU took it for: the ticket form for the window (the action opens it).
            return Reply("escalate", answers.render_escalation_offer(self.settings.hotline),
                         buttons=[self._escalate_button()])
        if aspect is not None:  # "在哪里交材料": the NLU heard 材料, the question asks where
            aspect = answers.asked_aspect(clean) or aspect
        guide = self.guide(current_id)
        if guide is None and event and intent not in SMALL_TALK:
            members = self.life_events.plan(event).guides
            if members and aspect in answers.ASPECTS and len(_leftover(text)) < 2:
                return self.answer_event_aspect(event, aspect)
            member = self._event_member(text, members)
            if member is not None:  # the rest is a question about that item
                guide, current_id = member, member.id
        if guide is None and not event and last_question and not names_item and intent != "inform" and not (
                aspect in answers.ASPECTS and len(_leftover(text)) < 2):  # a bare "要多久": the aspect's answer
            pending = self._about_the_candidates(text, last_question, region)
            if pending is not None:
                return pending
        if intent == "inform":
            scoped = self.answer_scope(text, guide, last_question=last_question, region=region,
                                       department=department, failures=failures)
            if scoped is not None:
                return scoped
        asks = bool(followup.YES_NO.search(clean) or followup.QUESTION.search(clean))
        if guide is not None and intent == "complain" and _WANTS_A_PERSON.search(clean) \
                and not _ASKS_ABOUT.search(clean) and not _COMPLAINT_ASKS.search(clean):
            return None
        if guide is not None and names_item and item_words and (
                self._own_words(item_words, guide, text) or not self._names_an_item(item_words, guide, text)):
            # "需要公示吗" after 企业注销登记: the NLU's "item" is a word of this guide; "新证能寄到家里吗":
            # "新证" is no item of the knowledge base.
            names_item = False
        if guide is not None:
            other = names_item or self.names_other_item(text, guide)
            if other and self._placed_at(text, guide):
                other = False  # "领失业金期间医保谁交": 医保 is an item, but the question is about this one
            entry = None if other or len(_leftover(text)) < 2 else self._faq_of(text, guide)
            if entry is not None:
                # "津贴是怎么算的": the office's own answer to this question about this item.
                return self.answer_faq(entry, guide.id)
            if aspect is not None and not other and intent not in SMALL_TALK and not followup.YES_NO.search(clean) \
                    and not followup.DEFERRAL.search(clean):
                # "体检证明多久有效": the NLU hears the time aspect, the guide answers it in a material's
                # note; a passage of another kind that fits well is the answer.
                fit = self.follow_ups.answer(guide, text)
                if fit.passage is not None and fit.score >= OTHER_KIND_FOLLOW_UP \
                        and fit.passage.kind not in followup.ASPECT_KINDS.get(aspect, ()):
                    reply, _ = self._follow_up(guide, text, strict=False, found=fit)
                    if reply is not None:
                        return reply
                # "要带什么材料": the aspect's whole answer (the list), not one passage of it.
                return self.answer_aspect(text, aspect, guide.id, names_item=False, region=region,
                                          failures=failures)
            # A "status" question that names no ticket (the triage checked) is about the item: not strict.
            reply, found = self._follow_up(guide, text, strict=intent in TRIAGED and intent != "ticket_status")
            if reply is not None and (not other or (reply.kind == "follow_up" and (
                    found or self.follow_ups.answer(guide, text)).score >= STRONG_FOLLOW_UP)):
                return reply
            if reply is None and not other and asks and aspect is None and not _ABOUT_THE_BOT.search(clean) \
                    and not self._asks_for_another(clean, guide) \
                    and intent in _MAY_ASK_OF_THE_ITEM \
                    and not self._hall_rule_for(text):
                # "会有人到家里来看吗", "能不能一年交一次" right after 低保 / 灵活就业, "他才15岁，我当家长的能替他
                # 去申请吗" after 临时身份证 (an FAQ of 居住证 fits it better): whatever the NLU heard, a question
                # that names no other item is about the one under discussion: its passage, or that the guide
                # is silent and whom to call. Never "out of scope", "not found" or another item's answer;
                # only the hall's own rules ("办不成事反映窗口在哪") are answered as they are, and "飞船驾驶证
                # 怎么办理" asks for an item of its own.
                reply, _ = self._follow_up(guide, text, strict=False, found=found, silent_ok=True)
                if reply is not None:
                    return reply
            if aspect is not None and not other:
                return self.answer_aspect(text, aspect, guide.id, names_item=False, region=region,
                                          failures=failures)
        if guide is None and followup.DEFERRAL.search(clean) and intent not in SMALL_TALK:
            return self.answer_deferral(None, text)
        if intent == "ask_aspect" or (aspect is not None and intent not in TRIAGED):
            return self.answer_aspect(text, aspect, current_id, names_item=names_item, region=region,
                                      failures=failures, last_question=last_question)
        if intent == "complain" and _GOES_TO_THE_WINDOW.search(clean) and not _ASKS_ABOUT.search(clean) and (
                not _COMPLAINT_ASKS.search(clean) or _ASKS_FOR_A_PERSON.search(clean)):
            return None  # "想找人工", "我要反映": the window, not an answer
        if intent in TRIAGED:
            # A complaint that asks something ("材料齐了还让我跑了三趟，怎么办", "让我一定点满意，这样可以吗")
            # is answered when the knowledge base has the answer, with the way to a person beside it.
            result = self.search(text, region=region, department=department)
            best = result.best.item if result.best is not None else None
            if intent == "complain" and result.status == "ambiguous" and result.matches:
                offer = _candidates(result)
                return Reply(offer.kind, offer.text, buttons=[*offer.buttons, self._escalate_button()],
                             guides=offer.guides)
            if result.status != "clear" or best is None:
                return None
            reply = self.answer_record(best.id)
            if intent == "complain":  # the item, and still the way to a person if it cannot be done
                return Reply(reply.kind, reply.text + "\n" + answers.render_escalation_offer(self.settings.hotline),
                             buttons=[*reply.buttons, self._escalate_button()], guides=reply.guides,
                             guide_id=reply.guide_id)
            return reply
        if followup.DEFERRAL.search(clean):
            return self.answer_deferral(None, text)
        return self.answer_question(text, region=region, department=department, failures=failures)

    def answer_scope(
        self, text: str, guide: Guide | None, *, last_question: str | None, region: str | None,
        department: str | None, failures: int = 0,
    ) -> Reply | None:
        """A region or department was named. With a question in the same sentence ("我在广州，办护照去
        哪里"), that question is answered for the place; a bare place re-answers the item under
        discussion for it (or the last question); with nothing to re-answer, it is noted."""
        entities = self.retriever.entities.find(text, ("REGION", "DEPARTMENT"))
        leftover = normalize(text, limit=0)
        for entity in sorted(entities, key=lambda e: e.start, reverse=True):
            leftover = leftover[:entity.start] + leftover[entity.end:]
        for named_value in (region, department):  # what the NLU read as a place, known to the guides or not
            if named_value:
                leftover = leftover.replace(normalize(named_value, limit=0), "")
        leftover = _SCOPE_FILLER.sub("", leftover)
        regions = [k for e in entities if e.label == "REGION" for k in e.keys]
        region = (max(regions, key=len) if regions else None) or region
        named = "、".join(e.text for e in entities) or "、".join(x for x in (region, department) if x)
        if len(leftover) >= 2:
            return None  # a question of its own: answered below, the place filtering it
        if guide is not None:
            result = self.search(answers.short_title(guide.title, 60), region=region, department=department)
            same = [m.item for m in result.matches if isinstance(m.item, Guide)
                    and answers.core_title(m.item.title) == answers.core_title(guide.title)]
            local = next((g for g in same if g.region and region and g.region.startswith(region)), None)
            return self.answer_guide((local or guide).id)
        if last_question:
            if region:  # the candidates offered for the last question, one of them of this place
                result = self.search(last_question, region=region, department=department)
                here = [m.item for m in result.matches if isinstance(m.item, Guide) and m.item.region
                        and m.item.region.startswith(region)]
                top = result.best.item if result.best is not None else None
                # The place's version of the best candidate (兼职律师执业许可 of the province -> of 广州),
                # else the place's only candidate.
                same = [g for g in here if isinstance(top, Guide)
                        and answers.core_title(g.title) == answers.core_title(top.title)]
                if result.status == "ambiguous" and (len(same) == 1 or len(here) == 1):
                    return self.answer_guide((same or here)[0].id)
            return self.answer_question(last_question, region=region, department=department, failures=failures)
        return Reply("scope_noted", answers.render_scope_noted(named))

    def _event_member(self, text: str, members: Sequence[Guide]) -> Guide | None:
        """The item of a life event a question is about ("刻章要钱吗" after 开办企业一件事), if retrieval
        places the question at one of them."""
        result = self.search(text)
        ids = {g.id: g for g in members}
        # Among the event's few items a weaker match will do: "nothing fits" (which weighs the whole
        # knowledge base) is overruled when the best match is one of them.
        matches = result.matches[:1] if result.status == "none" else result.matches
        return next((ids[self._item_of(m.item)] for m in matches if self._item_of(m.item) in ids), None)

    def answer_event_aspect(self, event: str, aspect: str) -> Reply:
        """One aspect ("在哪办", "要多久") of every item of a life event, in the order to do them."""
        plan = self.life_events.plan(event)
        text = answers.render_event_aspect(plan, aspect, self.settings.hotline)
        return Reply("aspect", text, buttons=_guide_buttons(plan.guides), guides=plan.guides, event=event,
                     aspect=aspect)

    def answer_life_event(self, name: str | None, text: str, current: str | None = None,
                          current_id: str | None = None) -> Reply:
        """One combined notification for a life event (一件事一次办), in the order to do its items.

        ``name`` is the event the NLU recognised (may be None or loosely worded); the event
        is otherwise found from ``text``. If no event fits, the question is answered as a
        single item — with ``current``, the event under discussion, or ``current_id``, the item under
        discussion, as a question about it ("刻章要钱吗" after 开办企业一件事, "烟草证以后能转给别人吗"
        after 烟草专卖零售许可, which the NLU may take for life events of their own).
        """
        if impossible(normalize(text)):  # "给我的电子宠物开个出生证明": no event of anyone's life
            return self._not_found(None, 0)
        top: SearchResult | None = None
        if _WHAT_IS.search(normalize(text)):
            top = self.search(text)
            entry = _clear_faq(top)
            if entry is not None:  # "什么是一件事一次办": what the hall means by it, not one event
                return self.answer_faq(entry)
        # With the synonyms' official terms added (the question itself kept): "买房一件事" is the 购房 event.
        event = self.life_events.find(name, self.retriever.synonyms.expand(normalize(text)))
        if event is None and (current or self.guide(current_id) is not None):
            top = top or self.search(text)
            best = top.best.item if top.best is not None and top.status == "clear" else None
            members = {g.id for g in self.life_events.plan(current).guides} if current else set()
            if best is None or self._item_of(best) in members | {current_id}:
                reply = self.respond(text, "ask_item", current_id=current_id, event=current)
                if reply is not None:
                    return reply
        if event is None:
            top = top or self.search(text)
            best = top.best.item if top.best and top.status != "none" else None
            if isinstance(best, FaqEntry):  # an FAQ entry about an item stands for that item here
                best = self.guide(self._item_of(best))
            event = self.life_events.of_guide(best) if isinstance(best, Guide) else None
        if event is None:
            return self.answer_question(text)
        plan = self.life_events.plan(event)
        text_out = answers.render_life_event(plan, self.settings.hotline)
        return Reply("life_event", text_out, buttons=_guide_buttons(plan.guides), guides=plan.guides, event=event,
                     shared_materials=plan.materials)


def _load() -> GuideService:
    return GuideService.from_settings(get_settings())


_service: Lazy[GuideService] = Lazy(_load)


def install_service(service: GuideService | None) -> None:
    """Make ``service`` the process-wide one (the action server and tests build their own)."""
    _service.install(service)


def get_service() -> GuideService:
    """The process-wide service, loaded once from the settings (thread-safe)."""
    return _service.get()
