"""Which service answers which path, and which paths carry no bearer token.

The routes that cannot carry a bearer token are listed here and nowhere else: each is verified
by the service behind it (a Google channel token, a single-use OAuth state, a stream ticket).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import unquote

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


@dataclass(frozen=True)
class PublicRoute:
    """A route that carries no bearer token: exactly this method and this anchored path."""

    method: str
    pattern: re.Pattern[str]
    template: str  # the route as the service's OpenAPI names it
    streaming: bool = False  # an event stream: forwarded through the streams' own pool


# The routes that carry no bearer token, matched by method and whole path.
PUBLIC_ROUTES: Final[tuple[PublicRoute, ...]] = (
    # verified by the service (a channel token, the Pub/Sub push's signed token)
    *(
        PublicRoute(
            "POST", re.compile(f"^/webhooks/google/{product}$"), f"/webhooks/google/{product}"
        )
        for product in ("calendar", "drive", "gmail")
    ),
    # a single-use server-side OAuth state
    PublicRoute(
        "GET",
        re.compile(r"^/api/accounts/google/callback$"),
        "/api/accounts/google/callback",
    ),
    # SSE, with a single-use 60 s ticket
    PublicRoute(
        "GET",
        re.compile(r"^/api/timeline/(lead|deal)/[^/]+/stream$"),
        "/api/timeline/{record_type}/{record_id}/stream",
        streaming=True,
    ),
)


def public_route(method: str, path: str) -> PublicRoute | None:
    """The public route a request is for, or None when it must carry a token."""
    return next(
        (
            route
            for route in PUBLIC_ROUTES
            if route.method == method.upper() and route.pattern.match(path)
        ),
        None,
    )


def is_public(method: str, path: str) -> bool:
    return public_route(method, path) is not None


def is_public_operation(method: str, template: str) -> bool:
    """Whether an OpenAPI operation (its path template) is one of the public routes."""
    return any(
        route.method == method.upper() and route.template == template for route in PUBLIC_ROUTES
    )


class RouteClass(StrEnum):
    DEFAULT = "default"
    SENSITIVE = "sensitive"
    PUBLIC = "public"


_SENSITIVE: Final[tuple[tuple[str | None, re.Pattern[str]], ...]] = (
    ("DELETE", re.compile(r"^/api/")),
    (None, re.compile(r"/change-owner$")),
    ("POST", re.compile(r"^/api/users/.+/(deactivate|reactivate)$")),
    (None, re.compile(r"/(permissions|members)(/[^/]+)?$")),
    ("POST", re.compile(r"^/api/gmail/.*(send|reply|forward)$")),
    ("POST", re.compile(r"^/api/gmail/messages$")),
    (None, re.compile(r"^/api/audit/export")),
)


@dataclass(frozen=True)
class Target:
    service: str
    public: bool
    route_class: RouteClass
    streaming: bool
    label: str  # the route prefix, for metrics: bounded, unlike the paths themselves


# Each route's prefix, and the same with its "/": a path is the prefix or starts with that.
_PREFIXES: Final = tuple((prefix, prefix + "/", service) for prefix, service in ROUTES)


def _one_pattern(method: str) -> re.Pattern[str]:
    """The sensitive patterns that apply to ``method``, as one."""
    patterns = [p.pattern for wanted, p in _SENSITIVE if wanted is None or wanted == method]
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns))


_SENSITIVE_BY_METHOD: Final = {
    method: _one_pattern(method)
    for method in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
}


def _sensitive(method: str, path: str) -> bool:
    pattern = _SENSITIVE_BY_METHOD.get(method)
    if pattern is None:
        return any(
            (wanted is None or wanted == method) and p.search(path) for wanted, p in _SENSITIVE
        )
    return pattern.search(path) is not None


def traverses(raw_path: str) -> bool:
    """Whether a path as sent (percent-encoded) has a ``.`` or ``..`` segment or an empty one
    before its end. An id's own ``/`` (``%2F``) or dots inside a segment (``a..b``) are no
    such thing: opaque ids may hold them."""
    if "//" not in raw_path and "." not in raw_path and "%" not in raw_path:
        return False  # no empty segment, and none that is or encodes a dot
    segments = raw_path.split("/")[1:]
    return any(unquote(segment) in {".", ".."} for segment in segments) or "" in segments[:-1]


def target_of(method: str, path: str, raw_path: str | None = None) -> Target | None:
    """The service for a request, or None when no service serves that path. ``raw_path`` is
    the path as sent, when known: what it holds percent-encoded is not a path separator."""
    if traverses(path if raw_path is None else raw_path):
        return None
    for prefix, under, service in _PREFIXES:
        if path == prefix or path.startswith(under):
            public = public_route(method, path)
            if public is not None:
                route_class = RouteClass.PUBLIC
            elif _sensitive(method, path):
                route_class = RouteClass.SENSITIVE
            else:
                route_class = RouteClass.DEFAULT
            label = prefix if path == prefix else f"{prefix}/{{rest}}"
            streaming = public is not None and public.streaming
            return Target(service, public is not None, route_class, streaming, label)
    return None
