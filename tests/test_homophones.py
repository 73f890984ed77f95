"""Typing slips that sound right (bot/knowledge/homophones.py), checked with slips written here
from how a pinyin input method goes wrong, and with correct words that must be left alone."""

import pytest

from bot.knowledge.homophones import Homophones, readings, spellings

TERMS = ["身份证", "结婚证", "营业执照", "驾驶证", "公积金贷款", "犯罪记录证明", "教师资格", "护士", "公示"]


@pytest.fixture(scope="module")
def homophones() -> Homophones:
    return Homophones.from_terms(TERMS)


def test_readings_are_toneless_and_usual_first():
    assert readings("证") == ("zheng",)
    assert readings("分")[0] == "fen" and readings("的")[0] == "de"
    assert readings("a") == () and spellings("ab") == []
    assert spellings("身份证", usual_only=True) == [("shen", "fen", "zheng")]


@pytest.mark.parametrize(("typed", "term"), [
    ("结婚正要带什么", "结婚证"),          # 正 for 证
    ("身分证掉了咋整", "身份证"),          # 分 for 份
    ("营业只照怎么办", "营业执照"),
    ("驾驶正过期了", "驾驶证"),
    ("公基金代款利息", "公积金贷款"),       # two slips in a five-character term
    ("无犯最记录证明怎么开", "犯罪记录证明"),
])
def test_a_slip_that_sounds_right_adds_the_term(homophones, typed, term):
    assert term in homophones.corrections(typed)
    assert homophones.expand(typed) == f"{typed} {term}"  # the citizen's words are kept


@pytest.mark.parametrize("typed", [
    "身份证丢了",          # already right
    "护士资格考试报名",     # 护士资格 is not 教师资格: sounds differ
    "公式怎么算",          # two characters: too many true homophones to touch
    "结婚登记",            # nothing sounds like a term
    "",
])
def test_correct_words_are_left_alone(homophones, typed):
    assert homophones.corrections(typed) == []
    assert homophones.expand(typed) == typed


def test_a_run_that_is_itself_a_term_is_not_corrected_into_another():
    both = Homophones.from_terms(["公示期限", "公式期限"])
    assert both.corrections("公示期限多久") == []


def test_terms_come_from_names_and_their_dictionary_words():
    built = Homophones.from_names(["居民身份证补领", "结婚登记"])
    assert {"身份证", "结婚登记"} <= built.terms
    assert "居民身份证补领" not in built.terms  # longer than any run compared
    assert "身份证" in built.corrections("身分证补办")
    assert Homophones.from_names([]).corrections("身分证") == []


def test_a_run_inside_a_term_spelled_right_is_not_a_slip():
    terms = Homophones.from_terms(["生育金", "生育津贴"])
    assert terms.corrections("生育津贴是公司去申请吗") == []
    assert terms.corrections("生育进怎么领") == ["生育金"]


@pytest.fixture(scope="module")
def with_names() -> Homophones:
    """Built as retrieval builds it: from names, two-character item names ("护照", "社保", "公证") included."""
    return Homophones.from_names(["护照", "社保", "公证", "公示", "社会工作者职业资格考试报名"])


@pytest.mark.parametrize(("typed", "term"), [("胡照过期了咋换", "护照"), ("社宝卡丢了", "社保")])
def test_a_two_character_slip_for_an_item_name_adds_it(with_names, typed, term):
    assert term in with_names.corrections(typed)


@pytest.mark.parametrize("typed", [
    "社工证报名",      # 工证 is the end of 社工 and the start of 证: no slip for 公证
    "公式怎么算",      # 公式 is a word of its own, not a slip for 公示
    "护照过期了",      # spelt right
])
def test_a_two_character_run_that_is_a_word_or_spans_words_is_left_alone(with_names, typed):
    assert with_names.corrections(typed) == [], with_names.corrections(typed)
