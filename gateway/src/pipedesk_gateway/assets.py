"""Static files the gateway serves itself (the console, the API docs' scripts): read once at
startup from a package directory, served with an ETag, a Content-Security-Policy and nothing
from outside the directory."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request, Response

from pipedesk_common.errors import NotFound

# Headers every page and asset of the gateway's own carries.
BASE_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # Revalidated on every use (a cheap 304): a new version of the gateway is seen at once.
    "Cache-Control": "no-cache",
}

_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".png": "image/png"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


class StaticAssets:
    """The files under ``directories``, by their path relative to their directory; a name not
    among them is 404, whatever it holds (``..``, an absolute path)."""

    def __init__(self, *directories: Path, csp: str) -> None:
        self._assets: dict[str, Asset] = {}
        self._headers = {**BASE_HEADERS, "Content-Security-Policy": csp}
        files = {
            path.relative_to(directory).as_posix(): path
            for directory in directories
            for path in sorted(directory.rglob("*"))
            if path.is_file() and not path.name.startswith(".") and path.suffix in _TYPES
        }
        for name, path in files.items():
            body = path.read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:32]
            self._assets[name] = Asset(body, _TYPES[path.suffix], f'"{digest}"')

    def __contains__(self, name: str) -> bool:
        return name in self._assets

    def response(self, name: str, request: Request) -> Response:
        asset = self._assets.get(name)
        if asset is None:
            raise NotFound("no such file")
        headers = {**self._headers, "ETag": asset.etag}
        sent = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
        if asset.etag in sent:
            return Response(status_code=304, headers=headers)
        media_type = asset.media_type
        if media_type.startswith("text/"):
            media_type += "; charset=utf-8"
        return Response(asset.body, media_type=media_type, headers=headers)
