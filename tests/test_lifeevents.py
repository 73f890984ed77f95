"""Life events: items in a sensible order, shared materials once."""

from bot.answering.lifeevents import LifeEvents, material_key
from bot.knowledge.model import Guide, Material

CERT = Guide(id="cert", title="出生医学证明签发", results=("出生医学证明",), life_events=("出生一件事",),
             materials=(Material("父母居民身份证"),))
HUKOU = Guide(id="hukou", title="出生登记", results=("居民户口簿（新生儿户口页）",), life_events=("出生一件事",),
              materials=(Material("《出生医学证明》原件"), Material("父母居民身份证"), Material("结婚证")))
MEDICAL = Guide(id="med", title="新生儿医保参保", life_events=("出生一件事",),
                materials=(Material("居民户口簿"), Material("出生医学证明"), Material("监护人银行卡")))


def test_material_key_strips_quotes_and_copy_words():
    assert material_key("《出生医学证明》原件") == "出生医学证明"
    assert material_key("居民身份证复印件") == "居民身份证"


def test_producers_come_before_consumers_whatever_the_file_order():
    events = LifeEvents([MEDICAL, HUKOU, CERT])
    plan = events.plan("出生一件事")
    assert [g.id for g in plan.guides] == ["cert", "hukou", "med"]


def test_shared_materials_are_listed_once_and_produced_ones_not_at_all():
    plan = LifeEvents([CERT, HUKOU, MEDICAL]).plan("出生一件事")
    names = [name for name, _ in plan.materials]
    assert names.count("父母居民身份证") == 1
    assert dict(plan.materials)["父母居民身份证"] == ("出生医学证明签发", "出生登记")
    assert "出生医学证明" not in names and "居民户口簿" not in names
    assert dict(plan.produced)["出生医学证明"] == "出生医学证明签发"


def test_events_are_found_by_name_or_by_their_stem_in_a_question():
    events = LifeEvents([CERT, HUKOU, MEDICAL])
    assert events.find("出生一件事") == "出生一件事"
    assert events.find(None, "孩子出生了要办什么") == "出生一件事"
    assert events.find("结婚", "我们要结婚了") is None


def test_a_cycle_in_the_data_keeps_file_order_instead_of_hanging():
    a = Guide(id="a", title="甲证办理", results=("甲证",), life_events=("e",), materials=(Material("乙证"),))
    b = Guide(id="b", title="乙证办理", results=("乙证",), life_events=("e",), materials=(Material("甲证"),))
    assert [g.id for g in LifeEvents([a, b]).plan("e").guides] == ["a", "b"]


def test_bundled_birth_event_reads_in_order(service):
    reply = service.answer_life_event(None, "生了孩子要办哪些手续")
    assert reply.kind == "life_event" and reply.event == "出生一件事"
    ids = [g.id for g in reply.guides]
    assert ids.index("sample-birth-cert") < ids.index("sample-birth-hukou") < ids.index("sample-newborn-medical")
    assert "相同材料只需准备一份" in reply.text


def test_an_event_named_in_everyday_words_is_found_through_the_synonyms(service):
    """"买房一件事": the knowledge base calls it 购房一件事; synonyms.txt maps 买房 to 购房."""
    reply = service.answer_life_event(None, "买房一件事怎么办")
    assert reply.kind == "life_event" and reply.event == "购房一件事"
