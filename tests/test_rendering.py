"""One answer, three renderings: rich text (chat), speech (kiosk voice), printable sheet."""

import datetime as dt
import re
from html.parser import HTMLParser

from bot.answering.service import Reply
from bot.answering.sheet import render_sheet
from bot.answering.speech import SENTENCE_CHARS, clean, speak
from bot.knowledge.model import Guide, Material

HOSTILE = Guide(
    id="x-1",
    title='<script>alert("x")</script>居民身份证换领',
    materials=(Material("原居民身份证"), Material('<img src=x onerror="alert(1)">照片')),
    fee="20元",
    place="户籍所在地派出所（https://example.gov.cn/map）",
    promised_days=20,
    sample=True,
)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value and value.startswith(("http", "//")):
                self.external.append(value)


def test_sheet_escapes_imported_text_and_loads_nothing_from_outside():
    page = render_sheet(HOSTILE, "12345", today=dt.date(2026, 11, 26))
    parser = _Collect()
    parser.feed(page)
    assert "script" not in parser.tags and "img" not in parser.tags
    assert parser.external == []
    assert "&lt;script&gt;" in page
    assert "2026-11-26" in page and "12345" in page


def test_sheet_has_every_field_and_says_what_the_guide_does_not_state(service):
    guide = service.guide("sample-id-card-renew")
    page = service.sheet_html("sample-id-card-renew")
    for label in ("受理条件", "申请材料", "办理时限", "收费标准", "办理流程", "跑动次数", "办理地点和时间",
                  "网上办理", "预约方式", "咨询电话"):
        assert f">{label}<" in page, label
    assert guide.materials[0].name in page
    assert "示例内容" in page  # sample content is marked as such
    assert "@media print" in page
    assert service.sheet_html("no-such-id") is None


def test_speech_is_short_sentences_without_symbols(service):
    reply = service.answer_question("我身份证过期了怎么办")
    spoken = speak(reply, "12345")
    assert "居民身份证换领" in spoken and "20元" in spoken
    assert not re.search(r"[【】■《》]|https?://|\n", spoken)
    assert all(len(s) <= SENTENCE_CHARS + 20 for s in spoken.split("。"))
    assert len(spoken) < len(reply.text) / 2


def test_speech_for_aspect_candidates_and_not_found(service):
    aspect = service.answer_aspect("要带什么材料", "materials", "sample-id-card-renew", names_item=False)
    assert "申请材料" in speak(aspect, "12345")
    none = speak(Reply("not_found", "…"), "12345")
    assert "12345" in none and "办不成事反映窗口" in none
    guides = (service.guide("sample-id-card-renew"), service.guide("sample-id-card-replace"))
    candidates = speak(Reply("candidates", "…", guides=guides), "12345")
    assert "请说出或点选" in candidates and "居民身份证换领" in candidates


def test_clean_drops_urls_asides_and_list_symbols():
    assert clean("【地点】派出所（见https://x.cn）\n■ 20元") == "地点派出所，20元"


def test_rich_text_and_speech_come_from_the_same_reply(service):
    reply = service.answer_life_event("出生一件事", "")
    spoken = speak(reply, "12345")
    for guide in reply.guides:
        assert guide.title in reply.text
        assert clean(guide.title) in spoken
