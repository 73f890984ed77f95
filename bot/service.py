"""The guide service: what the custom actions call.

It turns a question into a channel-neutral :class:`Reply` (text, buttons, the guide now
under discussion). Actions stay glue: read slots, call one method here, send the reply.

:func:`get_service` is the one process-wide accessor. The model and index are loaded on
its first call — the action server makes that call at start-up (``bot.action_server``),
so no citizen waits for it, and merely importing ``actions`` stays cheap.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

from bot import answers
from bot.embedding.encoder import Encoder, SentenceTransformerEncoder
from bot.index import LoadedIndex, read_manifest
from bot.knowledge.model import Guide
from bot.retrieval import Retriever, SearchResult
from bot.settings import Settings, load_settings


@dataclass(frozen=True)
class Button:
    title: str
    payload: str


@dataclass(frozen=True)
class Reply:
    """One answer, before any channel renders it."""

    text: str
    buttons: list[Button] = field(default_factory=list)
    guide_id: str | None = None
    status: str = "clear"


def choose_payload(guide_id: str) -> str:
    """The button payload that selects a guide (intent ``choose_guide`` with entity ``guide_id``)."""
    return "/choose_guide" + json.dumps({"guide_id": guide_id})


def _candidates(result: SearchResult) -> Reply:
    """The close candidates of an unclear match, one button each."""
    buttons = [Button(m.guide.title, choose_payload(m.guide.id)) for m in result.matches]
    return Reply(answers.render_candidates_prompt(), buttons=buttons, status="ambiguous")


#: When "nothing fits" is less certain than this, the closest guides are still offered as
#: buttons under the apology: a citizen whose question was turned away loses one tap, not the item.
NEAR_MISS_P_NONE = 0.9
NEAR_MISS_BUTTONS = 3


def _near_misses(result: SearchResult, settings: Settings) -> list[Button]:
    if result.p_none is not None:
        close = result.p_none < NEAR_MISS_P_NONE
    else:
        close = result.best is not None and result.best.score >= settings.min_score - 0.03
    if not close:
        return []
    return [Button(m.guide.title, choose_payload(m.guide.id)) for m in result.matches[:NEAR_MISS_BUTTONS]]


class GuideService:
    """Answers questions from one knowledge base index."""

    def __init__(self, retriever: Retriever, settings: Settings) -> None:
        self.retriever = retriever
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Settings, encoder: Encoder | None = None) -> GuideService:
        """Load the model (unless given) and the index named by ``settings``."""
        read_manifest(settings.index_dir)  # fail fast, before spending seconds loading the model
        encoder = encoder or SentenceTransformerEncoder(settings.model_dir, settings.max_tokens)
        index = LoadedIndex.load(settings.index_dir, expect_model=encoder.name, expect_dim=encoder.dim)
        return cls(Retriever(index, encoder, settings), settings)

    def guide(self, guide_id: str | None) -> Guide | None:
        return self.retriever.by_id.get(guide_id) if guide_id else None

    def search(self, text: str) -> SearchResult:
        return self.retriever.search(text)

    def answer_question(self, text: str) -> Reply:
        """Answer "what do I need to get X done": the notification, buttons, or next steps."""
        result = self.search(text)
        hotline = self.settings.hotline
        if result.status == "empty":
            return Reply(answers.render_empty(), status="empty")
        if result.status == "none" or result.best is None:
            near = _near_misses(result, self.settings)
            return Reply(answers.render_not_found(hotline, offer_near=bool(near)), buttons=near, status="none")
        if result.status == "ambiguous":
            return _candidates(result)
        return self.answer_guide(result.best.guide.id)

    def answer_guide(self, guide_id: str) -> Reply:
        """The full one-time notification for a known guide, with its related items as buttons."""
        guide = self.guide(guide_id)
        if guide is None:
            return Reply(answers.render_not_found(self.settings.hotline), status="none")
        related = [g for g in (self.guide(r) for r in guide.related) if g is not None]
        text = answers.render_notification(guide, self.settings.hotline, related)
        buttons = [Button(g.title, choose_payload(g.id)) for g in related]
        return Reply(text, buttons=buttons, guide_id=guide.id)

    def answer_aspect(self, text: str, aspect: str | None, current_id: str | None, *, names_item: bool) -> Reply:
        """Answer one aspect ("要多少钱?") of the item named in ``text``, else of the current item.

        Args:
            text: the user's message.
            aspect: canonical aspect name (see ``answers.ASPECTS``); None means the whole notification.
            current_id: the guide under discussion, from the conversation.
            names_item: True when the NLU found an item mention in ``text``, so the
                message may switch the conversation to another item.
        """
        guide = self.guide(current_id)
        if names_item or guide is None:
            result = self.search(text)
            if result.status == "clear" and result.best is not None:
                guide = result.best.guide
            elif result.status == "ambiguous":
                return _candidates(result)
        if guide is None:
            return Reply(answers.render_which_item(aspect or ""), status="none")
        if aspect not in answers.ASPECTS:
            return self.answer_guide(guide.id)
        full = Button(answers.FULL_NOTIFICATION_BUTTON, choose_payload(guide.id))
        return Reply(answers.render_aspect(guide, aspect, self.settings.hotline), buttons=[full], guide_id=guide.id)


_lock = threading.Lock()
_service: GuideService | None = None


def install_service(service: GuideService | None) -> None:
    """Make ``service`` the process-wide one (the action server and tests build their own)."""
    global _service
    with _lock:
        _service = service


def get_service() -> GuideService:
    """The process-wide service, loaded once from the settings (thread-safe)."""
    global _service
    if _service is None:
        with _lock:
            if _service is None:
                _service = GuideService.from_settings(load_settings())
    return _service
