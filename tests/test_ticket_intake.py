"""The ticket forms' rules (bot/tickets/intake.py), without Rasa: what each answer is cleaned to,
which response explains an unusable one, and which words confirm, cancel or skip."""

import pytest

from bot.tickets import intake
from bot.tickets.intake import (
    CANCELLED,
    Checked,
    check_access_code,
    check_callback_phone,
    check_category,
    check_comment,
    check_description,
    check_name,
    check_phone,
    check_ticket_number,
    clean_name,
    confirmation,
    rating_from,
)
from tests.responses import responses


@pytest.mark.parametrize(("said", "name"), [
    ("我姓王", "王"), ("叫我李女士就行", "李女士"), ("我是张三", "张三"), ("免贵姓刘", "刘"), ("王先生", "王先生"),
    ("张三", "张三"), ("王一", "王一"), ("姓王", "王"), ("我叫李四。", "李四"), ("你好，我姓王", "王"),
    ("就叫我老张吧", "老张"), ("我姓王，叫王小明", "王小明"), ("王先生，谢谢", "王先生"), ("姓名：赵六", "赵六"),
    ("我的名字是 Li Wei", "Li Wei"), ("  陈女士  ", "陈女士"), ("本人姓周", "周"), ("您叫我小孙就好了", "小孙"),
])
def test_names_are_cleaned(said, name):
    assert clean_name(said) == name
    assert check_name(said) == Checked(name)


@pytest.mark.parametrize("said", ["13812345678", "张3", "！！", "", "一二三四五六七八九十一二三四五六七八九十一"])
def test_unusable_names_are_asked_again(said):
    assert check_name(said) == Checked(problem="utter_ticket_name_invalid")


@pytest.mark.parametrize("said", [
    "13812345678", "138 1234 5678", "138-1234-5678", "138.1234.5678", "+86 13812345678", "+8613812345678",
    "0086 138 1234 5678", "(+86) 138 1234 5678", "（+86）13812345678", "１３８１２３４５６７８",
    "＋８６ １３８－１２３４－５６７８", "我的手机是 138 1234 5678",
])
def test_phone_numbers_in_every_usual_shape(said):
    assert check_phone(said) == Checked("13812345678")


@pytest.mark.parametrize("said", ["12345", "1381234567", "13812345678 13912345678", "010-12345678", "abc"])
def test_what_is_not_one_mobile_number_is_asked_again(said):
    assert check_phone(said) == Checked(problem="utter_ticket_phone_invalid")


def test_descriptions_are_kept_verbatim():
    text = "我姓王，在网上申请了三次营业执照（编号 A-1）都被退回，\n也没说原因！电话我等下留。"
    assert check_description(f"  {text}  ") == Checked(text)
    assert check_description("x" * 1200).value == "x" * 1000
    assert check_description("不行") == Checked(problem="utter_ticket_description_too_short")


def test_categories_from_buttons_codes_and_words():
    assert check_category("多次办理仍未办成") == Checked("repeated")
    assert check_category("窗口工作人员态度很差") == Checked("conduct")
    assert check_category("嗯") == Checked(problem="utter_ticket_category_invalid")


@pytest.mark.parametrize("check", [check_category, check_description, check_name, check_phone])
@pytest.mark.parametrize("said", ["取消", "算了", "不办了", "那就算了吧", "退出"])
def test_cancel_words_stop_the_form_at_every_step(check, said):
    assert check(said) == CANCELLED and check(said).cancelled


def test_a_long_answer_with_a_cancel_word_in_it_is_not_a_cancel():
    assert not check_description("我不想算了，已经跑了三次都没办成营业执照").cancelled


@pytest.mark.parametrize("said", [
    "/affirm", "确认提交", "确认", "对，提交吧", "好的提交", "好的，提交", "对的", "是的", "没问题", "可以", "嗯", "OK",
    "确定", "就这样提交吧", "不用改了，提交吧", "对 提交",
])
def test_confirmation_yes(said):
    assert confirmation(said) is True


@pytest.mark.parametrize("said", [
    "/deny", "取消", "不对", "先不提交", "不提交了", "算了", "不要了", "信息有误", "确认取消", "不", "别提交了",
])
def test_confirmation_no(said):
    assert confirmation(said) is False


@pytest.mark.parametrize("said", ["", "我想问一下营业执照还要带什么材料才能办下来呢", "什么意思"])
def test_what_is_neither_leaves_the_confirmation_to_the_intent(said):
    assert confirmation(said) is None
    assert confirmation(said, "affirm") is True and confirmation(said, "deny") is False
    assert confirmation(said, "ask_item") is None


def test_another_button_s_payload_is_no_answer():
    assert confirmation("/greet") is None and confirmation('/rate{"rating": "5"}') is None


def test_words_decide_before_the_intent():
    assert confirmation("对，提交吧", "deny") is True  # a misread intent does not cancel a clear yes
    assert confirmation("先不提交", "affirm") is False


def test_ticket_number_and_access_code():
    assert check_ticket_number("我的工单 bc20261126-0042") == Checked("BC20261126-0042")
    assert check_ticket_number("ＢＣ２０２６１１２６－００４２") == Checked("BC20261126-0042")
    assert check_ticket_number("0042") == Checked(problem="utter_ticket_number_invalid")
    assert check_access_code("查询码 １２３ ４５６") == Checked("123456")
    assert check_access_code("5678") == Checked(problem="utter_ticket_code_invalid")


def test_ratings_comments_and_the_callback_phone():
    assert [rating_from(v) for v in ("5", "4星", 3, None, "9", "")] == [5, 4, 3, None, None, None]
    assert [rating_from(v) for v in ("12", "12点", "1点半到2点", "45")] == [None, None, None, None]
    assert intake.is_bad_rating(2) and not intake.is_bad_rating(3)
    assert check_comment("跳过") == "" and check_comment(" 等太久 ") == "等太久"
    assert check_callback_phone("跳过") == Checked(intake.NO_PHONE)
    assert check_callback_phone("+86 139-0000-1111") == Checked("13900001111")
    assert check_callback_phone("明天") == Checked(problem="utter_callback_phone_invalid")
    assert intake.callback_description(1, "") == "差评（1星）：未填写原因"


def test_every_problem_names_a_response_in_the_domain():
    problems = {check("嗯").problem for check in (check_category, check_name, check_phone, check_description,
                                                  check_ticket_number, check_access_code, check_callback_phone)}
    assert None not in problems and problems <= set(responses())
    assert not any("{" in variant.get("text", "") for name in problems for variant in responses()[name])


@pytest.mark.parametrize("text", ["查询工单", "我反映的问题有结果了吗", "帮我查下工单BC20261126-0042", "查詢工單進度",
                                  "你们答应一天内回复的，怎么还没消息", "check my ticket"])
def test_a_status_question_naming_a_ticket_goes_to_the_status_form(text):
    assert intake.asks_about_a_ticket(text)


@pytest.mark.parametrize("text", ["有两个违章没处理，能年检吗", "多久能有结果", "处理结果多久出来"])
def test_an_item_question_that_says_processing_is_not_about_a_ticket(text):
    assert not intake.asks_about_a_ticket(text)
