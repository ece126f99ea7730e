"""A series' next occurrence, as the timeline answers it: from its rule, in its own zone."""

from datetime import UTC, datetime
from typing import Any

import pytest

from timeline_service.service import as_of_minute, next_occurrence

WEEKLY: dict[str, Any] = {
    "rule": ["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4", "EXDATE;TZID=Europe/Paris:20300318T100000"],
    "time_zone": "Europe/Paris",
    "all_day": False,
}
FIRST = datetime(2030, 3, 4, 9, tzinfo=UTC)  # 10:00 in Paris


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (datetime(2026, 12, 6, tzinfo=UTC), datetime(2030, 3, 4, 9, tzinfo=UTC)),
        (datetime(2030, 3, 4, 9, tzinfo=UTC), datetime(2030, 3, 4, 9, tzinfo=UTC)),
        (datetime(2030, 3, 4, 9, 1, tzinfo=UTC), datetime(2030, 3, 11, 9, tzinfo=UTC)),
        # 18 March is excluded; 25 March is past the change to summer time: still 10:00.
        (datetime(2030, 3, 12, tzinfo=UTC), datetime(2030, 3, 25, 9, tzinfo=UTC)),
        (datetime(2030, 4, 1, tzinfo=UTC), datetime(2030, 4, 1, 8, tzinfo=UTC)),
        (datetime(2030, 4, 2, tzinfo=UTC), None),
    ],
)
def test_the_next_occurrence_of_a_weekly_series(as_of: datetime, expected: datetime | None) -> None:
    rule = {**WEEKLY, "rule": ["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=5", WEEKLY["rule"][1]]}
    assert next_occurrence(rule, FIRST, as_of) == expected


def test_an_all_day_series_counts_in_days_and_a_bad_rule_has_none() -> None:
    daily = {"rule": ["RRULE:FREQ=DAILY;COUNT=3"], "time_zone": None, "all_day": True}
    first = datetime(2030, 3, 4, tzinfo=UTC)
    assert next_occurrence(daily, first, datetime(2030, 3, 5, 18, tzinfo=UTC)) == datetime(
        2030, 3, 5, tzinfo=UTC
    )
    assert next_occurrence(daily, first, datetime(2030, 3, 7, tzinfo=UTC)) is None
    broken = {**WEEKLY, "rule": ["RRULE:FREQ=SOMETIMES"]}
    assert next_occurrence(broken, FIRST, FIRST) is None
    assert as_of_minute(datetime(2030, 3, 4, 9, 0, 59, 5, tzinfo=UTC)) == FIRST
