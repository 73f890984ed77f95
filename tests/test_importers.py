import json
from pathlib import Path

import pytest

from bot.errors import ImportFailed
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.importers import guangdong_guide, read_file, read_path
from tests.conftest import GUANGDONG, write_jsonl

GD_RECORD = {
    "TASK_CODE": "1144", "TASK_NAME": "出版物零售单位设立", "DEPT_NAME": "某局", "TASK_TYPE_TEXT": "行政许可",
    "CATANAME": "出版物零售", "AREA_CODE_TEXT": "广东省", "handle_time": "20(工作日)",
    "handle_time_limit": "5(工作日)", "visit_number": "1", "handle_location": "办理地点：广州市某路1号",
    "accept_standard": "1.有场所； 2.有人员", "material_intro": ["申请书", "无"], "courier_service": "是",
    "online_book": "是", "online_book_addr": "无", "consult_phone": "020-1", "complain_phone": "无",
    "co_department": "无", "service_object_name": ["自然人"], "theme_category": ["其他"],
}


def test_guangdong_mapping():
    guide = guangdong_guide(GD_RECORD)
    assert guide.id == "gd-1144"
    assert guide.title == "出版物零售单位设立"
    assert guide.aliases == ("出版物零售",)
    assert guide.statutory_days == 20 and guide.promised_days == 5
    assert guide.place == "广州市某路1号"
    assert [m.name for m in guide.materials] == ["申请书"]  # "无" is a placeholder, not a material
    assert guide.conditions == ("1.有场所", "2.有人员")
    assert guide.visits == 1 and guide.courier is True
    assert guide.appointment == "支持网上预约"
    assert guide.complain_phone is None and guide.co_departments == ()
    assert guide.fee is None and guide.process == ()  # not in this export: never invented


@pytest.mark.parametrize("field", [k for k in GD_RECORD if k not in ("TASK_CODE", "TASK_NAME")])
def test_guangdong_null_or_missing_fields_never_crash(field):
    nulled = dict(GD_RECORD, **{field: None})
    assert guangdong_guide(nulled).title
    missing = {k: v for k, v in GD_RECORD.items() if k != field}
    assert guangdong_guide(missing).title


def test_guangdong_full_export_imports_every_record():
    report = read_file(GUANGDONG)
    assert report.formats[str(GUANGDONG)] == "guangdong"
    assert len(report.guides) == 2262
    assert report.skipped == []


def test_guangdong_records_without_name_are_reported(tmp_path: Path):
    path = write_jsonl(tmp_path / "gd.jsonl", [GD_RECORD, dict(GD_RECORD, TASK_CODE="2", TASK_NAME=None)])
    with path.open("a", encoding="utf-8") as out:
        out.write("{not json\n")
    report = read_file(path)
    assert len(report.guides) == 1
    reasons = [str(p) for p in report.skipped]
    assert f"{path}:2: no TASK_NAME or matter_name" in reasons[0]
    assert reasons[1].startswith(f"{path}:3: not valid JSON")


def test_project_jsonl_reports_file_line_and_field(tmp_path: Path):
    path = write_jsonl(tmp_path / "g.jsonl", [{"id": "a", "title": "甲"}, {"id": "b"}, {"id": "c", "title": "丙"}])
    report = read_file(path)
    assert [g.id for g in report.guides] == ["a", "c"]
    assert str(report.skipped[0]) == f"{path}:2: field 'title' is missing or empty"


def test_duplicate_ids_and_dangling_links_are_reported(tmp_path: Path):
    write_jsonl(tmp_path / "a.jsonl", [{"id": "a", "title": "甲", "related": ["zzz"]}])
    write_jsonl(tmp_path / "b.jsonl", [{"id": "a", "title": "乙"}])
    kb = KnowledgeBase.load(tmp_path)
    assert len(kb) == 1 and kb.get("a").title == "甲"
    assert "duplicate id 'a'" in kb.report.skipped[0].reason
    assert "related item 'zzz'" in kb.report.warnings[0].reason


def test_csv_import(tmp_path: Path):
    path = tmp_path / "guides.csv"
    path.write_text(
        "id,title,aliases,materials,visits,courier,fee\n"
        'x1,结婚登记,扯证|领证,"户口簿\n身份证",0,是,不收费\n'
        "x2,离婚登记,,,一次,否,\n"
        ",缺编号,,,,,\n",
        encoding="utf-8",
    )
    report = read_file(path)
    assert [g.id for g in report.guides] == ["x1"]
    guide = report.guides[0]
    assert guide.aliases == ("扯证", "领证")
    assert [m.name for m in guide.materials] == ["户口簿", "身份证"]
    assert guide.visits == 0 and guide.courier is True and guide.fee == "不收费"
    problems = [str(p) for p in report.skipped]
    assert problems[0] == f"{path}:4: column 'visits' must be a whole number, got '一次'"
    assert problems[1] == f"{path}:5: field 'id' is missing or empty"


def test_a_sheet_without_the_needed_columns_names_exactly_those(tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match="lacks the column\\(s\\) 'id', 'title'"):
        read_file(path)
    path.write_text("title,fee\n结婚登记,不收费\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match="lacks the column\\(s\\) 'id':"):
        read_file(path)
    path.write_text("question,department\n周末能办吗,政务服务中心\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match="needs a answer column") as error:
        read_file(path)
    assert "question" not in str(error.value).split("needs")[1].split("(")[0]


# --- FAQ ---------------------------------------------------------------------------------------


ANSWER = "可以。\n1. 先在窗口登记；\n2. 材料|复印件；原件后补;\n3. 5个工作日内补齐。"


def test_a_plain_question_answer_sheet_imports_as_it_is_with_answers_verbatim(tmp_path: Path):
    path = tmp_path / "faq.csv"
    path.write_text('question,answer\n材料不齐能先受理吗,"' + ANSWER + '"\n周末能办吗,周六上午9:00-12:00办理。\n',
                    encoding="utf-8")
    report = read_file(path)
    assert report.guides == [] and report.skipped == [] and len(report.faqs) == 2
    first = report.faqs[0]
    assert first.question == "材料不齐能先受理吗" and first.answer == ANSWER.strip()  # never split or reflowed
    assert first.id.startswith("faq-") and read_file(path).faqs[0].id == first.id  # stable across imports
    assert first.source == "faq.csv" and report.formats[str(path)] == "csv (FAQ)"


def test_an_faq_sheet_with_chinese_headers_and_lists(tmp_path: Path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["编号", "问题", "答案", "相似问题", "关键词", "部门", "关联事项", "更新时间"])
    sheet.append(["q1", "可以预约吗", ANSWER, "怎么预约\n能不能先约", "预约；取号", "政务服务中心", "sample-passport",
                  "2026-11-30"])
    sheet.append(["q2", "没有答案的问题", None, None, None, None, None, None])
    path = tmp_path / "faq.xlsx"
    book.save(path)
    report = read_file(path)
    (entry,) = report.faqs
    assert entry.id == "q1" and entry.answer == ANSWER.strip()
    assert entry.alternatives == ("怎么预约", "能不能先约") and entry.keywords == ("预约", "取号")
    assert entry.related == ("sample-passport",) and entry.updated == "2026-11-30"
    assert str(report.skipped[0]) == f"{path}:3: the answer cell is empty"


def test_faq_records_in_jsonl_are_faq_entries_and_errors_name_the_field(tmp_path: Path):
    path = write_jsonl(tmp_path / "faq.jsonl", [
        {"id": "f1", "question": "周末能办吗", "answer": "可以。", "keywords": ["周末"]},
        {"id": "f2", "question": "没有回答", "answer": ""},
        {"id": "f3", "question": "多了字段", "answer": "是", "answre": "拼错"},
        {"id": "g1", "title": "一个事项"},
    ])
    report = read_file(path)
    assert [f.id for f in report.faqs] == ["f1"] and [g.id for g in report.guides] == ["g1"]
    reasons = [str(p) for p in report.skipped]
    assert reasons[0] == f"{path}:2: field 'answer' is missing or empty"
    assert reasons[1].startswith(f"{path}:3: unknown FAQ field(s) answre")


def test_the_bundled_faq_is_clean_and_links_to_existing_items():
    from bot.settings import load_settings

    settings = load_settings({})
    kb = KnowledgeBase.load(*settings.knowledge_roots)
    assert kb.report.skipped == [] and kb.report.warnings == []
    assert len(kb.faqs) >= 300
    hall = [f for f in kb.faqs.values() if f.id.startswith("faq-hall-")]
    assert len(hall) >= 70 and all(f.sample for f in kb.faqs.values())
    topics = " ".join(f.question + " ".join(f.keywords) for f in hall)
    for topic in ("容缺", "告知承诺", "预约", "周末", "代办", "绿色通道", "跑一次", "网办", "跨省通办", "办不成事",
                  "好差评", "首问"):
        assert topic in topics, topic


def test_xlsx_import(tmp_path: Path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["id", "title", "materials", "promised_days", "sample"])
    sheet.append(["y1", "社保卡申领", json.dumps([{"name": "身份证", "form": "原件"}], ensure_ascii=False), 5, "是"])
    sheet.append([None, None, None, None, None])
    sheet.append(["y2", "社保卡补换", "身份证", "五天", "否"])
    path = tmp_path / "guides.xlsx"
    book.save(path)
    report = read_file(path)
    assert [g.id for g in report.guides] == ["y1"]
    assert report.guides[0].materials[0].form == "原件"
    assert report.guides[0].promised_days == 5 and report.guides[0].sample is True
    assert str(report.skipped[0]).startswith(f"{path}:4: column 'promised_days'")


def test_non_utf8_file_is_one_clear_error(tmp_path: Path):
    path = tmp_path / "gbk.jsonl"
    path.write_bytes('{"id": "a", "title": "结婚"}'.encode("gbk"))
    with pytest.raises(ImportFailed, match="not UTF-8"):
        read_file(path)


def test_missing_folder_is_one_clear_error(tmp_path: Path):
    with pytest.raises(ImportFailed, match="no such file or folder"):
        read_path(tmp_path / "nope")


def test_bundled_knowledge_base_is_clean():
    from bot.settings import load_settings

    kb = KnowledgeBase.load(load_settings({}).knowledge_dir)
    assert kb.report.skipped == []
    assert kb.report.warnings == []
    samples = [g for g in kb if g.sample]
    assert len(samples) >= 40
    for guide in samples:
        assert guide.materials and guide.conditions and guide.process, guide.id
        assert guide.fee and guide.place, guide.id
        assert guide.promised_days is not None or guide.time_note, guide.id
        assert guide.aliases and guide.questions, guide.id
