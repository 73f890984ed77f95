"""Property-based fuzzing of what comes from outside: imported guide files, and questions.

Whatever the input, an import either yields guides or reports problems with a file and line —
it never crashes with anything but the project's own errors — and a question gets an answer
kind, never an exception.
"""

import contextlib
import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import BotError
from bot.knowledge.importers import read_file
from bot.knowledge.model import LIST_FIELDS, guide_from_dict

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=40))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=8)
field_names = st.sampled_from(["id", "title", "materials", "fee", "promised_days", "sample", "aliases",
                               "TASK_NAME", "TASK_CODE", "handle_time", "visit_number", *sorted(LIST_FIELDS)])
records = st.dictionaries(field_names, values, max_size=8)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(record=records)
def test_guide_from_dict_accepts_or_explains(record):
    try:
        guide = guide_from_dict(record)
    except BotError as error:
        assert str(error)
    else:
        assert guide.id and guide.title


@FUZZ
@given(lines=st.lists(st.one_of(records.map(lambda r: json.dumps(r, ensure_ascii=False)),
                                st.text(max_size=60)), max_size=6))
def test_jsonl_import_never_crashes(tmp_path, lines):
    path = tmp_path / "fuzz.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        report = read_file(path)
    except BotError:
        return
    for problem in report.skipped:
        assert problem.line >= 1 and problem.reason


@FUZZ
@given(raw=st.binary(max_size=200))
def test_binary_files_are_refused_clearly(tmp_path, raw):
    for suffix in (".jsonl", ".json", ".csv"):
        path = tmp_path / f"fuzz{suffix}"
        path.write_bytes(raw)
        try:
            read_file(path)
        except BotError as error:
            assert str(path) in str(error) or "fuzz" in str(error)


@FUZZ
@given(rows=st.lists(st.lists(st.text(alphabet=string.printable + "身份证；|是否", max_size=15), min_size=1,
                              max_size=4), max_size=5))
def test_csv_import_never_crashes(tmp_path, rows):
    import csv

    path = tmp_path / "fuzz.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "title", "materials", "promised_days"])
        writer.writerows(rows)
    with contextlib.suppress(BotError):
        read_file(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=300), st.text(alphabet="🙏😀👍\u200b\ufeff\x00\n\t ", max_size=50),
                      st.sampled_from(["<script>alert(1)</script>", "身份证" * 3000, "' OR 1=1 --", "\x00\x01"])))
def test_any_question_gets_an_answer_kind(service, text):
    reply = service.answer_question(text)
    assert reply.kind in ("notification", "candidates", "not_found", "empty")
    assert reply.text
