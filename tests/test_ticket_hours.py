"""Due times in working hours: office hours, the State Council's holidays with 调休 (from the
chinese-calendar package), the office's own closures, and the 24-hour callback in calendar hours."""

import datetime as dt
import logging

import pytest

from bot.errors import ConfigError
from bot.tickets import hours
from bot.tickets.hours import OFFICE_HOURS, OfficeCalendar, office_calendar, parse_closures, public_working_day
from bot.tickets.model import NewTicket
from bot.tickets.store import TicketStore

CALENDAR = OfficeCalendar()


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_the_office_hours_are_the_window_s_two_sessions():
    morning, afternoon = OFFICE_HOURS
    assert morning == (dt.time(9, 0), dt.time(12, 0)) and afternoon == (dt.time(13, 30), dt.time(17, 30))
    assert CALENDAR.is_open(at("2026-11-27 09:00")) and CALENDAR.is_open(at("2026-11-27 17:29"))
    assert not CALENDAR.is_open(at("2026-11-27 12:30"))  # lunch
    assert not CALENDAR.is_open(at("2026-11-27 17:30")) and not CALENDAR.is_open(at("2026-11-28 10:00"))


@pytest.mark.parametrize(("created", "due"), [
    ("2026-11-23 10:00", "2026-11-24 17:30"),  # Monday: before Tuesday closes
    ("2026-11-23 08:10", "2026-11-24 17:30"),  # before opening: still the next working day
    ("2026-11-27 16:00", "2026-11-30 17:30"),  # Friday afternoon
    ("2026-11-27 19:45", "2026-11-30 17:30"),  # Friday evening: Monday
    ("2026-11-28 11:00", "2026-11-30 17:30"),  # Saturday
    ("2026-11-29 23:59", "2026-11-30 17:30"),  # Sunday night
], ids=["monday", "before-opening", "friday-afternoon", "friday-evening", "saturday", "sunday-night"])
def test_one_working_day_is_the_end_of_the_next_working_day(created, due):
    assert CALENDAR.due_at(at(created), "conversation") == at(due)


@pytest.mark.parametrize(("created", "due"), [
    ("2026-02-12 15:00", "2026-02-13 17:30"),  # Thursday before the holiday
    ("2026-02-13 19:00", "2026-02-14 17:30"),  # Friday evening: Saturday the 14th is a 调休 working day
    ("2026-02-14 10:00", "2026-02-24 17:30"),  # filed on that Saturday: the holiday runs 15th to 23rd
    ("2026-02-17 09:30", "2026-02-24 17:30"),  # 初一 during the holiday
    ("2026-02-27 18:00", "2026-02-28 17:30"),  # Friday evening: Saturday the 28th is a 调休 working day
    ("2026-02-28 12:00", "2026-03-02 17:30"),  # from that Saturday: Sunday is a day off, Monday
], ids=["before", "friday-before-tiaoxiu", "on-tiaoxiu-saturday", "during", "friday-after", "after-tiaoxiu"])
def test_the_2026_spring_festival_and_its_tiaoxiu_saturdays(created, due):
    assert CALENDAR.due_at(at(created), "conversation") == at(due)


def test_a_tiaoxiu_saturday_is_a_working_day_with_office_hours():
    saturday = dt.date(2026, 2, 14)
    assert saturday.weekday() == 5 and CALENDAR.is_working_day(saturday) and public_working_day(saturday)
    assert CALENDAR.is_open(at("2026-02-14 10:00")) and not CALENDAR.is_open(at("2026-02-16 10:00"))
    assert not CALENDAR.is_working_day(dt.date(2026, 2, 16))  # a Monday inside the holiday
    assert CALENDAR.next_working_day(dt.date(2026, 2, 14)) == dt.date(2026, 2, 24)


def test_national_day_week_and_its_tiaoxiu():
    assert CALENDAR.due_at(at("2026-09-30 11:00"), "conversation") == at("2026-10-08 17:30")
    assert CALENDAR.is_working_day(dt.date(2026, 10, 10))  # Saturday after the holiday: 调休


def test_the_callback_stays_24_calendar_hours_over_weekends_and_holidays():
    for created in ("2026-11-27 19:45", "2026-02-14 10:00", "2026-02-17 09:30"):
        assert CALENDAR.due_at(at(created), "bad_rating") == at(created) + dt.timedelta(hours=24)


def test_the_office_s_own_closures_are_skipped():
    closed = OfficeCalendar(closures=[dt.date(2026, 11, 30), dt.date(2026, 12, 1)])
    assert closed.due_at(at("2026-11-27 19:45"), "conversation") == at("2026-12-02 17:30")
    assert not closed.is_open(at("2026-11-30 10:00"))
    assert closed.due_at(at("2026-11-27 19:45"), "bad_rating") == at("2026-11-28 19:45")


def test_years_the_package_does_not_know_fall_back_to_monday_to_friday_with_a_warning(caplog, monkeypatch):
    monkeypatch.setattr(hours, "_warned_years", set())
    with caplog.at_level(logging.WARNING, logger="bot.tickets.hours"):
        assert CALENDAR.due_at(at("2099-01-02 18:00"), "conversation") == at("2099-01-05 17:30")  # Fri -> Mon
        assert CALENDAR.is_working_day(dt.date(2099, 1, 1))  # New Year unknown: a plain Thursday
        assert not CALENDAR.is_working_day(dt.date(2099, 1, 3))
    warnings = [r for r in caplog.records if "2099" in r.getMessage()]
    assert len(warnings) == 1 and "Monday to Friday" in warnings[0].getMessage()  # once per year, not per call


@pytest.mark.parametrize(("value", "days"), [
    ("", set()),
    ("2026-03-02", {dt.date(2026, 3, 2)}),
    ("2026-03-02, 2026-07-01..2026-07-03", {dt.date(2026, 3, 2), dt.date(2026, 7, 1), dt.date(2026, 7, 2),
                                            dt.date(2026, 7, 3)}),
    ("2026-12-31~2027-01-01；2026-5-6", {dt.date(2026, 12, 31), dt.date(2027, 1, 1), dt.date(2026, 5, 6)}),
])
def test_closures_given_in_the_setting(value, days):
    assert parse_closures(value) == days


def test_closures_from_a_file_with_comments(tmp_path):
    path = tmp_path / "closures.txt"
    path.write_text("# 大厅搬迁\n2026-03-02..2026-03-03\n\n2026-07-01  # 停电检修\n", encoding="utf-8")
    assert parse_closures(str(path)) == {dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 7, 1)}
    assert parse_closures("closures.txt", root=tmp_path) == parse_closures(str(path))
    calendar = office_calendar({"HALL_CLOSURES": str(path)})
    assert calendar.closures == parse_closures(str(path))
    assert office_calendar({}).closures == frozenset()


@pytest.mark.parametrize("value", ["2026-02-30", "2026-03-05..2026-03-01", "2026-03-02,tomorrow",
                                   "no/such/closures.txt"])
def test_unusable_closures_name_the_setting(value, tmp_path):
    with pytest.raises(ConfigError, match="HALL_CLOSURES"):
        parse_closures(value, root=tmp_path)


def test_a_bad_line_in_the_closures_file_is_named(tmp_path):
    path = tmp_path / "closures.txt"
    path.write_text("2026-03-02\n3月5日\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2"):
        parse_closures(str(path))


def test_the_store_files_tickets_by_its_calendar(tmp_path):
    now = at("2026-02-13 19:00")
    store = TicketStore(f"sqlite:///{tmp_path / 't.db'}", clock=lambda: now,
                        calendar=OfficeCalendar(closures=[dt.date(2026, 2, 14)]))  # the office stays shut
    store.migrate()
    ticket, _ = store.create(NewTicket("failed", "网上提交了三次都失败", "王", None, "c1"), "k")
    assert ticket.due_at == at("2026-02-24 17:30")
    callback, _ = store.create(NewTicket("other", "差评", "评价人", None, "c2", source="bad_rating", rating=1), "k2")
    assert callback.due_at == now + dt.timedelta(hours=24)
    store.engine.dispose()
