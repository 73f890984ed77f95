from bot.answering.service import choose_payload


def test_identity_card_question_gets_the_full_notification(service):
    reply = service.answer_question("我身份证过期了怎么办")
    assert reply.guide_id == "sample-id-card-renew"
    for expected in ("居民身份证换领", "申请材料", "原居民身份证", "20元", "派出所", "个工作日"):
        assert expected in reply.text, expected
    assert {b.payload for b in reply.buttons} >= {choose_payload("sample-id-card-replace")}


def test_unknown_question_names_the_next_step(service):
    reply = service.answer_question("今天天气怎么样")
    assert reply.status == "none" and reply.guide_id is None
    assert "12345" in reply.text


def test_aspect_follows_the_item_under_discussion(service):
    reply = service.answer_aspect("那要多少钱？", "fee", "sample-id-card-renew", names_item=False)
    assert reply.guide_id == "sample-id-card-renew"
    assert "收费标准" in reply.text and "20元" in reply.text
    assert reply.buttons[0].payload == choose_payload("sample-id-card-renew")


def test_aspect_naming_a_new_item_switches_to_it(service):
    reply = service.answer_aspect("结婚登记要带什么材料", "materials", "sample-id-card-renew", names_item=True)
    assert reply.guide_id == "sample-marriage"
    assert "申请材料" in reply.text


def test_aspect_without_any_item_asks_which(service):
    reply = service.answer_aspect("要多少钱", "fee", None, names_item=False)
    assert reply.guide_id is None
    assert "哪个事项" in reply.text


def test_choosing_an_unknown_guide_id_is_handled(service):
    reply = service.answer_guide("no-such-id")
    assert reply.status == "none" and "12345" in reply.text


def test_off_topic_price_question_after_an_item_is_not_answered_with_its_fee(service):
    reply = service.answer_aspect("这件衣服多少钱", "fee", "sample-id-card-renew", names_item=False)
    assert reply.kind == "off_topic"
    assert "20元" not in reply.text and "12345" in reply.text
    assert reply.guide_id == "sample-id-card-renew"  # the item under discussion is kept


def test_aspect_naming_another_item_the_nlu_missed_switches(service):
    reply = service.answer_aspect("结婚登记要多少钱", "fee", "sample-id-card-renew", names_item=False)
    assert reply.guide_id == "sample-marriage"


def test_second_unresolved_question_offers_escalation(service):
    first = service.answer_question("给我讲个笑话", failures=0)
    second = service.answer_question("给我讲个笑话", failures=1)
    assert "/request_human" not in [b.payload for b in first.buttons]
    assert "/request_human" in [b.payload for b in second.buttons]
    assert "办不成事反映窗口" in second.text and "12345" in second.text


def test_reply_kinds_map_to_statuses(service):
    assert service.answer_question("我身份证过期了怎么办").resolved
    assert service.answer_question("").status == "empty"


def test_aspect_question_about_something_unknown_is_not_found_not_which_item(service):
    reply = service.answer_aspect("特斯拉多少钱", "fee", None, names_item=False)
    assert reply.kind == "not_found" and "12345" in reply.text
    assert service.answer_aspect("要多少钱", "fee", None, names_item=False).kind == "which_item"


def test_a_search_is_remembered_for_the_same_text_and_filters(service):
    """One message asks about the same text several times; the second time costs nothing."""
    first = service.search("结婚登记要带什么")
    assert service.search("结婚登记要带什么") is first
    assert service.search("结婚登记要带什么", region="广州") is not first
    assert service.search("结婚登记要带什么", exclude={"sample-marriage"}) is not first
