"""``SyncKey``: what one sync run covers, and its form as a coalescer key.

A key names a product, a user (org and user id) and optionally one resource of theirs (a
calendar): ``calendar:<org>:<user>:<calendar id>``, ``tasks:<org>:<user>``. Each part is
percent-encoded, so ids may hold any character; a user's keys all sit below their account's key
(``<product>:<org>:<user>``), so everything requested for a user can be dropped at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote


def _part(value: str) -> str:
    return quote(value, safe="")


@dataclass(frozen=True)
class SyncKey:
    product: str
    org_id: str
    user_id: str
    resource: str | None = None

    def __str__(self) -> str:
        parts = [self.product, self.org_id, self.user_id]
        if self.resource is not None:
            parts.append(self.resource)
        return ":".join(_part(part) for part in parts)

    @classmethod
    def parse(cls, text: str) -> SyncKey:
        """The key ``str(key)`` wrote (``ValueError`` for anything else)."""
        parts = [unquote(part) for part in text.split(":")]
        if len(parts) not in (3, 4) or not all(parts):
            raise ValueError(f"not a sync key: {text!r}")
        return cls(*parts)

    @property
    def user(self) -> tuple[str, str]:
        return self.org_id, self.user_id

    @property
    def account(self) -> SyncKey:
        """The key of the user's whole account in this product (the root of their keys)."""
        return SyncKey(self.product, self.org_id, self.user_id)
