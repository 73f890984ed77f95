"""Courtesy-only messages (bot.answering.social): read from the words, whatever the NLU said."""

from __future__ import annotations

import pytest

from bot.answering.social import courtesy


@pytest.mark.parametrize(("text", "kind"), [
    ("好的，谢谢，再见", "goodbye"), ("谢谢，再见！", "goodbye"), ("拜拜", "goodbye"), ("Bye~", "goodbye"),
    ("好的谢谢啦", "thank"), ("谢谢您，辛苦了🙏", "thank"), ("多谢", "thank"), ("謝謝", "thank"), ("thanks!", "thank"),
    ("您好", "greet"), ("你好，在吗？", "greet"), ("hi", "greet"),
])
def test_courtesy_only(text: str, kind: str) -> None:
    assert courtesy(text) == kind


@pytest.mark.parametrize("text", [
    "", "好的", "嗯", "ok",  # a bare acknowledgement answers a question: the dialogue reads it
    "谢谢，那要多少钱", "中午12点到1点半能办事吗", "下次再签注还要去窗口排队吗", "再见面要带什么材料",
    "你好，身份证过期了怎么办", "谢谢" * 20, "2", "china",
])
def test_anything_else_is_not(text: str) -> None:
    assert courtesy(text) is None
