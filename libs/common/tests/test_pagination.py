import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from pipedesk_common.errors import FieldError, InvalidCursor
from pipedesk_common.pagination import CursorCodec

codec = CursorCodec(b"k" * 32)


def test_a_cursor_round_trips_within_its_scope() -> None:
    cursor = codec.encode(["2026-01-01T00:00:00+00:00", "0190-id"], scope="leads:a")
    assert codec.decode(cursor, scope="leads:a") == ["2026-01-01T00:00:00+00:00", "0190-id"]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),
        lambda c: "A" + c[1:] if c[0] != "A" else "B" + c[1:],
        lambda c: c.replace(".", ""),
        lambda c: c + ".x",
        lambda c: "",
        lambda c: "%%%.%%%",
        lambda c: "x" * 2000,
    ],
)
def test_an_altered_cursor_is_refused(mangle: object) -> None:
    cursor = codec.encode([1, "a"], scope="s")
    with pytest.raises(InvalidCursor):
        codec.decode(mangle(cursor), scope="s")  # type: ignore[operator]


def test_a_cursor_of_another_query_or_key_is_refused() -> None:
    cursor = codec.encode([1], scope="leads:status=new")
    with pytest.raises(InvalidCursor):
        codec.decode(cursor, scope="leads:status=won")
    with pytest.raises(InvalidCursor):
        CursorCodec(b"z" * 32).decode(cursor, scope="leads:status=new")


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^the cursor secret needs at least 32 bytes$"):
        CursorCodec(b"short")


def test_cursors_are_stable_across_versions_and_processes() -> None:
    """A client may hold a cursor across a deploy, and a page's ETag names its cursor: the same
    position and query always give the same cursor."""
    assert codec.encode([1, "a"], scope="s") == "WzEsImEiXQ.Gi5Y83JSIb4oM-ALQm58PQ"
    assert codec.decode("WzEsImEiXQ.Gi5Y83JSIb4oM-ALQm58PQ", scope="s") == [1, "a"]


def test_every_cursor_is_url_safe_and_round_trips_whatever_its_length() -> None:
    for number in range(192):  # every length modulo 3, many times over
        position = ["x" * (number % 64), number, "~?/+" * (number % 5)]
        cursor = codec.encode(position, scope="s")
        assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", cursor), cursor
        assert codec.decode(cursor, scope="s") == position


def test_a_keyset_position_round_trips_and_any_value_encodes() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    row_id = UUID("01900000-0000-7000-8000-000000000001")
    cursor = codec.encode_keyset(moment, row_id, scope="timeline:x")
    assert codec.decode_keyset(cursor, scope="timeline:x") == (moment, row_id)
    with pytest.raises(InvalidCursor):
        codec.decode_keyset(cursor, scope="timeline:y")
    # values JSON has no type for are written as text
    assert codec.decode(codec.encode([row_id, moment], scope="s"), scope="s") == [
        str(row_id),
        str(moment),
    ]


@pytest.mark.parametrize("position", [["not a time", "not an id"], [1], ["2026-01-02"], "x"])
def test_a_signed_cursor_that_is_not_a_keyset_position_is_refused(position: object) -> None:
    with pytest.raises(InvalidCursor):
        codec.decode_keyset(codec.encode(position, scope="s"), scope="s")  # type: ignore[arg-type]


def test_a_refused_cursor_is_a_400_naming_the_cursor_parameter() -> None:
    with pytest.raises(InvalidCursor) as refused:
        codec.decode("nonsense", scope="s")
    assert refused.value.status == 400
    assert refused.value.detail == "cursor was not issued for this query or has been altered"
    assert refused.value.errors == [
        FieldError(field="query.cursor", message="invalid cursor", code="invalid_cursor")
    ]


@dataclass(frozen=True)
class Row:
    id: UUID
    at: datetime


def test_a_keyset_page_continues_after_its_last_item_only_when_more_follow() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [Row(uuid4(), start + timedelta(minutes=n)) for n in range(3)]
    page = codec.keyset_page(rows, 2, moment=lambda row: row.at, scope="s")
    assert page.items == rows[:2]
    assert page.next_cursor is not None
    assert codec.decode_keyset(page.next_cursor, scope="s") == (rows[1].at, rows[1].id)
    last = codec.keyset_page(rows[2:], 2, moment=lambda row: row.at, scope="s")
    assert (last.items, last.next_cursor) == (rows[2:], None)
    assert codec.keyset_page([], 2, moment=lambda row: row.at, scope="s").items == []


def test_a_listed_page_walks_a_whole_list_in_key_order_once() -> None:
    names = ["delta", "alpha", "charlie", "bravo", "echo"]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = codec.listed_page(names, 2, cursor, key=lambda name: [name], scope="names")
        seen += page.items
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(names)
    assert pages == 3
    whole = codec.listed_page(names, 5, None, key=lambda name: [name], scope="names")
    assert whole.next_cursor is None


def test_a_listed_page_refuses_a_cursor_of_another_list_or_shape() -> None:
    page = codec.listed_page(["a", "b"], 1, None, key=lambda name: [name], scope="names")
    assert page.next_cursor is not None
    with pytest.raises(InvalidCursor):
        codec.listed_page(["a", "b"], 1, page.next_cursor, key=lambda n: [n], scope="others")
    numeric = codec.encode([1], scope="names")
    with pytest.raises(InvalidCursor):
        codec.listed_page(["a", "b"], 1, numeric, key=lambda name: [name], scope="names")
