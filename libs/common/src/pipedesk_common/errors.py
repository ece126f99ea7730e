"""One error hierarchy, rendered as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import compile_path

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:pipedesk:problem:"
# A parameter of a route's path template, such as ``{user_id}`` or ``{user_id:path}``.
PATH_PARAMETER = re.compile(r"\{[^}]*\}")


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending input, e.g. `body.title`")
    message: str
    code: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class AppError(Exception):
    """Base of every error a service answers on purpose."""

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})

    @property
    def type_uri(self) -> str:
        return PROBLEM_TYPE_BASE + self.slug


class BadRequest(AppError):
    status, slug, title = 400, "bad-request", "Bad request"


class MalformedJson(AppError):
    status, slug, title = 400, "malformed-json", "The request body is not valid JSON"


class InvalidInput(AppError):
    status, slug, title = 422, "invalid-input", "The input is not valid"


class InvalidCursor(AppError):
    status, slug, title = 400, "invalid-cursor", "The cursor is not valid for this query"


class Unauthorized(AppError):
    status, slug, title = 401, "unauthorized", "Authentication is required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class Forbidden(AppError):
    status, slug, title = 403, "forbidden", "You may not do this"


class NotFound(AppError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(AppError):
    status, slug, title = 409, "conflict", "Conflict"


def invalid(
    field: str, message: str, code: str = "invalid", *, location: str = "body"
) -> InvalidInput:
    """``422`` naming one input field (``body.<field>``, ``query.<field>``…)."""
    return InvalidInput(
        f"{field}: {message}",
        errors=[FieldError(field=f"{location}.{field}", message=message, code=code)],
    )


def not_found(field: str, what: str, *, location: str = "body") -> NotFound:
    """``404`` for a record an input field names (``no such task list``)."""
    return NotFound(
        f"{field}: no such {what}",
        errors=[
            FieldError(field=f"{location}.{field}", message=f"no such {what}", code="not_found")
        ],
    )


class PreconditionFailed(AppError):
    status, slug, title = 412, "precondition-failed", "The resource has changed"


class PayloadTooLarge(AppError):
    status, slug, title = 413, "payload-too-large", "The request body is too large"


class ServiceUnavailable(AppError):
    status, slug, title = 503, "service-unavailable", "A dependency is unavailable"


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=PROBLEM_TYPE_BASE + slug,
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        errors=list(errors) if errors else None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def _field_path(loc: Sequence[Any]) -> str:
    # A header's name is case-insensitive: named in lower case, as the routes' own checks do.
    if len(loc) == 2 and loc[0] == "header":
        return f"header.{str(loc[1]).lower()}"
    return ".".join(str(part) for part in loc)


def validation_problem(exc: RequestValidationError, instance: str) -> JSONResponse:
    raw = exc.errors()
    if any(err.get("type") == "json_invalid" for err in raw):
        return problem_response(
            MalformedJson.status,
            MalformedJson.slug,
            MalformedJson.title,
            "the body could not be parsed as JSON",
            instance=instance,
        )
    errors = [
        FieldError(field=_field_path(err["loc"]), message=err["msg"], code=err["type"])
        for err in raw
    ]
    fields = ", ".join(sorted({e.field for e in errors}))
    return problem_response(
        InvalidInput.status,
        InvalidInput.slug,
        InvalidInput.title,
        f"invalid fields: {fields}",
        instance=instance,
        errors=errors,
    )


def install_error_handlers(app: FastAPI) -> None:
    async def on_app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return problem_response(
            exc.status,
            exc.slug,
            exc.title,
            exc.detail,
            instance=request.url.path,
            errors=exc.errors,
            headers=exc.headers,
        )

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return validation_problem(exc, request.url.path)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = exc.headers
        if exc.status_code == 405:
            allow = allowed_methods(request)
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": allow})
            headers = {**(headers or {}), "Allow": allow}
        phrase = HTTPStatus(exc.status_code).phrase
        slug = phrase.lower().replace(" ", "-").replace("'", "")
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
        return problem_response(
            exc.status_code,
            slug,
            phrase,
            detail,
            instance=request.url.path,
            headers=headers,
        )

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


def allowed_methods(request: Request) -> str:
    """The ``Allow`` header of the resource a request names: the methods of every route of its
    path (FastAPI makes a route per method, so the router's 405 names only the first route's),
    and OPTIONS, which every resource answers.

    Where several paths match, the resource is the most specific one, the path with the most
    fixed characters: ``/api/users/u1/deactivate`` is ``/api/users/{user_id}/deactivate``'s
    (POST), not ``/api/users/{user_id:path}``'s, whose ids may hold a ``/``."""
    index: list[tuple[re.Pattern[str], int, set[str]]] | None = getattr(
        request.app.state, "allow_index", None
    )
    if index is None:
        index = []
        for context in iter_route_contexts(request.app.routes):
            methods = getattr(context.original_route, "methods", None)
            if context.path is not None and methods:
                fixed = len(PATH_PARAMETER.sub("", context.path))
                index.append((compile_path(context.path)[0], fixed, set(methods)))
        request.app.state.allow_index = index
    path = request.scope["path"]
    matching = [(fixed, methods) for pattern, fixed, methods in index if pattern.match(path)]
    most = max((fixed for fixed, _methods in matching), default=0)
    allowed = {"OPTIONS"}
    for fixed, methods in matching:
        if fixed == most:
            allowed |= methods
    return ", ".join(sorted(allowed))


def problem_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route, so OpenAPI shows the problems it may answer."""
    documented: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        before = documented.get(error.status)
        titles = f"{before['description']}; or: {error.title}" if before else error.title
        documented[error.status] = {
            "model": Problem,
            "description": titles,
            "content": {PROBLEM_JSON: {}},
        }
    return documented
