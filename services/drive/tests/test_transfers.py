"""Uploads and downloads: streamed through the gateway and the service a chunk at a time, the
upload limit answered before Google is asked, downloads that never render, Google Docs
exported."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_gateway.app import build_app as build_gateway
from pipedesk_gateway.settings import GatewaySettings
from pipedesk_testkit.identities import Users
from pipedesk_testkit.servers import serve_in_thread

pytestmark = pytest.mark.asyncio

MiB = 1024 * 1024
PIECE = 64 * 1024


@contextmanager
def gateway(stack: Any, **settings: Any) -> Iterator[httpx.AsyncClient]:
    app = build_gateway(GatewaySettings(**stack.service_env, **settings))
    with serve_in_thread(app) as url:
        yield httpx.AsyncClient(base_url=url, timeout=120)


def block(number: int) -> bytes:
    return hashlib.sha256(number.to_bytes(8, "big")).digest() * (PIECE // 32)


async def generated(size: int) -> AsyncIterator[bytes]:
    """``size`` bytes, made a piece at a time (the test never holds the file either)."""
    for number in range(size // PIECE):
        yield block(number)


async def drive_calls(stack: Any) -> list[dict[str, Any]]:
    """The Drive calls that write a file: the refused requests would have made these. (The
    folder and change-log syncs that CRM's events and Drive's notifications start read Google
    in the background at any time.)"""
    writes = {"drive.files.create", "drive.files.update", "drive.files.generateIds"}
    return [r for r in await stack.google.requests() if r["api"] in writes]


async def test_30_mb_up_and_down_through_the_gateway_within_16_mb(stack: Any, users: Users) -> None:
    size = 30 * MiB
    expected = hashlib.sha256()
    for number in range(size // PIECE):
        expected.update(block(number))
    async with stack.start() as service:
        await stack.admin_with_root(service, users)
        owner = users.make(Role.REP)
        lead_id = await stack.lead(owner)
        assert (await stack.folder(service, owner, "lead", lead_id)).status_code == 200
        with gateway(stack) as client:
            async with client:
                tracemalloc.start()
                try:
                    uploaded = await client.post(
                        f"/api/drive/records/lead/{lead_id}/files",
                        params={"name": "big.bin"},
                        content=generated(size),
                        headers={
                            **owner.headers,
                            "Content-Type": "application/octet-stream",
                            "Content-Length": str(size),
                        },
                    )
                    assert uploaded.status_code == 201, uploaded.text
                    received = hashlib.sha256()
                    async with client.stream(
                        "GET",
                        f"/api/drive/files/{uploaded.json()['id']}/content",
                        headers=owner.headers,
                    ) as download:
                        assert download.status_code == 200
                        async for piece in download.aiter_bytes():
                            received.update(piece)
                    _current, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
        assert uploaded.json()["size"] == size
        assert received.hexdigest() == expected.hexdigest()
        assert peak < 16 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"


async def test_over_the_upload_limit_is_413_before_google_and_1_mib_elsewhere(
    stack: Any, users: Users
) -> None:
    limit = 256 * 1024
    async with stack.start(max_upload_bytes=limit) as service:
        await stack.admin_with_root(service, users)
        owner = users.make(Role.REP)
        lead_id = await stack.lead(owner)
        file = (await stack.upload(service.client, owner, "lead", lead_id, "a.txt", b"a")).json()
        await stack.google.admin("DELETE", "/requests")
        with gateway(stack, drive_max_upload_bytes=limit) as through_gateway:
            async with through_gateway:
                for client in (service.client, through_gateway):
                    too_big = await stack.upload(
                        client, owner, "lead", lead_id, "big.bin", b"x" * (limit + 1)
                    )
                    assert too_big.status_code == 413, too_big.text
                    streamed = await client.post(
                        f"/api/drive/records/lead/{lead_id}/files",
                        params={"name": "chunked.bin"},
                        content=generated(limit + PIECE),
                        headers={**owner.headers, "Content-Type": "application/octet-stream"},
                    )
                    assert streamed.status_code in (411, 413), streamed.text
                    elsewhere = await client.patch(
                        f"/api/drive/files/{file['id']}",
                        content=json.dumps({"name": "n" * (MiB + 1)}),
                        headers={**owner.headers, "Content-Type": "application/json"},
                    )
                    assert elsewhere.status_code == 413
                assert await drive_calls(stack) == []  # Google was never asked
                for client in (service.client, through_gateway):
                    within = await stack.upload(
                        client, owner, "lead", lead_id, "ok.bin", b"y" * limit
                    )
                    assert within.status_code == 201, within.text


async def test_html_downloads_as_an_attachment_that_is_never_sniffed(
    stack: Any, users: Users
) -> None:
    async with stack.start() as service:
        await stack.admin_with_root(service, users)
        owner = users.make(Role.REP)
        lead_id = await stack.lead(owner)
        page = b"<html><script>alert(document.cookie)</script></html>"
        uploaded = await stack.upload(
            service.client, owner, "lead", lead_id, 'x"; evil\r\n.html', page, "text/html"
        )
        assert uploaded.status_code == 422  # no control characters in a name
        uploaded = await stack.upload(
            service.client, owner, "lead", lead_id, 'quote"é.html', page, "text/html"
        )
        assert uploaded.status_code == 201, uploaded.text
        path = f"/api/drive/files/{uploaded.json()['id']}/content"
        download = await service.client.get(path, headers=owner.headers)
        assert download.status_code == 200
        assert download.content == page
        assert download.headers["x-content-type-options"] == "nosniff"
        assert download.headers["content-disposition"] == (
            "attachment; filename=\"quote_.html\"; filename*=UTF-8''quote%C3%A9.html"
        )
        assert "sandbox" in download.headers["content-security-policy"]
        ranged = await service.client.get(path, headers={**owner.headers, "Range": "bytes=6-13"})
        assert ranged.status_code == 206
        assert ranged.content == page[6:14]
        assert ranged.headers["content-range"] == f"bytes 6-13/{len(page)}"
        beyond = await service.client.get(path, headers={**owner.headers, "Range": "bytes=999-"})
        assert beyond.status_code == 416


async def test_a_google_doc_added_in_drive_is_listed_and_exports(stack: Any, users: Users) -> None:
    async with stack.start() as service:
        admin = await stack.admin_with_root(service, users)
        owner = users.make(Role.REP)
        lead_id = await stack.lead(owner)
        folder = (await stack.folder(service, owner, "lead", lead_id)).json()
        documents = next(s["google_id"] for s in folder["subfolders"] if s["name"] == "Documents")
        token = await stack.google_token(admin, ["https://www.googleapis.com/auth/drive"])
        metadata = {
            "name": "Proposal",
            "mimeType": "application/vnd.google-apps.document",
            "parents": [documents],
        }
        body = (
            b"--b1\r\nContent-Type: application/json\r\n\r\n"
            + json.dumps(metadata).encode()
            + b"\r\n--b1\r\nContent-Type: text/plain\r\n\r\nA proposal for Acme\r\n--b1--\r\n"
        )
        async with httpx.AsyncClient(timeout=10) as http:
            made = await http.post(
                f"{stack.google.emulator_url}/upload/drive/v3/files",
                params={"uploadType": "multipart", "supportsAllDrives": "true"},
                content=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": 'multipart/related; boundary="b1"',
                },
            )
            assert made.status_code == 200, made.text

        await service.run_job("drive.sync-folders")

        listed = await service.client.get(
            f"/api/drive/records/lead/{lead_id}/files", headers=owner.headers
        )
        [doc] = listed.json()["items"]
        assert (doc["name"], doc["uploaded_by"]) == ("Proposal", "google")
        exported = await service.client.get(
            f"/api/drive/files/{doc['id']}/export",
            params={"format": "txt"},
            headers=owner.headers,
        )
        assert exported.status_code == 200, exported.text
        assert exported.content == b"A proposal for Acme"
        assert exported.headers["content-disposition"].startswith(
            'attachment; filename="Proposal.txt"'
        )
        assert exported.headers["x-content-type-options"] == "nosniff"
        raw = await service.client.get(
            f"/api/drive/files/{doc['id']}/content", headers=owner.headers
        )
        assert raw.status_code == 409
