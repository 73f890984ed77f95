"""Reading guides from the formats offices actually have.

Supported, detected per file:

* the Guangdong portal export (JSON Lines with ``TASK_NAME``, ``material_intro`` …),
  real-world input with nulls, "无" placeholders and truncated fields;
* the project's own schema as JSON Lines (``*.jsonl``) or a JSON array (``*.json``);
* the project's own schema as CSV or XLSX, one guide per row, column names = field names.
  List fields hold one entry per line (or entries separated by "；" or "|"); ``materials``
  holds one material name per line, or a JSON array of material objects;
* FAQ lists (常见问题) in any of those: a JSON record with an ``answer`` is an FAQ entry; a
  sheet whose header has a question and an answer column (``question``/``answer`` or
  问题/答案, 相似问题, 关键词, 部门 …) is an FAQ sheet — a plain two-column ``question,answer``
  sheet imports as it is, with ids made from the question. An answer is kept verbatim, never
  split; only alternatives, keywords and related ids are list cells.

Every reader returns an :class:`ImportReport`: the records it could use and, for every
record it could not, the file, line and reason. A bad record never stops the others.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import GuideFormatError, ImportFailed
from bot.knowledge.model import (
    BOOL_FIELDS,
    FAQ_LIST_FIELDS,
    INT_FIELDS,
    LIST_FIELDS,
    FaqEntry,
    Guide,
    Material,
    faq_from_dict,
    guide_from_dict,
    record_kind,
)

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".xlsx")


@dataclass(frozen=True)
class Problem:
    """A record that was skipped (or a warning about one that was kept)."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class ImportReport:
    """What one import produced."""

    guides: list[Guide] = field(default_factory=list)
    faqs: list[FaqEntry] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)

    @property
    def imported(self) -> int:
        return len(self.guides) + len(self.faqs)

    def extend(self, other: ImportReport) -> None:
        self.guides.extend(other.guides)
        self.faqs.extend(other.faqs)
        self.skipped.extend(other.skipped)
        self.warnings.extend(other.warnings)
        self.formats.update(other.formats)


def discover(root: Path) -> list[Path]:
    """Guide files under ``root`` (or ``root`` itself), sorted for a stable build."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ImportFailed(f"{root}: no such file or folder (set GUIDE_KNOWLEDGE_DIR or pass a path)")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)


def read_path(path: Path) -> ImportReport:
    """Import every guide file at ``path`` (a file or a folder)."""
    report = ImportReport()
    for file in discover(path):
        report.extend(read_file(file))
    return report


def read_file(path: Path) -> ImportReport:
    """Import one file, choosing the reader by its suffix and content."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        return _read_json_array(path)
    if suffix in (".csv", ".xlsx"):
        return _sheet(path, suffix[1:])
    raise ImportFailed(f"{path}: unsupported file type '{suffix}'; use one of {', '.join(SUPPORTED_SUFFIXES)}")


# --- JSON ----------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"{path}: not UTF-8 text (byte {exc.start}); re-save the file as UTF-8") from None
    except OSError as exc:
        raise ImportFailed(f"{path}: cannot read ({exc.strerror})") from None


def _read_jsonl(path: Path) -> ImportReport:
    report = ImportReport()
    fmt = ""
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            report.skipped.append(Problem(str(path), number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not fmt:
            fmt = "guangdong" if isinstance(record, dict) and "TASK_NAME" in record else "jsonl"
            report.formats[str(path)] = fmt
        _add(report, path, number, record, fmt)
    return report


def _read_json_array(path: Path) -> ImportReport:
    report = ImportReport()
    try:
        records = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise ImportFailed(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list):
        raise ImportFailed(f"{path}: expected a JSON array of guides")
    fmt = "guangdong" if records and isinstance(records[0], dict) and "TASK_NAME" in records[0] else "json"
    report.formats[str(path)] = fmt
    for number, record in enumerate(records, 1):
        # For an array the "line" is the record's position; the message says so.
        _add(report, path, number, record, fmt)
    return report


def _add(report: ImportReport, path: Path, number: int, record: Any, fmt: str) -> None:
    try:
        if fmt == "guangdong":
            report.guides.append(guangdong_guide(record))
        elif record_kind(record) == "faq":
            report.faqs.append(faq_from_dict(record))
        else:
            report.guides.append(guide_from_dict(record))
    except GuideFormatError as exc:
        report.skipped.append(Problem(str(path), number, str(exc)))


# --- the Guangdong export ------------------------------------------------------------------

_NONE_WORDS = {"", "无", "暂无", "null", "none", "/", "-", "—"}
_DAYS = re.compile(r"^\s*(\d+)\s*[（(]?\s*工作日")
_LOCATION_PREFIX = re.compile(r"^\s*办理地点[:：]\s*")
_CONDITION_SPLIT = re.compile(r"\s*(?:[；;]\s*|\s+(?=\d+[.、．]))")


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if text.lower() in _NONE_WORDS else text


def _days(value: Any) -> int | None:
    text = _clean(value)
    if text is None:
        return None
    match = _DAYS.match(text)
    return int(match.group(1)) if match else None


def _flag(value: Any) -> bool | None:
    text = _clean(value)
    if text is None:
        return None
    return text in {"是", "1", "true", "True", "支持"}


def guangdong_guide(record: Any) -> Guide:
    """Map one record of the Guangdong portal export to a :class:`Guide`.

    The export has no fee, process or legal-basis fields; those stay ``None`` so answers
    send the citizen to the consultation phone instead of guessing.

    Raises:
        GuideFormatError: when the record has no code or no name (nothing to show).
    """
    if not isinstance(record, dict):
        raise GuideFormatError("record is not a JSON object")
    code = _clean(record.get("TASK_CODE"))
    title = _clean(record.get("TASK_NAME")) or _clean(record.get("matter_name"))
    if not code:
        raise GuideFormatError("no TASK_CODE: the record cannot be identified")
    if not title:
        raise GuideFormatError("no TASK_NAME or matter_name: the record has no item name")
    aliases = []
    for key in ("CATANAME", "parentCatalogName", "subCatalogName", "matter_name", "subTaskName"):
        name = _clean(record.get(key))
        if name and name != title and name not in aliases:
            aliases.append(name)
    materials = tuple(
        Material(name=name) for name in (_clean(m) for m in _as_list(record.get("material_intro"))) if name
    )
    condition_text = _clean(record.get("accept_standard"))
    conditions = tuple(c for c in _CONDITION_SPLIT.split(condition_text) if c) if condition_text else ()
    visits_text = _clean(record.get("visit_number"))
    place = _clean(record.get("handle_location"))
    co_departments = _clean(record.get("co_department"))
    return Guide(
        id=f"gd-{code}",
        title=title,
        aliases=tuple(aliases),
        department=_clean(record.get("DEPT_NAME")),
        item_type=_clean(record.get("TASK_TYPE_TEXT")) or _clean(record.get("matter_type")),
        service_objects=tuple(s for s in (_clean(x) for x in _as_list(record.get("service_object_name"))) if s),
        region=_clean(record.get("AREA_CODE_TEXT")),
        level=_clean(record.get("matter_level")),
        topics=tuple(t for t in (_clean(x) for x in _as_list(record.get("theme_category"))) if t and t != "其他"),
        conditions=conditions,
        materials=materials,
        statutory_days=_days(record.get("handle_time")),
        promised_days=_days(record.get("handle_time_limit")),
        visits=int(visits_text) if visits_text and visits_text.isdigit() else None,
        place=_LOCATION_PREFIX.sub("", place) if place else None,
        online=_clean(record.get("bear_paltform")),
        online_url=_clean(record.get("URL")),
        appointment=_appointment(record),
        courier=_flag(record.get("courier_service")),
        consult_phone=_clean(record.get("consult_phone")),
        complain_phone=_clean(record.get("complain_phone")),
        co_departments=(co_departments,) if co_departments else (),
        source="guangdong-2021",
        source_url=_clean(record.get("URL")),
    )


def _appointment(record: dict[str, Any]) -> str | None:
    if not _flag(record.get("online_book")):
        return None
    address = _clean(record.get("online_book_addr"))
    return f"支持网上预约：{address}" if address else "支持网上预约"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


# --- CSV and XLSX --------------------------------------------------------------------------

_ROW_SPLIT = re.compile(r"\s*(?:\r?\n|[；;|])\s*")
_TRUE = {"是", "true", "yes", "1", "y"}
_FALSE = {"否", "false", "no", "0", "n"}
#: Column names an office's FAQ export may use, and the field each one is.
FAQ_COLUMNS = {
    "question": "question", "问题": "question", "标准问": "question", "标准问题": "question", "问": "question",
    "answer": "answer", "答案": "answer", "回答": "answer", "答复": "answer", "标准答案": "answer", "答": "answer",
    "alternatives": "alternatives", "相似问题": "alternatives", "相似问": "alternatives", "其他问法": "alternatives",
    "id": "id", "编号": "id", "department": "department", "部门": "department", "责任部门": "department",
    "region": "region", "地区": "region", "区域": "region", "keywords": "keywords", "关键词": "keywords",
    "related": "related", "关联事项": "related", "source": "source", "来源": "source",
    "updated": "updated", "更新时间": "updated", "更新日期": "updated", "sample": "sample",
}


def _csv_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, Any]]]]:
    text = _read_text(path)
    reader = csv.DictReader(text.splitlines(keepends=True))
    names = [name.strip() for name in (reader.fieldnames or [])]

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        for row in reader:
            if None in row:
                yield reader.line_num, {"__extra__": row[None]}
                continue
            yield reader.line_num, {(k or "").strip(): v for k, v in row.items()}

    return names, rows()


def _xlsx_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, Any]]]]:
    from openpyxl import load_workbook  # only needed for this format

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged file
        raise ImportFailed(f"{path}: cannot open as an XLSX workbook ({exc})") from None
    rows = book.worksheets[0].iter_rows(values_only=True)
    header = next(rows, None)
    names = [str(h).strip() if h is not None else "" for h in (header or ())]

    def records() -> Iterator[tuple[int, dict[str, Any]]]:
        for number, values in enumerate(rows, 2):
            if values is None or all(v is None or str(v).strip() == "" for v in values):
                continue
            yield number, {name: value for name, value in zip(names, values, strict=False) if name}
        book.close()

    return names, records()


def _sheet(path: Path, fmt: str) -> ImportReport:
    """A CSV or XLSX file: an FAQ sheet when its header has a question and an answer column,
    else one guide per row. A header that is neither says exactly which columns are missing."""
    names, rows = _csv_rows(path) if fmt == "csv" else _xlsx_rows(path)
    faq_fields = {FAQ_COLUMNS[n.lower()] for n in names if n.lower() in FAQ_COLUMNS}
    if {"question", "answer"} & faq_fields and "title" not in names:
        missing = [f for f in ("question", "answer") if f not in faq_fields]
        if missing:
            raise ImportFailed(f"{path}:1: an FAQ sheet needs a {' and an '.join(missing)} column "
                               f"(found: {', '.join(n for n in names if n) or 'none'})")
        return _read_faq_rows(path, rows, fmt)
    missing = [f for f in ("id", "title") if f not in names]
    if missing:
        raise ImportFailed(
            f"{path}:1: the header row lacks the column(s) {', '.join(repr(m) for m in missing)}: a guide sheet "
            f"needs 'id' and 'title' (field names of bot/knowledge/model.py); an FAQ sheet needs "
            f"'question' and 'answer' (or 问题 and 答案). Found: {', '.join(n for n in names if n) or 'none'}")
    return _read_rows(path, rows, fmt)


def _read_rows(path: Path, rows: Iterator[tuple[int, dict[str, Any]]], fmt: str) -> ImportReport:
    report = ImportReport(formats={str(path): fmt})
    for number, row in rows:
        if "__extra__" in row:
            report.skipped.append(Problem(str(path), number, "more cells than header columns"))
            continue
        try:
            record = row_to_record(row)
        except GuideFormatError as exc:
            report.skipped.append(Problem(str(path), number, str(exc)))
            continue
        _add(report, path, number, record, "jsonl")
    return report


def _read_faq_rows(path: Path, rows: Iterator[tuple[int, dict[str, Any]]], fmt: str) -> ImportReport:
    report = ImportReport(formats={str(path): f"{fmt} (FAQ)"})
    for number, row in rows:
        if "__extra__" in row:
            report.skipped.append(Problem(str(path), number, "more cells than header columns"))
            continue
        try:
            record = faq_row_to_record(row, source=path.name)
        except GuideFormatError as exc:
            report.skipped.append(Problem(str(path), number, str(exc)))
            continue
        _add(report, path, number, record, "jsonl")
    return report


def faq_row_to_record(row: dict[str, Any], *, source: str) -> dict[str, Any]:
    """One FAQ sheet row as the JSON form of an entry. The answer cell is kept exactly as written
    (line breaks, punctuation, list markers); only list fields are split into entries."""
    record: dict[str, Any] = {"source": source}
    for name, value in row.items():
        field_name = FAQ_COLUMNS.get(str(name).strip().lower())
        if field_name is None or value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value).strip()
        if not text:
            continue
        if field_name in FAQ_LIST_FIELDS:
            record[field_name] = [part for part in _ROW_SPLIT.split(text) if part]
        elif field_name == "sample":
            if text.lower() not in _TRUE | _FALSE:
                raise GuideFormatError(f"column 'sample' must be 是/否 (or true/false), got {text!r}")
            record[field_name] = text.lower() in _TRUE
        else:
            record[field_name] = text
    if "question" not in record or "answer" not in record:
        raise GuideFormatError(f"the {'question' if 'question' not in record else 'answer'} cell is empty")
    record.setdefault("id", faq_id(record["question"]))
    return record


def faq_id(question: str) -> str:
    """A stable id for an entry that has none: the same question gives the same id on every import."""
    import hashlib

    return "faq-" + hashlib.sha1(" ".join(question.split()).encode("utf-8")).hexdigest()[:12]


def row_to_record(row: dict[str, Any]) -> dict[str, Any]:
    """Turn one spreadsheet row (all cells text or numbers) into the JSON form of a guide."""
    record: dict[str, Any] = {}
    for name, value in row.items():
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value).strip()
        if text == "":
            continue
        if name in LIST_FIELDS:
            record[name] = [part for part in _ROW_SPLIT.split(text) if part]
        elif name in INT_FIELDS:
            if not text.isdigit():
                raise GuideFormatError(f"column '{name}' must be a whole number, got {text!r}")
            record[name] = int(text)
        elif name in BOOL_FIELDS:
            if text.lower() not in _TRUE | _FALSE:
                raise GuideFormatError(f"column '{name}' must be 是/否 (or true/false), got {text!r}")
            record[name] = text.lower() in _TRUE
        elif name == "materials":
            record[name] = _materials_cell(text)
        else:
            record[name] = text
    return record


def _materials_cell(text: str) -> list[Any]:
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GuideFormatError(f"column 'materials' starts with '[' but is not valid JSON ({exc.msg})") from None
        if not isinstance(value, list):
            raise GuideFormatError("column 'materials' must be a JSON array")
        return value
    return [part for part in _ROW_SPLIT.split(text) if part]


def write_jsonl(records: Sequence[Guide | FaqEntry], path: Path) -> None:
    """Write guides and FAQ entries in the project's JSON Lines form (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
    tmp.replace(path)
