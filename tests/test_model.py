import pytest

from bot.errors import GuideFormatError
from bot.knowledge.model import Guide, Material, guide_from_dict


def test_round_trip_keeps_every_field():
    guide = Guide(
        id="x", title="结婚登记", aliases=("扯证",), fee="不收费", statutory_days=0, courier=False,
        materials=(Material(name="户口簿", form="原件", copies=1, deferrable=True),),
    )
    assert guide_from_dict(guide.to_dict()) == guide


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"title": "t"}, "'id' is missing"),
        ({"id": "x", "title": " "}, "'title' is missing"),
        ({"id": "x", "title": "t", "fees": "1元"}, "unknown field(s) fees"),
        ({"id": "x", "title": "t", "visits": "一次"}, "'visits' must be a whole number"),
        ({"id": "x", "title": "t", "visits": -1}, "'visits' must be a whole number"),
        ({"id": "x", "title": "t", "courier": "是"}, "'courier' must be true or false"),
        ({"id": "x", "title": "t", "aliases": [1]}, "'aliases' must be a list of texts"),
        ({"id": "x", "title": "t", "materials": [{"form": "原件"}]}, "materials[1] has no 'name'"),
        ({"id": "x", "title": "t", "materials": [{"name": "a", "form": "扫描"}]}, "materials[1].form"),
        ({"id": "x", "title": "t", "materials": [{"name": "a", "copies": 0}]}, "materials[1].copies"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_records_name_the_field(record, message):
    with pytest.raises(GuideFormatError) as info:
        guide_from_dict(record)
    assert message in str(info.value)


def test_null_fields_are_absent_not_errors():
    guide = guide_from_dict({"id": "x", "title": "t", "fee": None, "materials": ["身份证"]})
    assert guide.fee is None
    assert guide.materials == (Material(name="身份证"),)
