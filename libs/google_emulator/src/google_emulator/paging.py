"""Paged listings on a stable snapshot, as Google's page tokens continue a consistent listing.

The first page of a listing takes a snapshot of everything it will answer (the items as rendered
then, and what the listing's last page must say, such as the next sync token) and keeps it
server-side; its page tokens name that snapshot and the offset reached. A change made between
pages therefore never shifts an item out of the listing (it shows in the next sync instead), and
a page token is accepted only with the same query parameters as the first page: Google calls
anything else undefined behaviour, and the emulator refuses it.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from google_emulator.core import Emulator, GoogleError

# How many listings are kept for their page tokens; the oldest is forgotten first, and its
# tokens then answer 400, as an expired page token at Google does.
MAX_LISTINGS = 1000
# Google's system parameters, which do not change what a listing holds.
SYSTEM_PARAMETERS = frozenset(
    {"pageToken", "alt", "fields", "prettyPrint", "quotaUser", "userIp", "key", "$.xgafv"}
)


@dataclass
class Listing:
    scope: str
    parameters: tuple[tuple[str, str], ...]
    items: Sequence[Any]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Page:
    items: Sequence[Any]
    next_page_token: str | None
    extra: dict[str, Any]


def listings_of(emulator: Emulator) -> OrderedDict[str, Listing]:
    listings = emulator.apis.get("listings")
    if not isinstance(listings, OrderedDict):
        listings = OrderedDict()
        emulator.apis["listings"] = listings
    return listings


def listing_parameters(request: Request) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted((k, v) for k, v in request.query_params.multi_items() if k not in SYSTEM_PARAMETERS)
    )


def invalid_page_token(message: str = "Invalid value for: pageToken") -> GoogleError:
    return GoogleError(400, "invalid", message)


def paged(
    emulator: Emulator,
    request: Request,
    scope: str,
    size: int,
    snapshot: Callable[[], tuple[Sequence[Any], dict[str, Any]]],
) -> Page:
    """One page of the listing ``request`` asks for. Without ``pageToken``, ``snapshot()`` gives
    the listing's items and its ``extra``; with one, the listing it names goes on. ``scope``
    (the calendar, the task list) must be the one the token was issued for."""
    listings = listings_of(emulator)
    parameters = listing_parameters(request)
    token = request.query_params.get("pageToken")
    if token is None:
        items, extra = snapshot()
        listing_id, offset = secrets.token_urlsafe(12), 0
        listings[listing_id] = Listing(scope, parameters, list(items), extra)
        while len(listings) > MAX_LISTINGS:
            listings.popitem(last=False)
    else:
        listing_id, offset = decode_page_token(token)
        found = listings.get(listing_id)
        if found is None or found.scope != scope or offset > len(found.items):
            raise invalid_page_token()
        if found.parameters != parameters:
            raise invalid_page_token(
                "Invalid value for: pageToken (it continues a listing with other parameters; "
                "send the first page's parameters with it)."
            )
    listing = listings[listing_id]
    end = offset + size
    following = encode_page_token(listing_id, end) if end < len(listing.items) else None
    return Page(listing.items[offset:end], following, listing.extra)


def encode_page_token(listing_id: str, offset: int) -> str:
    raw = json.dumps({"l": listing_id, "o": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_page_token(token: str) -> tuple[str, int]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise invalid_page_token() from None
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("l"), str)
        or not isinstance(payload.get("o"), int)
        or payload["o"] < 0
    ):
        raise invalid_page_token()
    return payload["l"], payload["o"]
