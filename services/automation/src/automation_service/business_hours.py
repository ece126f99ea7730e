"""Business-hours arithmetic: when a span of working time, started at a moment, ends.

A calendar has a time zone, a working window per weekday (its wall-clock start and end, the
next day's when it is before the start: a window over midnight; a weekday without one, or with a
zero-length one, is not worked) and holiday dates (local dates, not worked; a window over
midnight belongs to the day it starts). Working time is real elapsed time inside the windows:
a window of 01:00-04:00 on the night the clocks go forward holds two hours, on the night they go
back four. A wall-clock time that does not exist (in the gap of a change) is moved later by the
gap's length (02:30 on a night that skips 02:00-03:00 is 03:30), and one that happens twice is
its first occurrence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

# A calendar none of whose next ten years' days is worked has no answer.
SEARCH_DAYS: Final = 3660


class NoWorkingTime(ValueError):
    """The calendar has no working time within the years searched."""


def _moment(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC moment of a local wall-clock time (``fold=0``: the first of a repeated time, and
    a skipped time read with the offset before the change, i.e. moved later by the gap)."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class BusinessCalendar:
    time_zone: ZoneInfo
    week: Mapping[int, tuple[time, time]] = field(default_factory=dict)
    """ISO weekday (1 = Monday … 7 = Sunday) → its working window (start, end; an end before the
    start is the next day's); absent: closed"""
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        for weekday in self.week:
            if weekday not in range(1, 8):
                raise ValueError(f"weekday {weekday} is not an ISO weekday (1-7)")

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The working window of a local date as UTC moments, or None when it is not worked."""
        if day in self.holidays:
            return None
        hours = self.week.get(day.isoweekday())
        if hours is None:
            return None
        end_day = day + timedelta(days=1) if hours[1] < hours[0] else day
        start = _moment(day, hours[0], self.time_zone)
        end = _moment(end_day, hours[1], self.time_zone)
        return (start, end) if start < end else None

    def add(self, start: datetime, working: timedelta) -> datetime:
        """The moment ``working`` time of this calendar has passed since ``start``.

        Zero working time from a moment outside working hours ends at the next window's start.
        """
        if start.tzinfo is None:
            raise ValueError("business-hours arithmetic needs a timezone-aware start")
        if working < timedelta(0):
            raise ValueError("working time is never negative")
        cursor = start.astimezone(UTC)
        remaining = working
        day = cursor.astimezone(self.time_zone).date() - timedelta(days=1)
        for _ in range(SEARCH_DAYS):
            window = self.window(day)
            day += timedelta(days=1)
            if window is None or window[1] <= cursor:
                continue
            begin = max(window[0], cursor)
            available = window[1] - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
            cursor = window[1]
        raise NoWorkingTime("the calendar has no working time in the next ten years")


def always(time_zone: str = "UTC") -> BusinessCalendar:
    """Every hour of every day: the calendar of a team without one."""
    whole_day = (time(0, 0), time(23, 59, 59, 999999))
    return _AlwaysOpen(ZoneInfo(time_zone), dict.fromkeys(range(1, 8), whole_day))


class _AlwaysOpen(BusinessCalendar):
    def add(self, start: datetime, working: timedelta) -> datetime:
        if start.tzinfo is None:
            raise ValueError("business-hours arithmetic needs a timezone-aware start")
        if working < timedelta(0):
            raise ValueError("working time is never negative")
        return start.astimezone(UTC) + working
