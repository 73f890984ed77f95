"""The `knowledge` command, run in-process through its main()."""

import json
from pathlib import Path

from bot.servers.cli import main
from tests.conftest import write_jsonl


def test_validate_names_file_line_and_field(tmp_path: Path, capsys):
    path = write_jsonl(tmp_path / "g.jsonl", [{"id": "a", "title": "甲"}, {"id": "b", "title": "乙", "visits": "两次"}])
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 guides and 0 FAQ entries valid, 1 skipped" in out
    assert f"{path}:2: field 'visits' must be a whole number" in out
    assert main(["validate", "--strict", str(path)]) == 1


def test_import_writes_project_jsonl_and_reports(tmp_path: Path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("id,title,materials\nc1,社保卡申领,身份证|照片\n,没有编号,\n", encoding="utf-8")
    out = tmp_path / "out" / "region.jsonl"
    assert main(["import", str(src), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "imported 1 guides and 0 FAQ entries" in printed and "skipped 1" in printed and f"{src}:3" in printed
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert records[0]["id"] == "c1" and [m["name"] for m in records[0]["materials"]] == ["身份证", "照片"]


def test_missing_source_is_one_line_and_exit_2(tmp_path: Path, capsys):
    assert main(["validate", str(tmp_path / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_search_without_index_says_how_to_build_it(tmp_path: Path, capsys, monkeypatch, model_dir):
    monkeypatch.setenv("GUIDE_INDEX_DIR", str(tmp_path / "no-index"))
    assert main(["search", "身份证"]) == 2
    assert "knowledge build-index" in capsys.readouterr().err


def test_build_index_then_search_json(tmp_path: Path, capsys, monkeypatch, model_dir):
    kb = write_jsonl(tmp_path / "kb.jsonl", [
        {"id": "m", "title": "内地居民结婚登记", "aliases": ["扯证", "领结婚证"]},
        {"id": "d", "title": "内地居民离婚登记", "aliases": ["离婚"]},
        {"id": "p", "title": "普通护照签发", "aliases": ["办护照"]},
    ])
    monkeypatch.setenv("GUIDE_KNOWLEDGE_DIR", str(kb))
    monkeypatch.setenv("GUIDE_INDEX_DIR", str(tmp_path / "idx"))
    assert main(["build-index", "--quiet"]) == 0
    assert main(["build-index"]) == 0
    assert "up to date" in capsys.readouterr().out  # unchanged knowledge: not rebuilt
    assert main(["search", "我想去扯证", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["matches"][0]["id"] == "m"


def test_import_an_faq_sheet_dry_run_then_for_real(tmp_path: Path, capsys):
    src = tmp_path / "faq.csv"
    src.write_text("question,answer\n周末能办吗,周六上午可以办理。\n,没有问题的回答\n", encoding="utf-8")
    out = tmp_path / "faq" / "office.jsonl"
    assert main(["import", str(src), "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "would import 0 guides and 1 FAQ entries" in printed and "周末能办吗" in printed
    assert f"{src}:3: the question cell is empty" in printed and not out.exists()
    assert main(["import", str(src), "--out", str(out)]) == 0
    assert "imported 0 guides and 1 FAQ entries" in capsys.readouterr().out
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[0])["answer"] == "周六上午可以办理。"


def test_an_import_that_imported_nothing_fails(tmp_path: Path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "answer": "没有问题"}, {"id": "b", "title": ""}])
    assert main(["import", str(src), "--out", str(tmp_path / "out.jsonl")]) == 1
    captured = capsys.readouterr()
    assert f"{src}:1:" in captured.out and f"{src}:2:" in captured.out  # every skipped record, with its line
    assert "nothing could be imported" in captured.err and not (tmp_path / "out.jsonl").exists()


def test_validate_reports_each_kind(tmp_path: Path, capsys):
    write_jsonl(tmp_path / "kb.jsonl", [{"id": "g", "title": "甲"}, {"id": "f", "question": "问", "answer": "答"}])
    assert main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 guides and 1 FAQ entries valid" in out and "FAQ entries without: alternatives 1" in out
    assert "guides not stating a field" in out
