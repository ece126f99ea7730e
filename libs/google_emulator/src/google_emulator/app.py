"""The emulator's ASGI application: routers, Google-shaped errors, request log, fidelity check."""

from __future__ import annotations

import importlib
import importlib.util
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from google_emulator import admin, drive, drive_changes, gmail, oauth, pubsub, tasks
from google_emulator.core import Emulator, Fault, FidelityViolation, GoogleError, LoggedRequest
from google_emulator.fidelity import check_response

ADMIN_PREFIX = "/_emulator"
_HTTP_REASONS = {404: "notFound", 405: "badRequest", 401: "authError", 403: "forbidden"}


def _state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


class RequestLogMiddleware:
    """Appends a ``LoggedRequest`` for every HTTP request outside ``/_emulator``, as its answer
    starts to go out: a client holding the answer always finds its request in the log."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        state = _state(scope)
        logged = False

        def log(status: int) -> None:
            nonlocal logged
            logged = True
            self.emulator.requests.append(
                LoggedRequest(
                    method=scope["method"],
                    path=scope["path"],
                    query=dict(Request(scope).query_params),
                    api=state.get("api_method") or "",
                    user=state.get("emulator_user") or None,
                    status=status,
                )
            )

        async def log_as_it_starts(message: Message) -> None:
            if message["type"] == "http.response.start" and not logged:
                log(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, log_as_it_starts)
        finally:
            if not logged:  # no answer went out: the request failed inside the emulator
                log(500)


class StoredThenFailedMiddleware:
    """Faults that strike after the store: a successful call's answer is replaced by an error,
    cut off after its headers, or held back, while what the call changed stays changed."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        state = _state(scope)
        fault: Fault | None = None
        held: list[Message] = []

        async def fail(message: Message) -> None:
            nonlocal fault
            if message["type"] == "http.response.start":
                api_method = state.get("api_method")
                if api_method and 200 <= message["status"] < 300:
                    user = state.get("emulator_user")
                    fault = self.emulator.take_fault(api_method, user, after_store=True)
                if fault is not None and fault.drop:
                    await send(message)  # the headers, then the connection ends
                    return
            if fault is None:
                await send(message)
            elif not fault.drop:
                held.append(message)

        await self.app(scope, receive, fail)
        if fault is None or fault.drop:
            return  # a dropped answer never completes: the server closes the connection
        await self.emulator.wait_out(fault)
        if fault.status:
            await fault.error().response()(scope, receive, send)
            return
        for message in held:
            await send(message)


class FidelityMiddleware:
    """Validates JSON 2xx responses of named API methods against their discovery schemas."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        state = _state(scope)
        status = 0
        is_json = False
        chunks: list[bytes] = []

        async def inspect(message: Message) -> None:
            nonlocal status, is_json
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", []))
                is_json = headers.get(b"content-type", b"").startswith(b"application/json")
            elif message["type"] == "http.response.body":
                if is_json:  # media (a download) is never held whole
                    chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self._check(state.get("api_method"), scope["path"], status, is_json, chunks)
            await send(message)

        await self.app(scope, receive, inspect)

    def _check(
        self, api_method: str | None, path: str, status: int, is_json: bool, chunks: list[bytes]
    ) -> None:
        body = b"".join(chunks)
        if not api_method or not 200 <= status < 300 or not is_json or not body:
            return
        try:
            parsed = json.loads(body)
        except ValueError:
            problems = ["the response body is not JSON"]
        else:
            problems = check_response(api_method, parsed)
        self.emulator.fidelity_violations.extend(
            FidelityViolation(api_method=api_method, path=path, message=problem)
            for problem in problems
        )


async def _google_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GoogleError)
    return exc.response()


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    location = ".".join(str(part) for part in first.get("loc", ()) if part not in {"query", "body"})
    if first.get("type") == "missing":
        return GoogleError(400, "required", f"Required parameter: {location}").response()
    return GoogleError(400, "invalid", f"Invalid value for {location}").response()


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    reason = _HTTP_REASONS.get(exc.status_code, "badRequest")
    return GoogleError(exc.status_code, reason, str(exc.detail)).response()


def create_emulator_app(emulator: Emulator | None = None) -> FastAPI:
    """A FastAPI app serving the emulated Google APIs over ``emulator`` (a fresh one by default)."""
    state = emulator or Emulator()
    app = FastAPI(title="Google emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = state
    app.add_exception_handler(GoogleError, _google_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(StoredThenFailedMiddleware, emulator=state)
    app.add_middleware(FidelityMiddleware, emulator=state)
    app.add_middleware(RequestLogMiddleware, emulator=state)
    app.include_router(oauth.router)
    app.include_router(tasks.router)
    app.include_router(drive.router)
    app.include_router(drive.admin_router)
    app.include_router(drive_changes.router)
    app.include_router(drive_changes.admin_router)
    app.include_router(gmail.router)
    app.include_router(gmail.upload_router)
    app.include_router(gmail.admin_router)
    app.include_router(pubsub.router)
    app.include_router(pubsub.admin_router)
    app.include_router(admin.router)
    if importlib.util.find_spec("google_emulator.calendar") is not None:
        calendar = importlib.import_module("google_emulator.calendar")
        app.include_router(calendar.router)
    return app
