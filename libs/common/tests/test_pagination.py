from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from pipedesk_common.errors import InvalidCursor
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
    with pytest.raises(ValueError, match="32 bytes"):
        CursorCodec(b"short")


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
