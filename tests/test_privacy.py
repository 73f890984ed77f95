"""Personal numbers are masked however they are typed (bot.privacy)."""

import logging

import pytest

from bot.privacy import MaskingFilter, find_mobiles, fold, mask_phone, mask_text, normalize_mobile


@pytest.mark.parametrize(("typed", "masked"), [
    ("我的电话是13812345678", "我的电话是138****5678"),
    ("１３８１２３４５６７８", "１３８****５６７８"),  # full-width digits, as many input methods type them
    ("138.1234.5678", "138.****.5678"),
    ("138-1234-5678", "138-****-5678"),
    ("138 1234 5678", "138 **** 5678"),
    ("１３８－１２３４－５６７８", "１３８－****－５６７８"),
    ("+86 138 1234 5678", "+86 138 **** 5678"),
    ("0086-13812345678", "0086-138****5678"),
    ("电话一三八一二三四五六七八", "电话一三八****五六七八"),  # as a voice recogniser writes it
    ("1381234\u30005678", "138****\u30005678"),  # an ideographic space inside
    ("两个号码13812345678和13912345678", "两个号码138****5678和139****5678"),
    ("身份证110105199001011234", "身份证110***********1234"),
    ("身份证１１０１０５１９９００１０１１２３Ｘ", "身份证１１０***********１２３Ｘ"),
    ("110105 19900101 123x", "110*** ******** 123x"),
])
def test_numbers_are_masked_however_they_are_typed(typed, masked):
    assert mask_text(typed) == masked


@pytest.mark.parametrize("text", [
    "2026年11月26日上午10点", "订单号12345678901234567890", "卡号6222138123456789012", "工单BC20261126-0042",
    "身份证过期了怎么办？", "", "12345 热线",
])
def test_other_numbers_and_text_are_kept(text):
    assert mask_text(text) == text


def test_fold_keeps_the_length_so_masks_land_on_the_typed_characters():
    text = "号码：１３８．１２３４．５６７８！"
    assert len(fold(text)) == len(text)
    assert fold("１３８－１２３４") == "138 1234"


@pytest.mark.parametrize(("answer", "phone"), [
    ("13812345678", "13812345678"), ("１３８１２３４５６７８", "13812345678"), ("+86 138-1234-5678", "13812345678"),
    ("我的手机是 138.1234.5678 谢谢", "13812345678"), ("一三八一二三四五六七八", "13812345678"),
    ("1381234567", None), ("12812345678", None), ("13812345678 或 13912345678", None), ("电话13812345678转2", None),
])
def test_a_form_answer_gives_exactly_one_mobile(answer, phone):
    assert normalize_mobile(answer) == phone


def test_find_and_mask_phone():
    assert find_mobiles("甲13812345678，乙１３９ １２３４ ５６７８") == ["13812345678", "13912345678"]
    assert mask_phone("１３８１２３４５６７８") == "138****5678"


def test_logs_are_masked():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "citizen typed %s", ("１３８１２３４５６７８",), None)
    MaskingFilter().filter(record)
    assert record.getMessage() == "citizen typed １３８****５６７８"
