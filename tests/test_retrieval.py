"""Retrieval over the real model and a small real index (sample guides + 300 Guangdong guides)."""

import pytest

from bot.answering.ranking import FEATURES as RANKING_FEATURES
from bot.errors import IndexMissing
from bot.knowledge.index import LoadedIndex, read_manifest


def test_manifest_records_model_and_dimension(built_index, encoder):
    manifest = read_manifest(built_index)
    assert manifest.model == encoder.name
    assert manifest.dim == encoder.dim == 384
    assert manifest.index_type == "IndexFlatIP"
    assert manifest.vectors > manifest.guides > 300 and manifest.faqs >= 300


def test_index_for_another_model_is_refused(built_index):
    with pytest.raises(IndexMissing, match="rebuild"):
        LoadedIndex.load(built_index, expect_model="some-other-model")


def test_missing_index_names_the_command(tmp_path):
    with pytest.raises(IndexMissing, match="knowledge build-index"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("我身份证过期了怎么办", "sample-id-card-renew"),
        ("我身份證過期了怎麼辦", "sample-id-card-renew"),
        ("身份证丢了怎么补办", "sample-id-card-replace"),
        ("我们下个月去扯证，要带什么", "sample-marriage"),
        ("社保卡丢了怎么办", "sample-ss-card-replace"),
        ("租房子可以取公积金吗", "sample-hf-withdraw-rent"),
        ("驾照到期了去哪换", "sample-driving-renew"),
    ],
)
def test_everyday_questions_find_the_right_guide(service, question, expected):
    result = service.search(question)
    assert result.best is not None
    best = result.best.item
    # the item's guide, or the office's FAQ entry about that very item (its answer, then the item's buttons)
    about = best.related[:1] if result.best.is_faq else (best.id,)
    assert about == (expected,), [(m.item.id, m.score) for m in result.matches]
    assert result.status in ("clear", "ambiguous")


@pytest.mark.parametrize("question", ["今天会不会下冰雹", "推荐一首好听的歌", "股票明天会涨吗"])
def test_unanswerable_questions_find_nothing(service, question):
    result = service.search(question)
    assert result.status == "none", [(m.item.title, m.score) for m in result.matches]


@pytest.mark.parametrize("question", ["", "   ", "🙏🙏🙏", "？？？"])
def test_empty_questions(service, question):
    assert service.search(question).status == "empty"


def test_huge_question_is_answered_not_crashed(service):
    result = service.search("我身份证过期了怎么办" + "啊" * 10_000)
    assert result.status in ("clear", "ambiguous", "none")


def test_search_reports_the_signals_it_decided_on(service):
    result = service.search("我身份证过期了怎么办")
    from bot.answering.calibration import FEATURES

    assert set(result.signals) == set(FEATURES)
    assert result.p_none is not None and result.p_none < 0.5
    assert result.best is not None and set(result.best.features) == set(RANKING_FEATURES)


def test_a_named_region_does_not_drop_items_that_apply_everywhere(service):
    result = service.search("在广东身份证过期了怎么换")
    assert result.mentions.regions == {"广东省"}
    assert result.best is not None and result.best.item.id == "sample-id-card-renew"


def test_a_near_miss_still_offers_the_closest_items(service):
    from bot.answering.service import NEAR_MISS_P_NONE

    reply = service.answer_question("电动自行车上牌去哪里")
    if reply.status == "none":
        result = service.search("电动自行车上牌去哪里")
        assert (result.p_none is not None and result.p_none < NEAR_MISS_P_NONE) == bool(reply.buttons)
    joke = service.answer_question("给我讲个笑话")
    assert joke.status == "none" and joke.buttons == []
    assert "12345" in joke.text


def test_faq_entries_are_ranked_with_the_guides(service):
    result = service.search("材料没带齐能不能先收件")
    assert result.best is not None and result.best.is_faq, [(m.item.id, m.score) for m in result.matches]
    reply = service.answer_question("材料没带齐能不能先收件")
    assert reply.kind == "faq" and reply.guides[0].id == result.best.item.id
    assert result.best.item.answer in reply.text  # the office's answer, verbatim


def test_excluded_records_are_left_out(service):
    kept = service.search("我身份证过期了怎么办")
    assert kept.best is not None
    without = service.search("我身份证过期了怎么办", exclude={kept.best.item.id})
    assert all(m.item.id != kept.best.item.id for m in without.matches)


@pytest.mark.parametrize(("keyword", "members"), [
    ("社保卡", {"sample-ss-card-apply", "sample-ss-card-replace"}),
    ("驾照的事情", {"sample-driving-renew", "sample-driving-replace"}),
    ("公积金怎么提取", {"sample-hf-withdraw-buy", "sample-hf-withdraw-rent"}),
])
def test_a_keyword_naming_a_family_of_items_offers_them(service, keyword, members):
    """Nothing in "社保卡" says 申领 or 挂失补换: the citizen chooses, however far ahead the ranker is."""
    result = service.search(keyword)
    assert result.status == "ambiguous", (keyword, [m.item.id for m in result.matches])
    assert members <= {m.item.id for m in result.matches}


@pytest.mark.parametrize(("question", "expected"), [
    ("社保卡丢了", "sample-ss-card-replace"),  # a word that tells the family apart
    ("失业金怎么领", "sample-unemployment-benefit"),
    ("协议离婚怎么办", "sample-divorce"),  # its words are not written together in another item's name
    ("护照怎么办理", "sample-passport"),  # one of the family far ahead of the others (加注, progress look-ups)
])
def test_a_keyword_that_tells_the_items_apart_is_answered(service, question, expected):
    result = service.search(question)
    assert result.status == "clear" and result.best.item.id == expected, [m.item.id for m in result.matches]


@pytest.mark.parametrize(("question", "expected"), [
    ("港澳通行证怎么办", "sample-hk-macau-permit"),  # its alias whole; 办理往来港澳通行证 only holds it
    ("注册公司要多久", "sample-company-setup"),  # what is asked ("要多久") aside, the alias 注册公司
])
def test_a_question_that_is_exactly_one_items_name_is_answered_with_it(service, question, expected):
    result = service.search(question)
    assert result.status == "clear" and result.best.item.id == expected, [m.item.id for m in result.matches]


@pytest.mark.parametrize("question", [
    "身份证丢了怎么补办", "营业执照 营业执照 变更", "ATA单证册", "护照", "火星签证", "的的的的"])
def test_lexical_scores_equal_the_vectorizers_own_weighting(service, question):
    """The lexical side weighs a question by hand (for speed); it must be TfidfVectorizer's transform."""
    import numpy as np

    from bot.knowledge.text import normalize

    lexical = service.retriever._lexical
    query = normalize(question)
    vector = lexical._vectorizer.transform([query])
    per_text = np.asarray((lexical._columns @ vector.T).toarray()).ravel()
    expected = np.zeros(lexical._count)
    np.maximum.at(expected, lexical._rows, per_text)
    assert np.allclose(lexical.scores(query), expected, atol=1e-9)
    assert (expected > 0).any() or question == "的的的的"


def test_longest_common_run_equals_difflib():
    """The ranker's longest shared run is computed by substring tests (for speed); it must be the
    longest matching block difflib finds, on real titles and on random strings of a small alphabet
    (many partial matches), including the truncation to LCS_CHARS."""
    import random
    from difflib import SequenceMatcher

    from bot.answering.ranking import LCS_CHARS, longest_common_run

    def reference(a: str, b: str) -> int:
        if not a or not b:
            return 0
        a, b = a[:LCS_CHARS], b[: LCS_CHARS * 4]
        return SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b)).size

    pairs = [("身份证丢了怎么补办", "居民身份证补领 补办身份证"), ("", "护照"), ("护照", ""), ("结婚", "结婚登记"),
             ("abcabc", "cab"), ("营业执照", "营业执照变更登记")]
    rng = random.Random(7)
    for _ in range(2000):
        a = "".join(rng.choice("甲乙丙丁") for _ in range(rng.randint(0, 90)))
        b = "".join(rng.choice("甲乙丙丁戊") for _ in range(rng.randint(0, 300)))
        pairs.append((a, b))
    for a, b in pairs:
        assert longest_common_run(a, b) == reference(a, b), (a, b)
