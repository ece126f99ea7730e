"""Which Google scopes each PipeDesk product needs; the accounts service asks for them at connect
time, and each Google-facing service asks for a token with its product's scopes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

_AUTH = "https://www.googleapis.com/auth/"

PRODUCT_SCOPES: Final[Mapping[str, tuple[str, ...]]] = {
    "calendar": (_AUTH + "calendar.events", _AUTH + "calendar.readonly"),
    "tasks": (_AUTH + "tasks",),
    "drive": (_AUTH + "drive",),
    "gmail": (_AUTH + "gmail.readonly", _AUTH + "gmail.send"),
}

# Asked with every product: the accounts service learns which Google account was connected.
IDENTITY_SCOPES: Final[tuple[str, ...]] = ("openid", "email")


def scopes_for(products: Iterable[str]) -> tuple[str, ...]:
    """The scopes of these products, in a stable order (KeyError for an unknown product)."""
    wanted = {scope for product in products for scope in PRODUCT_SCOPES[product]}
    return tuple(sorted(wanted))


def granted_products(scopes: Iterable[str]) -> list[str]:
    """The products whose every scope is among ``scopes``."""
    held = set(scopes)
    return sorted(name for name, needed in PRODUCT_SCOPES.items() if set(needed) <= held)


def products_needing(scopes: Iterable[str]) -> list[str]:
    """The products any of ``scopes`` belongs to (to tell a user what to connect)."""
    asked = set(scopes)
    return sorted(name for name, needed in PRODUCT_SCOPES.items() if asked & set(needed))
