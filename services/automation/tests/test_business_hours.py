from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from automation_service.business_hours import BusinessCalendar, NoWorkingTime, always

NEW_YORK = ZoneInfo("America/New_York")
NINE_TO_FIVE = (time(9), time(17))
WEEKDAYS = dict.fromkeys(range(1, 6), NINE_TO_FIVE)


def local(*parts: int, zone: ZoneInfo = NEW_YORK) -> datetime:
    return datetime(*parts, tzinfo=zone)  # type: ignore[misc]


def office(**changes: object) -> BusinessCalendar:
    values: dict[str, object] = {"time_zone": NEW_YORK, "week": WEEKDAYS}
    values.update(changes)
    return BusinessCalendar(**values)  # type: ignore[arg-type]


def test_inside_a_window_the_time_is_simply_added() -> None:
    # Tuesday 10:00 + 4 h = Tuesday 14:00.
    assert office().add(local(2026, 3, 3, 10), timedelta(hours=4)) == local(2026, 3, 3, 14)


def test_what_a_day_cannot_hold_moves_to_the_next_working_morning() -> None:
    # Tuesday 15:00 + 4 h: 2 h on Tuesday, 2 h on Wednesday from 09:00.
    assert office().add(local(2026, 3, 3, 15), timedelta(hours=4)) == local(2026, 3, 4, 11)


def test_a_window_crossing_the_weekend_skips_saturday_and_sunday() -> None:
    # Friday 16:00 + 3 h: 1 h on Friday, 2 h on Monday.
    assert office().add(local(2026, 3, 6, 16), timedelta(hours=3)) == local(2026, 3, 9, 11)


def test_a_start_before_hours_or_on_a_weekend_waits_for_the_window() -> None:
    assert office().add(local(2026, 3, 3, 6), timedelta(hours=1)) == local(2026, 3, 3, 10)
    assert office().add(local(2026, 3, 7, 12), timedelta(hours=1)) == local(2026, 3, 9, 10)
    assert office().add(local(2026, 3, 3, 18), timedelta(hours=1)) == local(2026, 3, 4, 10)


def test_a_holiday_is_skipped_like_a_weekend() -> None:
    calendar = office(holidays=frozenset({date(2026, 3, 4)}))
    assert calendar.add(local(2026, 3, 3, 15), timedelta(hours=4)) == local(2026, 3, 5, 11)


def test_a_span_ending_exactly_at_closing_ends_there() -> None:
    assert office().add(local(2026, 3, 3, 9), timedelta(hours=8)) == local(2026, 3, 3, 17)


def test_zero_working_time_outside_hours_is_the_next_opening() -> None:
    assert office().add(local(2026, 3, 3, 12), timedelta(0)) == local(2026, 3, 3, 12)
    assert office().add(local(2026, 3, 3, 20), timedelta(0)) == local(2026, 3, 4, 9)


def test_a_zero_length_day_is_not_worked() -> None:
    week = {**WEEKDAYS, 3: (time(9), time(9))}
    # Tuesday 16:00 + 2 h: 1 h Tuesday, Wednesday is empty, 1 h Thursday.
    got = office(week=week).add(local(2026, 3, 3, 16), timedelta(hours=2))
    assert got == local(2026, 3, 5, 10)


def test_spring_forward_a_night_window_holds_one_hour_less() -> None:
    # 8 March 2026: New York skips 02:00-03:00. A 01:00-05:00 window holds 3 real hours.
    night = office(week={7: (time(1), time(5)), 1: (time(1), time(5))})
    assert night.add(local(2026, 3, 8, 1), timedelta(hours=3)) == local(2026, 3, 8, 5)
    assert night.add(local(2026, 3, 8, 1), timedelta(hours=4)) == local(2026, 3, 9, 2)


def test_fall_back_a_night_window_holds_one_hour_more() -> None:
    # 1 November 2026: New York repeats 01:00-02:00. A 00:00-04:00 window holds 5 real hours.
    night = office(week={7: (time(0), time(4)), 1: (time(0), time(4))})
    start = local(2026, 11, 1, 0)
    assert night.add(start, timedelta(hours=5)) == local(2026, 11, 1, 4)
    assert night.add(start, timedelta(hours=6)) == local(2026, 11, 2, 1)


def test_a_window_starting_in_the_skipped_hour_starts_after_the_gap() -> None:
    night = office(week={7: (time(2, 30), time(6))})
    got = night.add(local(2026, 3, 8, 0), timedelta(minutes=30))
    assert got == datetime(2026, 3, 8, 8, 0, tzinfo=UTC)  # 04:00 EDT: opened at 03:30


def test_a_business_day_across_the_clock_change_stays_eight_hours_of_wall_clock() -> None:
    # Friday 6 March 13:00 EST + 8 h: 4 h Friday, 4 h Monday 9 March (EDT) → 13:00 EDT.
    got = office().add(local(2026, 3, 6, 13), timedelta(hours=8))
    assert got == local(2026, 3, 9, 13)
    assert got.utcoffset() == timedelta(0)  # answers are UTC
    assert got == datetime(2026, 3, 9, 17, tzinfo=UTC)


def test_a_start_in_another_zone_is_read_as_the_same_moment() -> None:
    start = datetime(2026, 3, 3, 15, tzinfo=UTC)  # 10:00 in New York
    assert office().add(start, timedelta(hours=1)) == local(2026, 3, 3, 11)


def test_every_answer_lies_in_working_time() -> None:
    calendar = office(holidays=frozenset({date(2026, 3, 10)}))
    start = local(2026, 3, 2, 7)
    for minutes in range(0, 60 * 40, 37):
        got = calendar.add(start, timedelta(minutes=minutes)).astimezone(NEW_YORK)
        assert got.isoweekday() <= 5
        assert got.date() != date(2026, 3, 10)
        assert time(9) <= got.time() <= time(17)


def test_a_calendar_without_working_time_refuses() -> None:
    with pytest.raises(NoWorkingTime):
        office(week={}).add(local(2026, 3, 3, 9), timedelta(hours=1))


def test_a_window_ending_before_it_starts_runs_over_midnight() -> None:
    nights = office(week={1: (time(22), time(6)), 2: (time(22), time(6))})
    # Monday 23:00 + 8 h: 7 h to Tuesday 06:00, then 1 h from Tuesday 22:00.
    assert nights.add(local(2026, 3, 2, 23), timedelta(hours=8)) == local(2026, 3, 3, 23)
    # Tuesday 03:00 is inside Monday's night, Wednesday 05:00 inside Tuesday's; Wednesday's
    # own night is not worked.
    assert nights.add(local(2026, 3, 3, 3), timedelta(hours=4)) == local(2026, 3, 3, 23)
    assert nights.add(local(2026, 3, 4, 5), timedelta(hours=1)) == local(2026, 3, 4, 6)
    assert nights.add(local(2026, 3, 4, 7), timedelta(hours=1)) == local(2026, 3, 9, 23)


def test_unknown_weekdays_are_refused() -> None:
    with pytest.raises(ValueError, match="ISO weekday"):
        office(week={8: NINE_TO_FIVE})


def test_naive_starts_and_negative_spans_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        office().add(datetime(2026, 3, 3, 9), timedelta(hours=1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="negative"):
        office().add(local(2026, 3, 3, 9), timedelta(hours=-1))


def test_without_a_calendar_every_hour_counts() -> None:
    start = local(2026, 3, 7, 23)  # Saturday night, before the clocks go forward
    assert always().add(start, timedelta(hours=5)) == datetime(2026, 3, 8, 9, tzinfo=UTC)
