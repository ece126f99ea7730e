"""The console at ``/app``: a browser client of the API for frontend developers, and the reference
for how a frontend uses it (tokens, the timeline's ETag and live stream, connecting Google).

Its pages and scripts are public static files; everything it shows comes from the API, which
requires a token as for any client. In development it signs in through the development identity
provider (its demo users); production refuses the console (``GatewaySettings.console``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import httpx
from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from pipedesk_common.errors import problem_response
from pipedesk_gateway.assets import StaticAssets
from pipedesk_gateway.routing import RouteClass

if TYPE_CHECKING:
    from pipedesk_gateway.app import Gateway

CONSOLE_DIRECTORY: Final = Path(__file__).parent / "static" / "console"

# Only the gateway's own files run, and the page talks to the gateway alone: no inline script,
# no inline style, no other origin. (Navigating to Google's consent page is a top-level
# navigation, which a CSP does not restrict.)
CONSOLE_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SIGN_IN_PATHS: Final = {"users": "/dev/users", "token": "/dev/token"}


class SignIn(BaseModel):
    user: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9._-]+$")


def console_router(gateway: Gateway) -> APIRouter:
    """The console's routes; it signs in through the development identity provider."""
    identity_url = gateway.settings.url_of("identity")
    assets = StaticAssets(CONSOLE_DIRECTORY, csp=CONSOLE_CSP)
    router = APIRouter(prefix="/app", include_in_schema=False)

    @router.get("")
    async def console_root() -> RedirectResponse:
        return RedirectResponse("/app/", status_code=308)

    @router.get("/")
    async def console_page(request: Request) -> Response:
        return assets.response("index.html", request)

    @router.get("/session/users")
    async def demo_users(request: Request) -> Response:
        """The users one may sign in as: the development identity provider's demo org."""
        return await _ask_identity(request, gateway, "GET", identity_url + SIGN_IN_PATHS["users"])

    @router.post("/session")
    async def sign_in(request: Request, body: Annotated[SignIn, Body()]) -> Response:
        """An access token for a demo user, minted by the development identity provider."""
        url = identity_url + SIGN_IN_PATHS["token"]
        return await _ask_identity(request, gateway, "POST", url, {"user": body.user})

    @router.get("/{name:path}")
    async def console_asset(name: str, request: Request) -> Response:
        return assets.response(name, request)

    return router


async def _ask_identity(
    request: Request, gateway: Gateway, method: str, url: str, body: object = None
) -> Response:
    refused = await gateway.rate_limit(RouteClass.PUBLIC, request, None, None)
    if refused is not None:
        return refused
    try:
        answer = await gateway.http.request(method, url, json=body, timeout=5.0)
    except httpx.HTTPError:
        return problem_response(
            502,
            "bad-gateway",
            "Bad gateway",
            "the development identity provider does not answer; is it running (make run)?",
            instance=request.url.path,
        )
    content_type = answer.headers.get("content-type", "")
    if not content_type.startswith(("application/json", "application/problem+json")):
        return problem_response(
            502,
            "bad-gateway",
            "Bad gateway",
            "the development identity provider answered something other than JSON",
            instance=request.url.path,
        )
    return JSONResponse(
        answer.json(),
        status_code=answer.status_code,
        media_type=content_type.split(";")[0],
        headers={"Cache-Control": "no-store"},
    )
