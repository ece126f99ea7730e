"""Our own ids are UUIDv7: time-ordered, so they index well and sort by creation."""

from uuid import UUID

from uuid_utils.compat import uuid7


def new_id() -> UUID:
    return uuid7()
