"""Which Google scopes each PipeDesk product needs; the accounts service asks for them at connect
time, and each Google-facing service asks for a token with its product's scopes.

A connection granted a broader scope than a product asks for (one made when PipeDesk asked for
``calendar.readonly``, or a user who granted ``calendar``) still counts: a scope *covers* another
when, in the API's bundled discovery document, every method accepting the other accepts it too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from typing import Any, Final

from googleapiclient.discovery_cache import get_static_doc

_AUTH = "https://www.googleapis.com/auth/"

PRODUCT_SCOPES: Final[Mapping[str, tuple[str, ...]]] = {
    # calendarList needs a calendarlist scope and freebusy.query a freebusy one: neither accepts
    # calendar.events (calendar v3 discovery, methods.*.scopes).
    "calendar": (
        _AUTH + "calendar.events",
        _AUTH + "calendar.calendarlist.readonly",
        _AUTH + "calendar.freebusy",
    ),
    "tasks": (_AUTH + "tasks",),
    # drive.file would not see the files others add to a record's folder.
    "drive": (_AUTH + "drive",),
    # gmail.metadata forbids search (the q parameter).
    "gmail": (_AUTH + "gmail.readonly", _AUTH + "gmail.send"),
}

# Asked with every product: the accounts service learns which Google account was connected.
IDENTITY_SCOPES: Final[tuple[str, ...]] = ("openid", "email")

# The discovery documents whose methods say which scopes cover which.
_DOCUMENTS: Final = (("calendar", "v3"), ("tasks", "v1"), ("drive", "v3"), ("gmail", "v1"))

# Scopes that narrow the data rather than the methods (the files this app opened, the calendars
# the user owns or this app created, the message an add-on is open on): the methods they are
# accepted on cannot say what they cover, so they cover nothing else.
_DATA_NARROWING: Final = ("drive.file", "drive.appdata", ".owned", ".app.created", "addons.")


def _methods(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from resource.get("methods", {}).values()
    for child in resource.get("resources", {}).values():
        yield from _methods(child)


@cache
def _accepting() -> dict[str, frozenset[str]]:
    """Every scope of the bundled documents → the ids of the methods that accept it."""
    accepting: dict[str, set[str]] = {}
    for name, version in _DOCUMENTS:
        document = json.loads(get_static_doc(name, version))
        for method in _methods(document):
            for scope in method.get("scopes", ()):
                accepting.setdefault(scope, set()).add(method["id"])
    return {scope: frozenset(ids) for scope, ids in accepting.items()}


@cache
def _covered_by(scope: str) -> frozenset[str]:
    """The scopes that cover ``scope`` (itself included)."""
    accepting = _accepting()
    needed = accepting.get(scope)
    if not needed:
        return frozenset({scope})
    return frozenset(
        {scope}
        | {
            broader
            for broader, methods in accepting.items()
            if needed <= methods
            and not any(marker in broader for marker in _DATA_NARROWING)
            # A read-only scope never covers the scope it is the read-only form of.
            and not (broader.endswith(".readonly") and scope + ".readonly" in accepting)
        }
    )


def covers(granted: Iterable[str], scope: str) -> bool:
    """Whether a grant of ``granted`` lets its tokens call every method ``scope`` would."""
    return not _covered_by(scope).isdisjoint(granted)


def missing_scopes(granted: Iterable[str], needed: Iterable[str]) -> list[str]:
    """The scopes of ``needed`` that ``granted`` does not cover, sorted."""
    held = frozenset(granted)
    return sorted(scope for scope in set(needed) if not covers(held, scope))


def scopes_for(products: Iterable[str]) -> tuple[str, ...]:
    """The scopes of these products, in a stable order (KeyError for an unknown product)."""
    wanted = {scope for product in products for scope in PRODUCT_SCOPES[product]}
    return tuple(sorted(wanted))


def granted_products(scopes: Iterable[str]) -> list[str]:
    """The products whose every scope ``scopes`` covers."""
    held = frozenset(scopes)
    return sorted(
        name for name, needed in PRODUCT_SCOPES.items() if not missing_scopes(held, needed)
    )


def products_needing(scopes: Iterable[str]) -> list[str]:
    """The products any of ``scopes`` belongs to (to tell a user what to connect)."""
    asked = set(scopes)
    return sorted(name for name, needed in PRODUCT_SCOPES.items() if asked & set(needed))
