import pytest

from bot.answering import answers
from bot.answering.answers import BUTTON_CHARS, button_labels, short_title
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


@pytest.mark.parametrize(("title", "label"), [
    ("居民身份证换领（有效期满换证）", "居民身份证换领（有效期满换证）"),
    ("二级注册建造师执业资格注册核准(二级注册建造师初始注册)", "二级注册建造师执业资格注册核准（初始注册）"),
    ("超限运输车辆跨省行驶公路审批(一类超限运输车辆跨省行驶公路)", "超限运输车辆跨省行驶公路审批（一类）"),
    ("各级各类档案馆以及机关、团体、企业事业单位和其他组织向国内外的单位或者个人赠送、交换或者出卖档案复制件审批",
     "各级各类档案馆以及机关、团体、企业事业单位和其…"),
])
def test_button_labels_are_short_and_keep_the_case(title, label):
    assert short_title(title) == label and len(label) <= BUTTON_CHARS


def test_siblings_get_labels_that_tell_them_apart():
    province = Guide(id="p", title="律师事务所设立许可", region="广东省", department="广东省司法厅")
    city = Guide(id="c", title="律师事务所设立许可", region="广东省广州市", department="广州市司法局")
    first = Guide(id="f", title="在公路上增设或者改造平面交叉道口审批(初次申请)")
    change = Guide(id="v", title="在公路上增设或者改造平面交叉道口审批(变更申请)")
    labels = button_labels([province, city, first, change])
    assert labels[:2] == ["律师事务所设立许可·省级", "律师事务所设立许可·广州市"]
    assert "初次申请" in labels[2] and "变更申请" in labels[3]
    assert len(set(labels)) == 4
    same_place = [Guide(id="a", title="企业基本情况查询", region="广东省", department="广州海关"),
                  Guide(id="b", title="企业基本情况查询", region="广东省", department="广东省市场监督管理局")]
    assert button_labels(same_place) == ["企业基本情况查询·广州海关", "企业基本情况查询·广东省市场监督管理局"]
