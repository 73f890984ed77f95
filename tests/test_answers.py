from bot import answers
from bot.knowledge.model import Guide, Material

FULL = Guide(
    id="g", title="居民身份证换领", department="公安", conditions=("有效期满",),
    materials=(Material(name="原居民身份证", form="原件", copies=1, deferrable=True),
               Material(name="户口簿", required=False, promise_ok=True)),
    promised_days=20, statutory_days=60, fee="20元/证", process=("取号", "采集"), visits=1,
    place="派出所户籍室", hours="工作日", online="政务服务网", courier=True, consult_phone="12345",
    legal_basis=("《居民身份证法》",), sample=True,
)
BARE = Guide(id="b", title="某许可", consult_phone="020-1234")


def test_full_notification_tells_everything_at_once():
    text = answers.render_notification(FULL, "12345", related=[Guide(id="r", title="临时身份证")])
    for expected in ("居民身份证换领", "原居民身份证（原件，1份）", "可容缺受理", "可用告知承诺书代替", "特定情形需要",
                     "承诺办结：20个工作日", "法定时限：60个工作日", "20元/证", "1. 取号", "最多跑一次",
                     "派出所户籍室", "政务服务网", "结果可邮寄送达", "《居民身份证法》", "通常还需要办：临时身份证",
                     answers.SAMPLE_NOTE):
        assert expected in text, expected


def test_missing_fields_say_so_and_name_the_phone():
    text = answers.render_notification(BARE, "12345")
    assert text.count("本指南未载明") >= 5
    assert "020-1234" in text
    assert answers.SAMPLE_NOTE not in text


def test_every_aspect_answers_something():
    for aspect in answers.ASPECTS:
        for guide in (FULL, BARE):
            body = answers.render_aspect(guide, aspect, "12345")
            assert guide.title in body and answers.ASPECTS[aspect] in body


def test_zero_days_and_zero_visits_read_naturally():
    guide = Guide(id="z", title="即办件", promised_days=0, visits=0)
    assert "即办" in answers.aspect_text(guide, "time", "12345")
    assert "全程网办" in answers.aspect_text(guide, "visits", "12345")


def test_next_step_always_named():
    assert "12345" in answers.render_not_found("12345")
    assert "办不成事反映窗口" in answers.render_not_found("12345")
    assert "身份证换证要多少钱" in answers.render_which_item("fee")


def test_aspect_spans_are_mapped_to_known_aspects():
    assert answers.canonical_aspect("fee") == "fee"
    assert answers.canonical_aspect("带什么材料") == "materials"
    assert answers.canonical_aspect("网上") == "online"
    assert answers.canonical_aspect("要几天") == "time"
    assert answers.canonical_aspect("在哪里办") == "place"
    assert answers.canonical_aspect("要") is None
    assert answers.canonical_aspect(None) is None
