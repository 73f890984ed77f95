"""When the window works, and so when a ticket must be answered: the one clock for due times.

* **Office hours**: Monday to Friday 09:00–12:00 and 13:30–17:30 (:data:`OFFICE_HOURS`); on a
  调休 Saturday or Sunday (a weekend day the State Council makes a working day) the same hours.
* **Public holidays** with their 调休 come from the ``chinese-calendar`` package (the State
  Council's yearly notice, 2004 to the last year the installed version knows). A date outside
  those years falls back to Monday to Friday, and a warning is logged once per year: upgrade the
  package when the next year's notice is out.
* **The office's own closures** (``HALL_CLOSURES``: a move, a power cut, a local holiday): dates
  or ranges, or a file of them, read once when the ticket store is opened.

A ticket from the conversation is due within **one working day**: before the end of office
hours on the first working day after the day it was filed (filed on Friday evening or on
Saturday: Monday 17:30; before the Spring Festival: the first day after it). A bad-rating
callback is due **24 hours** after it was filed, in calendar hours, holidays or not.

Times are the hall's local time without tzinfo, as the ticket store keeps them.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import chinese_calendar

from bot.errors import ConfigError

log = logging.getLogger(__name__)

#: The window's sessions on a working day, in order (the hall closes for lunch).
OFFICE_HOURS: tuple[tuple[dt.time, dt.time], ...] = (
    (dt.time(9, 0), dt.time(12, 0)),
    (dt.time(13, 30), dt.time(17, 30)),
)
#: A bad rating is called back within this many calendar hours.
CALLBACK_WITHIN = dt.timedelta(hours=24)
#: Working days within which a ticket from the conversation is answered.
ANSWER_WITHIN_WORKING_DAYS = 1

_DATE = r"\d{4}-\d{1,2}-\d{1,2}"
_ENTRY = re.compile(rf"^({_DATE})(?:\s*(?:\.\.|~|～|至)\s*({_DATE}))?$")
_warned_years: set[int] = set()
_warn_lock = threading.Lock()


def public_working_day(day: dt.date) -> bool:
    """A working day by the State Council's calendar (调休 weekends included, holidays excluded).

    Outside the years the installed ``chinese-calendar`` knows: Monday to Friday, with a warning
    logged once per year."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        with _warn_lock:
            first = day.year not in _warned_years
            _warned_years.add(day.year)
        if first:
            log.warning("no public holiday calendar for %d in chinese-calendar %s: counting Monday to Friday as "
                        "working days; upgrade the package when the year's holidays are published",
                        day.year, getattr(chinese_calendar, "__version__", "?"))
        return day.weekday() < 5


class OfficeCalendar:
    """The window's working days and hours: public holidays, 调休 and the office's own closures."""

    def __init__(self, closures: Iterable[dt.date] = (),
                 hours: tuple[tuple[dt.time, dt.time], ...] = OFFICE_HOURS) -> None:
        if not hours or any(start >= end for start, end in hours):
            raise ValueError("office hours must be (start, end) pairs with start before end")
        self.closures = frozenset(closures)
        self.hours = tuple(sorted(hours))

    def is_working_day(self, day: dt.date) -> bool:
        return day not in self.closures and public_working_day(day)

    def next_working_day(self, day: dt.date) -> dt.date:
        """The first working day after ``day`` (never ``day`` itself)."""
        current = day + dt.timedelta(days=1)
        for _ in range(3660):  # ten years of closures would be a configuration mistake
            if self.is_working_day(current):
                return current
            current += dt.timedelta(days=1)
        raise ConfigError("no working day within ten years: check HALL_CLOSURES")

    def closing_time(self, day: dt.date) -> dt.datetime:
        """When the window closes on ``day`` (the end of its last session)."""
        return dt.datetime.combine(day, self.hours[-1][1])

    def is_open(self, at: dt.datetime) -> bool:
        """Whether the window is staffed at ``at``."""
        return self.is_working_day(at.date()) and any(start <= at.time() < end for start, end in self.hours)

    def working_days_after(self, start: dt.datetime, days: int) -> dt.datetime:
        """The end of office hours on the ``days``-th working day after ``start``'s day."""
        day = start.date()
        for _ in range(max(1, days)):
            day = self.next_working_day(day)
        return self.closing_time(day)

    def due_at(self, created: dt.datetime, source: str) -> dt.datetime:
        """The answer-by time of a ticket filed at ``created``: one working day, or 24 hours for a
        bad-rating callback."""
        if source == "bad_rating":
            return created + CALLBACK_WITHIN
        return self.working_days_after(created, ANSWER_WITHIN_WORKING_DAYS)


def parse_closures(value: str, root: Path | None = None, *, setting: str = "HALL_CLOSURES") -> frozenset[dt.date]:
    """The office's closure days from a setting: nothing (empty), dates and ranges separated by
    commas (``2026-03-02,2026-07-01..2026-07-03``), or the path of a UTF-8 text file with one date
    or range a line (``#`` starts a comment; a relative path is taken from ``root``).

    Raises:
        ConfigError: naming the setting, and the line of the file, that cannot be read.
    """
    text = value.strip()
    if not text:
        return frozenset()
    if re.match(_DATE, text):
        return frozenset(_entries(re.split(r"[,，;；\n]+", text), setting))
    path = Path(text)
    if not path.is_absolute() and root is not None:
        path = root / path
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{setting}={value!r}: cannot read the closures file ({error.__class__.__name__}); "
                          "give dates like 2026-03-02,2026-07-01..2026-07-03 or a readable file") from None
    days: set[dt.date] = set()
    for number, line in enumerate(lines, 1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            days.update(_entries([entry], f"{setting} ({path}, line {number})"))
    return frozenset(days)


def _entries(parts: Iterable[str], where: str) -> set[dt.date]:
    days: set[dt.date] = set()
    for part in (p.strip() for p in parts):
        if not part:
            continue
        match = _ENTRY.match(part)
        try:
            if match is None:
                raise ValueError(part)
            first = _date(match.group(1))
            last = _date(match.group(2)) if match.group(2) else first
        except ValueError:
            raise ConfigError(f"{where}: {part!r} is not a date (2026-03-02) or a range (2026-07-01..2026-07-03)"
                              ) from None
        if last < first or (last - first).days > 366:
            raise ConfigError(f"{where}: {part!r} is not a range of at most a year, first day first")
        days.update(first + dt.timedelta(days=n) for n in range((last - first).days + 1))
    return days


def _date(text: str) -> dt.date:
    year, month, day = (int(n) for n in text.split("-"))
    return dt.date(year, month, day)


def office_calendar(env: Mapping[str, str] | None = None) -> OfficeCalendar:
    """The calendar the settings describe (``HALL_CLOSURES`` from ``env``, default: the process
    environment). The staff server, the reports and the action server all build it this way."""
    from bot.settings import ROOT, raw_setting

    return OfficeCalendar(parse_closures(raw_setting("HALL_CLOSURES", env), ROOT))
