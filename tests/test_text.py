from bot.knowledge.text import MAX_QUERY_CHARS, has_content, normalize


def test_traditional_becomes_simplified():
    assert normalize("我身份證過期了怎麼辦") == "我身份证过期了怎么办"


def test_full_width_and_case_fold():
    assert normalize("ＩＤ卡　过期") == "id卡 过期"


def test_emoji_and_control_characters_removed():
    text = normalize("身份证😀过期\u200b了🙏🏻")
    assert "😀" not in text and "\u200b" not in text
    assert "身份证" in text and "过期" in text


def test_huge_input_is_cut():
    assert len(normalize("办" * 10_000)) == MAX_QUERY_CHARS


def test_non_text_and_empty():
    assert normalize(None) == ""
    assert normalize(123) == ""
    assert not has_content(normalize("   🙏🙏 "))
    assert not has_content(normalize("？！。"))
