"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) for the merged OpenAPI document, with every script
and stylesheet served by the gateway itself: the pages render with no network beyond it.

Swagger UI (Apache-2.0) and ReDoc (MIT) come from the ``fastapi-offline`` package (MIT), which
bundles their release builds; the pages and Swagger UI's start-up script are ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import fastapi_offline
from fastapi import APIRouter, Request, Response

from pipedesk_gateway.assets import StaticAssets

DOCS_DIRECTORY: Final = Path(__file__).parent / "static" / "docs"
BUNDLED_DIRECTORY: Final = Path(fastapi_offline.__file__).parent / "static"

# Scripts only from the gateway; both renderers style their elements inline, ReDoc runs its
# search in a worker made from a blob, and Swagger UI shows images as data: URLs.
DOCS_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def api_docs_router() -> APIRouter:
    assets = StaticAssets(DOCS_DIRECTORY, BUNDLED_DIRECTORY, csp=DOCS_CSP)
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def swagger_ui(request: Request) -> Response:
        return assets.response("swagger.html", request)

    @router.get("/redoc")
    async def redoc(request: Request) -> Response:
        return assets.response("redoc.html", request)

    @router.get("/docs/assets/{name}")
    async def docs_asset(name: str, request: Request) -> Response:
        return assets.response(name, request)

    return router
