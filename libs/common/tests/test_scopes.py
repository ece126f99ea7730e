"""Which granted scopes cover which, read from Google's bundled discovery documents."""

import pytest

from pipedesk_common.google.scopes import covers, granted_products, missing_scopes, scopes_for

AUTH = "https://www.googleapis.com/auth/"


@pytest.mark.parametrize(
    ("granted", "scope", "covered"),
    [
        (["calendar"], "calendar.events", True),
        (["calendar.readonly"], "calendar.calendarlist.readonly", True),
        (["calendar.readonly"], "calendar.freebusy", True),
        # A read-only scope never covers its read-write form.
        (["calendar.readonly"], "calendar.events", False),
        (["calendar.settings.readonly"], "calendar.settings", False),
        # calendarList and freebusy.query do not accept calendar.events.
        (["calendar.events"], "calendar.calendarlist.readonly", False),
        (["calendar.events"], "calendar.freebusy", False),
        # Scopes narrowing the data cover nothing else, whatever methods accept them.
        (["calendar.events.owned"], "calendar.events", False),
        (["drive.file"], "drive.metadata", False),
        (["gmail.addons.current.action.compose"], "gmail.send", False),
        (["gmail.modify"], "gmail.readonly", True),
        (["gmail.compose"], "gmail.send", True),
        (["tasks"], "tasks.readonly", True),
        (["tasks.readonly"], "tasks", False),
    ],
)
def test_a_scope_covers_those_accepted_only_where_it_is(
    granted: list[str], scope: str, covered: bool
) -> None:
    assert covers([AUTH + name for name in granted], AUTH + scope) is covered


def test_products_count_as_granted_under_broader_scopes() -> None:
    assert granted_products([AUTH + "calendar.events", AUTH + "calendar.readonly"]) == ["calendar"]
    assert granted_products(["https://mail.google.com/", AUTH + "drive"]) == ["drive", "gmail"]
    assert missing_scopes([AUTH + "calendar.events"], scopes_for(["calendar"])) == [
        AUTH + "calendar.calendarlist.readonly",
        AUTH + "calendar.freebusy",
    ]
    assert covers(["openid"], "openid")  # a scope no discovery document lists covers itself
