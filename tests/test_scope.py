"""Region and department mentions, learned from the guides themselves."""

from bot.answering.scope import Scope, department_stems
from bot.knowledge.model import Guide

GUIDES = [
    Guide(id="gz-passport", title="普通护照签发", region="广东省广州市", department="广州市公安局"),
    Guide(id="sz-passport", title="普通护照签发", region="广东省深圳市", department="深圳市公安局"),
    Guide(id="gd-passport", title="普通护照签发", region="广东省", department="广东省公安厅"),
    Guide(id="gd-pension", title="养老保险待遇申领", region="广东省", department="广东省人力资源和社会保障厅"),
    Guide(id="sample-id", title="居民身份证换领", region="示例地区", department="公安机关户政管理部门", sample=True),
]


def test_department_stems_drop_places_and_office_words():
    regions = ["广东省", "广东省广州市"]
    assert department_stems("广州市公安局", regions) == {"公安"}
    assert department_stems("广东省人力资源和社会保障厅", regions) == {"人力资源和社会保障"}
    assert "车辆" in department_stems("公安机关交通管理部门（车辆管理所）", regions)
    assert department_stems("国家税务总局广东省税务局", regions) == {"税务"}


def test_a_named_city_is_found_by_its_short_name():
    scope = Scope(GUIDES)
    assert scope.mentions("在广州怎么办护照").regions == {"广东省广州市"}
    assert scope.mentions("深圳市办护照").regions == {"广东省深圳市"}
    assert scope.mentions("办护照").regions == frozenset()


def test_region_fit_keeps_province_wide_and_sample_guides():
    scope = Scope(GUIDES)
    named = scope.mentions("在广州办护照").regions
    fits = [scope.fits_region(i, named) for i in range(len(GUIDES))]
    assert fits == [True, False, None, None, None]


def test_department_needs_an_office_word_after_it():
    scope = Scope(GUIDES)
    assert scope.mentions("去公安局办护照").departments == {"公安"}
    assert scope.mentions("人力资源和社会保障厅的养老金").departments == {"人力资源和社会保障"}
    # "公安" without 局/厅/机关 is not a request for that office
    assert scope.mentions("公安知识竞赛").departments == frozenset()


def test_explicit_region_from_the_conversation():
    scope = Scope(GUIDES)
    assert scope.mentions("办护照", region="深圳").regions == {"广东省深圳市"}
    assert scope.fits_department(0, scope.mentions("x", department="广州市公安局").departments)


def test_province_before_an_office_names_the_province():
    """"省公安厅" in a knowledge base of one province is that province's office, not Guangzhou's."""
    scope = Scope(GUIDES)
    assert scope.mentions("省公安厅办护照要多久").regions == {"广东省"}
    assert scope.mentions("在省人力资源和社会保障厅领养老金").regions == {"广东省"}
    assert scope.mentions("公安局办护照").regions == frozenset()  # no level named
    assert scope.mentions("深圳市公安局").regions == {"广东省深圳市"}  # a named place wins
    two = Scope([*GUIDES, Guide(id="hn", title="普通护照签发", region="湖南省", department="湖南省公安厅")])
    assert two.mentions("省公安厅办护照").regions == frozenset()  # which province: not said
