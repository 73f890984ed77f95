"""The conversation's knowledge work (issue 14): follow-ups answered from the guide's own text, the
knowledge base's names found by spaCy, a place in the sentence, retrieval asked before small talk or a
complaint, impossible requests, and typed words acting as the buttons on screen."""

from __future__ import annotations

import pytest

from bot.answering.followup import FollowUps, passages, render_follow_up
from bot.answering.service import impossible
from bot.channels.buttons import match_button, past_the_buttons
from bot.knowledge.entities import EntityFinder, patterns
from bot.knowledge.model import Guide, Material

MARRIAGE = Guide(
    id="m", title="内地居民结婚登记", aliases=("领证",), department="县级人民政府民政部门（婚姻登记机关）",
    conditions=("男方年满22周岁，女方年满20周岁", "男女双方亲自共同到婚姻登记机关申请；可在全国任一婚姻登记机关办理"),
    materials=(Material("双方本人居民身份证", form="原件", copies=1, note="须在有效期内；不再需要户口簿"),
               Material("双方近期半身免冠合影照片", form="原件", copies=2),
               Material("离婚证", form="原件", required=False, deferrable=True)),
    hours="周一至周五 9:00-17:00；部分婚姻登记处周末预约开放", fee="不收费", consult_phone="020-1234",
    region="广东省广州市", life_events=("结婚一件事",),
)


# --- follow-ups, lexical and cue scoring only (no model needed) --------------------------------------

@pytest.fixture(scope="module")
def lexical() -> FollowUps:
    return FollowUps(None)


def test_every_statement_of_the_guide_is_a_passage():
    kinds = [p.kind for p in passages(MARRIAGE)]
    assert kinds.count("material") == 3 and "hours" in kinds and "fee" in kinds
    assert "proxy" in kinds  # "亲自共同到" says who must attend


def test_a_material_the_guide_rules_out_is_answered_no_with_the_guide_quoted(lexical):
    found = lexical.answer(MARRIAGE, "要带户口本吗")
    text = render_follow_up(MARRIAGE, "要带户口本吗", found, "12345")
    assert text.startswith("不需要。") and "不再需要户口簿" in text


def test_a_material_on_the_list_is_answered_yes(lexical):
    found = lexical.answer(MARRIAGE, "要带身份证吗")
    assert found.passage is not None and found.passage.material is MARRIAGE.materials[0]
    assert render_follow_up(MARRIAGE, "要带身份证吗", found, "12345").startswith("需要。")


def test_copies_are_answered_from_the_forms(lexical):
    found = lexical.answer(MARRIAGE, "复印件行吗")
    text = render_follow_up(MARRIAGE, "复印件行吗", found, "12345")
    assert "双方本人居民身份证（原件）" in text


def test_weekend_is_answered_from_the_hours(lexical):
    found = lexical.answer(MARRIAGE, "周末可以办吗")
    text = render_follow_up(MARRIAGE, "周末可以办吗", found, "12345")
    assert found.passage is not None and found.passage.kind == "hours"
    assert text.startswith("部分地方可以。") and "周末预约开放" in text


def test_a_silent_guide_says_so_and_gives_the_phone(lexical):
    found = lexical.answer(MARRIAGE, "结婚登记处有停车场吗")
    assert found.passage is None
    text = render_follow_up(MARRIAGE, "结婚登记处有停车场吗", found, "12345")
    assert "没有写明" in text and "020-1234" in text


# --- the knowledge base's names (spaCy + jieba PhraseMatcher) ----------------------------------------

@pytest.fixture(scope="module")
def finder() -> EntityFinder:
    other = Guide(id="p", title="普通护照签发", aliases=("办护照",), department="广州市公安局出入境管理支队",
                  region="广东省广州市天河区")
    return EntityFinder(patterns([MARRIAGE, other]))


def test_names_come_from_the_knowledge_base(finder):
    found = {(e.label, e.text): e.keys for e in finder.find("我在天河区，去公安局办护照，要带合影照片吗")}
    assert found[("REGION", "天河区")] == ("广东省广州市天河区",)
    assert ("DEPARTMENT", "公安局") in found
    assert found[("ITEM", "办护照")] == ("p",)
    assert ("MATERIAL", "双方近期半身免冠合影照片") not in found  # only whole names are names


def test_short_place_names_and_life_events(finder):
    assert finder.regions("广州能办吗") == {"广东省广州市"}
    assert [e.keys for e in finder.find("结婚一件事怎么办", ("LIFE_EVENT",))] == [("结婚一件事",)]
    assert finder.find("今天天气怎么样") == []


# --- impossible requests, typed buttons --------------------------------------------------------------

@pytest.mark.parametrize("text", ["怎么给我家的猫办身份证", "我想给我的游戏角色办个结婚证", "火星签证怎么办",
                                  "帮我申请一张穿越回唐朝的通行证", "给我办一张外星人居住证"])
def test_impossible_requests(text):
    assert impossible(text)


@pytest.mark.parametrize("text", ["身份证丢了怎么办", "犬只登记要什么材料", "养狗要办证吗", "港澳通行证怎么续签",
                                  "养猫要办证吗"])
def test_real_requests_are_not_impossible(text):
    assert not impossible(text)


RATING = [{"title": t, "payload": f'/rate{{"rating": "{n}"}}'}
          for t, n in (("非常满意", 5), ("满意", 4), ("基本满意", 3), ("不满意", 2), ("非常不满意", 1))]


@pytest.mark.parametrize(("said", "title"), [
    ("非常满意", "非常满意"), ("不满意", "不满意"), ("太差了", "非常不满意"), ("一般般吧", "基本满意"),
    ("第二个", "满意"), ("2", "不满意"), ("打5分", "非常满意"), ("还行", "基本满意"),
    ("不咋地", "不满意"), ("太棒了", "非常满意"), ("还好吧", "基本满意"), ("很失望", "非常不满意"), ("好评", "满意"),
])
def test_free_text_ratings_map_to_the_five_levels(said, title):
    button = match_button(said, RATING)
    assert button is not None and button["title"] == title


def test_confirmation_words_and_paraphrases_with_words_around():
    confirm = [{"title": "确认提交", "payload": "/affirm"}, {"title": "取消", "payload": "/deny"}]
    assert match_button("确认提交", confirm)["payload"] == "/affirm"
    assert match_button("对，提交吧", confirm)["payload"] == "/affirm"
    assert match_button("算了", confirm)["payload"] == "/deny"
    full = [{"title": "查看完整的一次性告知", "payload": "/choose"}]
    assert match_button("全部的都给我看一下", full) is not None
    assert match_button("我身份证丢了怎么办", full) is None
    assert match_button("第三个", confirm) is None


def test_a_position_past_the_buttons_shown_is_recognised_as_one():
    confirm = [{"title": "确认提交", "payload": "/affirm"}, {"title": "取消", "payload": "/deny"}]
    assert past_the_buttons("第三个", confirm) == 3 and past_the_buttons("5", confirm) == 5
    assert past_the_buttons("第二个", confirm) is None  # that one exists: match_button takes it
    assert past_the_buttons("2", RATING) is None  # a rating of 2, not a position
    assert past_the_buttons("身份证", confirm) is None and past_the_buttons("3", []) is None


# --- the service, on the bundled knowledge base --------------------------------------------------------

def test_follow_up_outside_the_ten_aspects_is_answered_from_the_guide(service):
    reply = service.respond("我们俩户口不在一个地方可以吗", "greet", current_id="sample-marriage")
    assert reply is not None and reply.kind == "follow_up" and reply.guide_id == "sample-marriage"
    assert reply.text.startswith("可以。") and "全国任一婚姻登记机关" in reply.text


def test_proxy_follow_up_says_no_and_why(service):
    reply = service.respond("可以找人代办吗", "out_of_scope", current_id="sample-passport")
    assert reply is not None and reply.text.startswith("不可以，需要本人到场") and "本人到场" in reply.text


def test_deferral_uses_the_items_flags_then_the_halls_rule(service):
    reply = service.respond("能不能先办后补材料", "ask_aspect", current_id="sample-food-license")
    assert reply is not None and reply.guide_id == "sample-food-license"
    assert "健康证明" in reply.text and "大厅的一般规定" in reply.text


def test_place_in_the_sentence_filters_the_question(service):
    reply = service.respond("我在广州，律师事务所设立许可去哪里办", "inform")
    assert reply is not None and reply.guide_id == "gd-11440100007483180K3440109001001"


def test_bare_place_after_an_answer_reanswers_the_item_and_never_shows_a_placeholder(service):
    reply = service.respond("我在深圳", "inform", current_id="sample-passport", region="深圳")
    assert reply is not None and reply.guide_id == "sample-passport" and reply.kind == "notification"
    noted = service.respond("嗯", "inform")
    assert noted is not None and "您说的地区或部门" not in noted.text and "{" not in noted.text


def test_small_talk_is_small_talk_unless_the_knowledge_base_fits(service):
    assert service.respond("你是机器人吗", "chitchat", current_id="sample-passport") is None
    assert service.respond("今天天气怎么样", "out_of_scope") is None
    assert service.respond("你好", "greet") is None


def test_a_complaint_about_a_real_item_gets_the_item_and_the_way_to_a_person(service):
    reply = service.respond("上班路上被车撞了，公司说不算工伤", "complain")
    assert reply is not None and reply.guide_id == "sample-work-injury"
    assert any(b.payload == "/request_human" for b in reply.buttons)
    assert service.respond("跑了三趟都没办成", "complain") is None


def test_a_complaint_that_asks_what_to_do_is_answered_with_the_way_to_a_person(service):
    """"…跑了三趟，怎么办" asks; the hall's answer is given, and the window stays one tap (or word) away."""
    reply = service.respond("材料齐了还让我跑了三趟，怎么办", "complain")
    assert reply is not None and reply.kind == "faq" and "办不成事反映窗口" in reply.text
    assert any(b.payload == "/request_human" for b in reply.buttons)
    assert service.respond("办了三次都没办成，到底怎么回事", "complain") is None  # venting: the window
    assert service.respond("我要找人工，跑了三趟怎么办", "complain") is None  # a person asked for


def test_a_spoken_lead_in_is_not_searched(service):
    """"那我去哪里反映": 那 and 我 alone would match titles such as "那山、那水" and "我的户号"."""
    assert service.search("那我去哪里反映").best.item.id == service.search("去哪里反映").best.item.id
    assert service.search("那我去哪里反映").status != "none"


def test_impossible_request_is_nothing_fits(service):
    reply = service.respond("怎么给我家的猫办身份证", "ask_item")
    assert reply is not None and reply.kind == "not_found" and reply.guide_id is None


@pytest.mark.parametrize("intent", ["out_of_scope", "ask_aspect"])
def test_a_thing_pointed_at_is_not_a_follow_up_about_the_item(service, intent):
    reply = service.respond("这件衣服多少钱", intent, current_id="sample-id-card-renew", aspect="fee")
    assert reply is None or (reply.kind in ("off_topic", "not_found") and "20元" not in reply.text)
    about = service.respond("这个证要多少钱", "ask_aspect", current_id="sample-id-card-renew", aspect="fee")
    assert about is not None and "20元" in about.text


def test_a_word_of_the_guide_taken_for_an_item_stays_a_follow_up(service):
    """The NLU marks "公示" as an item; it is a word of 企业注销登记's own text and names no item."""
    reply = service.respond("需要公示吗", "ask_item", current_id="sample-business-cancel", names_item=True,
                            item_words="公示")
    assert reply is not None and reply.kind == "follow_up" and reply.guide_id == "sample-business-cancel"
    assert reply.text.startswith("不需要。") and "无需公示" in reply.text, reply.text
    other = service.respond("身份证怎么办", "ask_item", current_id="sample-marriage", names_item=True,
                            item_words="身份证")  # named in the marriage guide's materials, and an item
    assert other is not None and other.guide_id != "sample-marriage"


def test_whether_something_is_required_is_not_answered_with_whether_it_is_allowed():
    passage = next(p for p in passages(MARRIAGE) if p.kind == "hours")
    from bot.answering.followup import FollowUp

    text = render_follow_up(MARRIAGE, "需要预约吗", FollowUp(passage, "yes", 1.0), "12345")
    assert not text.startswith(("需要。", "不需要。")), text  # "周末预约开放" says neither


def test_words_that_point_back_at_the_item_keep_it(service):
    reply = service.respond("整个新的要多少钱", "ask_aspect", current_id="sample-driving-replace", aspect="fee")
    assert reply is not None and reply.kind == "aspect" and reply.guide_id == "sample-driving-replace"
    clothes = service.respond("这件衣服多少钱", "ask_aspect", current_id="sample-driving-replace", aspect="fee")
    assert clothes is not None and clothes.kind == "off_topic"


@pytest.mark.parametrize(("text", "aspect", "entry"), [
    ("办事要带复印件吗", "materials", "faq-hall-zonghe-05"), ("综合窗口是什么", "place", "faq-hall-zonghe-01"),
    ("最多跑一次是什么意思", "visits", "faq-hall-paodong-01"),
])
def test_the_halls_own_question_is_answered_by_its_faq_not_an_aspect_of_some_guide(service, text, aspect, entry):
    reply = service.respond(text, "ask_aspect", aspect=aspect)
    assert reply is not None and reply.kind == "faq" and reply.guides[0].id == entry, reply
    kept = service.respond("要带复印件吗", "ask_aspect", aspect="materials", current_id="sample-marriage")
    assert kept is not None and kept.guide_id == "sample-marriage"  # about the item under discussion


def test_what_a_life_event_term_means_is_the_faq_not_one_event(service):
    assert service.answer_life_event(None, "什么是一件事一次办").kind == "faq"
    assert service.answer_life_event(None, "出生一件事怎么办").kind == "life_event"


def test_an_aspect_right_after_candidates_answers_the_first_and_still_offers_the_others(service):
    reply = service.respond("要多久", "ask_aspect", aspect="time", last_question="兼职律师执业许可怎么申请")
    assert reply is not None and reply.kind == "aspect" and reply.guide_id is not None
    assert "办理时限" in reply.text and len(reply.buttons) >= 2, reply
    # After an answer that found one item (the slot holds it) or nothing, nothing is guessed.
    assert service.respond("要多久", "ask_aspect", aspect="time", last_question="我身份证过期了怎么办").kind \
        == "which_item"


def test_a_bare_place_after_candidates_picks_that_places_version_of_the_best(service):
    reply = service.respond("我在广州", "inform", region="广州", last_question="兼职律师执业许可怎么申请")
    assert reply is not None and reply.kind == "notification"
    guide = service.guide(reply.guide_id)
    assert guide is not None and guide.title == "兼职律师执业许可" and guide.region == "广东省广州市"


def test_passage_vectors_built_with_the_index_are_served_and_checked(tmp_path, encoder):
    from dataclasses import replace

    import numpy as np

    from bot.answering.followup import PassageVectors, build_passage_vectors

    assert build_passage_vectors([MARRIAGE], encoder, tmp_path) == len(passages(MARRIAGE))
    store = PassageVectors.load(tmp_path, encoder.name)
    assert store is not None and PassageVectors.load(tmp_path, "another model") is None
    stored = store.get(MARRIAGE.id, passages(MARRIAGE))
    fresh = encoder.encode([p.text for p in passages(MARRIAGE)], kind="query")
    assert stored is not None and stored.dtype == np.float32 and np.allclose(stored, fresh, atol=2e-3)
    changed = replace(MARRIAGE, fee="20元")  # the guide changed since the build: encoded afresh, not served stale
    assert store.get(changed.id, passages(changed)) is None
    follow_ups = FollowUps(encoder, store=store)
    assert follow_ups.answer(MARRIAGE, "周末能办吗").passage is not None
    assert PassageVectors.load(tmp_path / "none", encoder.name) is None


def test_a_passage_nearly_as_good_as_the_best_is_quoted_beside_it(service):
    """"照片要自己去照相馆拍吗": the in-person rule (照片 and 自己去) and the photo material (免费现场拍摄)
    score within a few hundredths; the citizen gets both, the best first."""
    guide = service.guide("sample-passport")
    found = service.follow_ups.answer(guide, "照片要自己去照相馆拍吗")
    assert found.passage is not None and found.also is not None, found
    text = render_follow_up(guide, "照片要自己去照相馆拍吗", found, "12345")
    assert "本人到场" in text and "免费现场拍摄" in text and "相关的还有" in text, text


def test_a_clear_best_passage_is_quoted_alone(service):
    reply = service.respond("领失业金期间医保谁交", "ask_aspect", current_id="sample-unemployment-benefit")
    assert reply is not None and "代缴" in reply.text and "相关的还有" not in reply.text


def test_a_deadline_to_apply_by_is_answered_from_the_conditions_not_the_processing_time(service):
    reply = service.respond("出生多久内要办", "ask_aspect", current_id="sample-newborn-medical")
    assert reply is not None and "90天" in reply.text, reply.text


@pytest.mark.parametrize("text", ["几天能弄好", "how long 能拿到"])
def test_a_time_question_in_other_words_stays_with_the_item(service, text):
    """"几天" once left "天" behind as if it named something else, and the item's answer was refused as
    off-topic."""
    reply = service.respond(text, "ask_aspect", current_id="sample-notary-kinship", aspect="time")
    assert reply is not None and reply.guide_id == "sample-notary-kinship" and reply.kind != "off_topic", reply
    assert "15个工作日" in reply.text


def test_a_span_the_nlu_took_for_an_item_that_names_none_stays_with_the_item(service):
    """The NLU marks "新证" as an item; the knowledge base has no such item, so the question is about
    the identity card under discussion."""
    reply = service.respond("多久能拿到新证", "ask_aspect", current_id="sample-id-card-replace", aspect="time",
                            names_item=True, item_words="新证")
    assert reply is not None and reply.guide_id == "sample-id-card-replace", reply


def test_a_status_like_question_about_the_item_is_answered_from_its_guide(service):
    reply = service.respond("有两个违章没处理，能年检吗", "ticket_status", current_id="sample-vehicle-inspection")
    assert reply is not None and reply.guide_id == "sample-vehicle-inspection", reply
    assert "处理完" in reply.text


def test_an_impossible_life_event_is_nothing_fits(service):
    reply = service.answer_life_event(None, "给我的电子宠物开个出生证明")
    assert reply.kind == "not_found"


def test_another_items_name_in_a_question_retrieval_places_at_this_item_keeps_it(service):
    """"医保" is an item of its own, but "领失业金期间医保谁交" is about unemployment benefit."""
    reply = service.respond("领失业金期间医保谁交", "ask_item", current_id="sample-unemployment-benefit",
                            aspect="time", names_item=True, item_words="医保")
    assert reply is not None and reply.guide_id == "sample-unemployment-benefit" and "代缴" in reply.text, reply


def test_the_offices_answer_about_the_item_under_discussion_comes_first(service):
    """"津贴是怎么算的": the item's FAQ entry says how the allowance is computed; a passage of the guide
    only says where it is paid."""
    reply = service.respond("津贴是怎么算的", "ask_item", current_id="sample-maternity-allowance")
    assert reply is not None and reply.kind == "faq" and reply.guide_id == "sample-maternity-allowance", reply
    assert "月平均工资" in reply.text
    bare = service.respond("要多少钱", "ask_aspect", current_id="sample-maternity-allowance", aspect="fee")
    assert bare is not None and bare.kind == "aspect", bare  # a bare aspect gets the guide's own answer


def test_a_complaint_asking_for_a_person_is_not_answered_with_an_aspect(service):
    """The NLU hears the appointment aspect in "预约了两次都提示失败，想找人工": the person comes first."""
    assert service.respond("我在网上预约了两次都提示失败，想找人工", "complain", aspect="appointment") is None


def test_the_aspect_pointed_at_is_no_other_thing(service):
    """"这个价" points at the fee, not at something else the way "这件衣服" does."""
    reply = service.respond("深圳也是这个价吗", "inform", current_id="sample-id-card-renew", region="深圳")
    assert reply is not None and reply.guide_id == "sample-id-card-renew" and "20元" in reply.text, reply


def test_an_aspect_after_a_life_event_is_answered_for_each_of_its_items(service):
    reply = service.respond("在哪办", "ask_aspect", aspect="place", event="出生一件事")
    assert reply is not None and reply.kind == "aspect" and reply.event == "出生一件事", reply
    assert reply.text.startswith("【出生一件事】各事项的办理地点") and "出生医学证明" in reply.text
    assert len(reply.buttons) == len(service.life_events.plan("出生一件事").guides)


def test_a_question_about_one_item_of_a_life_event_is_about_that_item(service):
    reply = service.respond("刻章要钱吗", "ask_aspect", aspect="fee", event="开办企业一件事")
    assert reply is not None and reply.guide_id == "sample-company-seal", reply


def test_a_question_the_nlu_took_for_a_life_event_is_about_the_event_under_discussion(service):
    reply = service.answer_life_event(None, "刻章要钱吗", "开办企业一件事")
    assert reply.guide_id == "sample-company-seal" and "免费" in reply.text, reply
    assert service.answer_life_event(None, "结婚一件事能办啥", "开办企业一件事").event == "结婚一件事"


def test_forms_of_the_items_materials_are_about_the_item_not_the_halls_rule(service):
    """"原件还是复印件" is in the forms of 工伤认定's materials; with no item, the hall's rule answers."""
    reply = service.respond("材料要原件还是复印件", "ask_aspect", current_id="sample-work-injury", aspect="materials")
    assert reply is not None and reply.guide_id == "sample-work-injury" and "原件和复印件" in reply.text, reply
    hall = service.respond("办事要带复印件吗", "ask_aspect", aspect="materials")
    assert hall is not None and hall.kind == "faq", hall


def test_a_question_the_nlu_took_for_a_life_event_is_about_the_item_under_discussion(service):
    """"烟草证以后能转给别人吗" names no event: it is about the tobacco licence (the NLU said life event,
    and the item's event, 开小卖部一件事, used to be answered whole). The guide does not say 可以: a
    transfer is no proxy application."""
    reply = service.answer_life_event(None, "烟草证以后能转给别人吗", None, "sample-tobacco-license")
    assert reply.guide_id == "sample-tobacco-license" and reply.kind != "life_event", reply
    assert not reply.text.startswith("可以"), reply.text
    hall = service.answer_life_event(None, "户口在外省，能在这里办哪些事", None, "sample-id-card-replace")
    assert hall.kind == "faq", hall  # retrieval clearly places it elsewhere: the hall's answer


def test_each_sentence_of_a_long_time_note_is_a_passage_of_its_own(service):
    """"公证书拿到境外使用的…海牙认证" was the last sentence of the time limits' passage, and the question
    about using the certificate abroad found nothing."""
    guide = service.guide("sample-notary-kinship")
    notes = [p.text for p in passages(guide) if p.kind == "note"]
    assert any("海牙认证" in n for n in notes) and all("。" not in n[:-1] for n in notes), notes
    found = service.follow_ups.answer(guide, "拿到国外用还需要别的手续吗")
    assert found.passage is not None and "认证" in found.passage.text, found


def test_a_maximum_asked_in_traditional_characters_is_answered_from_the_condition(service):
    """"最長貸幾年" (read by the NLU as out of scope): the cues are Simplified, so the question is
    normalised before they are read; a maximum is stated by a condition, not by the time limits."""
    reply = service.respond("最長貸幾年", "out_of_scope", current_id="sample-hf-loan")
    assert reply is not None and reply.guide_id == "sample-hf-loan" and "30年" in reply.text, reply


@pytest.mark.parametrize(("guide_id", "question", "expected"), [
    ("sample-business-change", "多少天之内必须去办", "30日内"),  # a deadline, written with 之内
    ("sample-resident-pension", "一年最少交多少", "100元"),  # what is paid, though it says 最少
    ("sample-driving-renew", "换的新证能用几年", "10年有效期"),  # how long the result is valid
])
def test_follow_up_cues_find_the_passage_that_answers(service, guide_id, question, expected):
    reply = service.follow_up(service.guide(guide_id), question, strict=True)
    assert reply is not None and expected in reply.text, reply and reply.text


def test_a_status_question_that_names_no_ticket_is_a_follow_up_about_the_item(service):
    """"批之前要公示吗" taken for a ticket-status question: no ticket is named, so the item's guide answers."""
    reply = service.respond("批之前要公示吗", "ticket_status", current_id="sample-dibao")
    assert reply is not None and "公示" in reply.text and reply.guide_id == "sample-dibao"


def test_a_chatty_sentence_naming_an_item_whole_is_offered_not_turned_away(service):
    result = service.search("我想问下点样办居住证啊")
    assert result.status == "ambiguous" and result.matches[0].item.id == "sample-residence-permit"
    assert service.search("今天会不会下冰雹").status == "none"


@pytest.mark.parametrize(("guide_id", "question", "expected"), [
    ("sample-id-card-renew", "现在就能去换了吗", "三个月内期满"),  # when one may apply: a condition
    ("sample-hukou-cert", "能开电子版吗", "电子版"),  # asks about the result, not a material to bring
    ("sample-teacher-cert", "在哪个网站上报名", "jszg.edu.cn"),
    ("sample-residence-permit", "要几耐先攞到", "15个工作日"),  # the guide's one time passage, in Cantonese
])
def test_more_follow_ups_find_their_passage(service, guide_id, question, expected):
    reply = service.follow_up(service.guide(guide_id), question, strict=True)
    assert reply is not None and expected in reply.text, reply and reply.text


def test_a_question_after_candidates_is_answered_for_the_first_with_the_others_offered(service):
    """No item chosen yet, and the citizen asks on (a voice user may never tap): the first candidate's
    guide answers, the other candidates stay on screen."""
    first = service.search("我和对象打算下个月去扯证")
    assert first.status == "ambiguous"
    reply = service.respond("女方才19岁可以吗", "ask_item", last_question="我和对象打算下个月去扯证")
    assert reply is not None and reply.guide_id == first.matches[0].item.id and "20周岁" in reply.text
    assert len(reply.buttons) > 1
    assert service.respond("谢谢", "thank", last_question="我和对象打算下个月去扯证") is None  # not a question


def test_the_question_word_says_which_aspect_is_asked(service):
    """"在哪里交材料": the NLU hears 材料, the question asks where."""
    reply = service.respond("在哪里交材料", "ask_aspect", current_id="sample-passport", aspect="materials")
    assert reply is not None and reply.guide_id == "sample-passport"
    assert "办理地点" in reply.text and "申请材料" not in reply.text.split("\n")[0], reply.text


def test_an_aspect_question_after_an_item_is_about_it_unless_it_names_something_else(service):
    things = service.respond("要带哪些东西去", "ask_aspect", current_id="sample-disability-card", aspect="materials")
    assert things is not None and things.kind == "aspect" and things.guide_id == "sample-disability-card"
    tesla = service.respond("特斯拉多少钱", "ask_aspect", current_id="sample-id-card-renew", aspect="fee")
    assert tesla is None or (tesla.kind in ("off_topic", "not_found") and "20元" not in tesla.text)


def test_a_complaint_that_only_tells_a_situation_is_searched_first(service):
    """"…到现在都没人管" is no request for a person: the item it is about, the way to a person beside it."""
    reply = service.respond("老公走了好几年了，他公积金里那点钱到现在都没人管", "complain")
    assert reply is not None and any(b.payload == "/request_human" for b in reply.buttons)
    assert service.respond("我要投诉，到现在都没人管", "complain") is None  # a complaint asked for: the form


@pytest.mark.parametrize("intent", ["ask_item", "out_of_scope", "chitchat"])
def test_a_question_naming_no_other_item_stays_with_the_item(service, intent):
    """Whatever the NLU heard, a question right after an item that names no other item is answered from
    that item's guide, or told that the guide is silent with the item's phone: never "not found", "out
    of scope" or another item's FAQ."""
    reply = service.respond("能不能一年交一次", intent, current_id="sample-flexible-employment")
    assert reply is not None and reply.kind == "follow_up" and reply.guide_id == "sample-flexible-employment"
    assert "12333" in reply.text or "按年" in reply.text, reply.text
    proxy = service.respond("他才15岁，我当家长的能替他去申请吗", intent, current_id="sample-temp-id-card")
    assert proxy is not None and proxy.guide_id == "sample-temp-id-card" and "监护人" in proxy.text, proxy
    assert service.respond("你是机器人吗", "chitchat", current_id="sample-flexible-employment") is None


def test_where_is_answered_with_the_guides_one_place(service):
    reply = service.respond("那去哪儿交", "ask_item", current_id="sample-resident-pension")
    assert reply is not None and reply.kind == "follow_up" and "办理地点" in reply.text, reply
    away = service.respond("我人在外地上班，能就在这边换吗", "ask_item", current_id="sample-id-card-renew")
    assert away is not None and "办理时间" not in away.text, away.text  # working there is no hours question


def test_an_item_named_by_its_own_title_beats_a_shared_catalogue_name(service):
    """"教师资格认定" is the sample item's title and the catalogue name two imported items carry."""
    result = service.search("教师资格认定怎么办")
    assert result.status == "clear" and result.best.item.id == "sample-teacher-cert"
    reply = service.respond("注册公司要多久", "ask_aspect", aspect="time")
    assert reply is not None and reply.kind == "aspect" and reply.guide_id == "sample-company-setup", reply


def test_a_new_how_to_question_is_no_follow_up(service):
    """"飞船驾驶证怎么办理" after 身份证 asks for an item of its own: nothing fits, the item is left."""
    reply = service.respond("飞船驾驶证怎么办理", "ask_item", current_id="sample-id-card-renew")
    assert reply is None or (reply.kind != "follow_up" and reply.guide_id != "sample-id-card-renew"), reply


def test_money_that_is_no_fee_and_a_must_i_go_question(service):
    """"贷下来的钱打到哪" is no fee question; "一定得去中心排队吗" asks whether going is needed: the online
    channel answers it, without a bare "可以"."""
    loan = service.respond("贷下来的钱是打我卡上还是直接给开发商", "ask_item", current_id="sample-hf-loan")
    assert loan is None or "收费标准" not in loan.text, loan.text
    go = service.respond("一定得去公积金中心排队吗", "ask_item", current_id="sample-hf-withdraw-rent")
    assert go is not None and go.text.startswith("不一定") and "网上" in go.text, go.text


def test_the_named_regions_own_guide_is_the_answer_among_guides_for_anywhere(service):
    """"我在广州，办护照去哪里": Guangzhou's own passport guide, not a choice between it and the sample
    guide that applies anywhere."""
    result = service.search("我在广州，办护照去哪里", region="广州")
    assert result.status == "clear" and result.best.item.id == "gd-11440100007483172Q3440106042001", result
    plain = service.search("办护照去哪里")  # no region named: the guide for anywhere leads
    assert plain.best is not None and plain.best.item.id == "sample-passport", plain


@pytest.mark.parametrize("text", ["我在广州，社保卡怎么办", "我在广州，公积金怎么提取"])
def test_a_keyword_naming_a_family_still_does_with_a_place_in_the_sentence(service, text):
    """The place filters the question; "社保卡怎么办" is what names the items, and it names a family."""
    result = service.search(text, region="广州")
    assert result.status == "ambiguous", result


def test_the_items_own_faq_entry_answers_a_chatty_follow_up(service):
    """"旧卡里还有钱怎么办" after 社保卡补换: retrieval alone is unsure, but its first two candidates are the
    item and the item's own entry about exactly this, as likely as each other."""
    reply = service.respond("旧卡里还有钱怎么办", "out_of_scope", current_id="sample-ss-card-replace")
    assert reply is not None and reply.kind == "faq" and "转入新卡" in reply.text, reply
    other = service.respond("烟草证以后能转给别人吗", "ask_item", current_id="sample-tobacco-license")
    assert other is None or "住所" not in other.text, other.text  # an entry far behind the guide is not it


def test_a_hall_rule_belongs_to_no_item_though_it_names_examples(service):
    """faq-hall-xianshi-01 lists 护照 and 不动产转移 as examples: answering it must not make the passport the
    item under discussion; an item's own entry belongs to its item."""
    hall = service.retriever.by_id["faq-hall-xianshi-01"]
    assert hall.related and service.retriever.item_of(hall) == ""
    own = service.retriever.by_id["faq-ss-card-replace-04"]
    assert service.retriever.item_of(own) == "sample-ss-card-replace"
    reply = service.respond("办事指南上写的承诺时限和法定时限有啥不一样", "ask_aspect", aspect="time",
                            current_id="sample-marriage")
    assert reply is not None and reply.kind == "faq" and "法定时限" in reply.text, reply
    assert reply.guide_id == "sample-marriage"  # the item under discussion stays


def test_an_aspect_question_moves_to_another_item_only_when_it_names_it(service):
    """"要我自己回老家开证明吗" after 医保转移: retrieval places it at 户籍证明, which it does not name."""
    reply = service.respond("要我自己回老家开证明吗", "ask_aspect", aspect="materials",
                            current_id="sample-medical-transfer")
    assert reply is not None and reply.guide_id == "sample-medical-transfer", reply
    named = service.respond("结婚登记要多少钱", "ask_aspect", aspect="fee", current_id="sample-id-card-renew")
    assert named is not None and named.guide_id == "sample-marriage", named


def test_the_items_own_question_again_gets_the_guide_not_its_faq_entry(service):
    """Asked again with the item under discussion, "我身份证过期了怎么办" is still the guide's question
    (retrieval is clear on it): the whole notification, not the FAQ entry that ties with it."""
    reply = service.respond("我身份证过期了怎么办", "ask_item", current_id="sample-id-card-renew")
    assert reply is not None and "居民身份证换领" in reply.text.split("\n")[0], reply.text[:80]
    home = service.respond("孩子是在家里生的怎么办", "ask_item", current_id="sample-birth-cert")
    assert home is not None and home.kind == "faq" and "在家里生" in home.text, home  # a situation of it
