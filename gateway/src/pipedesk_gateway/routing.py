"""Which service answers which path, and which paths carry no bearer token.

The routes that cannot carry a bearer token are listed here and nowhere else: each is verified
by the service behind it (a Google channel token, a single-use OAuth state, a stream ticket).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

ROUTES: Final[tuple[tuple[str, str], ...]] = (
    ("/api/leads", "crm"),
    ("/api/deals", "crm"),
    ("/api/contacts", "crm"),
    ("/api/companies", "crm"),
    ("/api/users", "crm"),
    ("/api/teams", "crm"),
    ("/api/audit", "crm"),
    ("/api/calendar", "calendar"),
    ("/api/drive", "drive"),
    ("/api/gmail", "gmail"),
    ("/api/tasks", "tasks"),
    ("/api/timeline", "timeline"),
    ("/api/automation", "automation"),
    ("/api/accounts", "accounts"),
    ("/webhooks/google/calendar", "calendar"),
    ("/webhooks/google/drive", "drive"),
    ("/webhooks/google/gmail", "gmail"),
)

# Anchored patterns of the paths that carry no bearer token.
PUBLIC_PATHS: Final[tuple[re.Pattern[str], ...]] = (
    re.compile(r"^/webhooks/google/(calendar|drive|gmail)$"),  # verified by the service
    re.compile(r"^/api/accounts/google/callback$"),  # single-use server-side OAuth state
    re.compile(r"^/api/[a-z]+(/[^/]+)*/stream$"),  # SSE, with a single-use 60 s ticket
)

STREAM_PATH: Final = re.compile(r"/stream$")


class RouteClass(StrEnum):
    DEFAULT = "default"
    SENSITIVE = "sensitive"
    PUBLIC = "public"


_SENSITIVE: Final[tuple[tuple[str | None, re.Pattern[str]], ...]] = (
    ("DELETE", re.compile(r"^/api/")),
    (None, re.compile(r"/change-owner$")),
    (None, re.compile(r"/(permissions|members)(/[^/]+)?$")),
    ("POST", re.compile(r"^/api/gmail/.*(send|reply|forward)$")),
    (None, re.compile(r"^/api/audit/export")),
)


@dataclass(frozen=True)
class Target:
    service: str
    public: bool
    route_class: RouteClass
    streaming: bool
    label: str  # the route prefix, for metrics: bounded, unlike the paths themselves


def _matches_prefix(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def target_of(method: str, path: str) -> Target | None:
    """The service for a request, or None when no service serves that path."""
    if ".." in path or "//" in path:
        return None
    for prefix, service in ROUTES:
        if _matches_prefix(path, prefix):
            public = any(pattern.match(path) for pattern in PUBLIC_PATHS)
            if public:
                route_class = RouteClass.PUBLIC
            elif any(
                (wanted is None or wanted == method) and pattern.search(path)
                for wanted, pattern in _SENSITIVE
            ):
                route_class = RouteClass.SENSITIVE
            else:
                route_class = RouteClass.DEFAULT
            label = prefix if path == prefix else f"{prefix}/{{rest}}"
            return Target(service, public, route_class, bool(STREAM_PATH.search(path)), label)
    return None


def is_public(path: str) -> bool:
    return any(pattern.match(path) for pattern in PUBLIC_PATHS)
