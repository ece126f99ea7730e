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
