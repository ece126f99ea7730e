"""The headers of a file served for download (a Drive file, a mail attachment): always saved,
never rendered or sniffed, with a filename no header can break (RFC 6266, its UTF-8 form by
RFC 5987)."""

from __future__ import annotations

from urllib.parse import quote


def attachment(name: str) -> str:
    """A ``Content-Disposition`` that always downloads: path separators, quotes and control
    characters dropped, an ASCII ``filename`` for old clients and the whole name in
    ``filename*``."""
    cleaned = "".join(c for c in name if c.isprintable() and c not in '\\/"').strip() or "download"
    fallback = cleaned.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(cleaned, safe='')}"


def download_headers(name: str) -> dict[str, str]:
    return {
        "Content-Disposition": attachment(name),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
    }
