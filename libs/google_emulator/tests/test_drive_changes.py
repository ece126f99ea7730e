"""Drive v3 permissions, changes and push channels through the real google-api-python-client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from googleapiclient.errors import HttpError

from pipedesk_testkit.servers import serve_in_thread

FOLDER = "application/vnd.google-apps.folder"
ANN, BOB, CLIENT = "ann@example.com", "bob@example.com", "carla@client.org"


@dataclass
class Receiver:
    url: str
    received: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[dict[str, str]]:
        with self.lock:
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = FastAPI()
    holder: list[Receiver] = []

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        headers = {
            k.lower(): v for k, v in request.headers.items() if k.lower().startswith("x-goog")
        }
        with holder[0].lock:
            holder[0].received.append(headers)
        return Response(status_code=200)

    with serve_in_thread(app) as url:
        holder.append(Receiver(url + "/hook"))
        yield holder[0]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def settled(emu: Any) -> None:
    """Every notification caused so far has been posted."""
    wait_for(lambda: emu.admin("GET", "/drive/deliveries").json()["in_flight"] == 0)


def _error(call: Any) -> tuple[int, str]:
    with pytest.raises(HttpError) as caught:
        call.execute()
    details = caught.value.error_details[0] if caught.value.error_details else {}
    return caught.value.resp.status, details.get("reason", "")


def _folder(drive: Any, name: str, parent: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "mimeType": FOLDER}
    if parent:
        body["parents"] = [parent]
    made: dict[str, Any] = drive.files().create(body=body, fields="id").execute()
    return made


def test_permissions_grant_inherited_access_and_record_the_notification_choice(emu: Any) -> None:
    ann, bob = emu.drive_for(ANN), emu.drive_for(BOB)
    folder = _folder(ann, "Acme")
    inside = ann.files().create(body={"name": "q.txt", "parents": [folder["id"]]}).execute()
    assert _error(bob.files().get(fileId=inside["id"])) == (404, "notFound")

    granted = (
        ann.permissions()
        .create(
            fileId=folder["id"],
            body={"type": "user", "role": "reader", "emailAddress": BOB},
            sendNotificationEmail=False,
            fields="id,type,role,emailAddress",
        )
        .execute()
    )
    assert granted["role"] == "reader"
    assert granted["emailAddress"] == BOB
    assert bob.files().get(fileId=inside["id"], fields="id").execute() == {"id": inside["id"]}
    status = _error(bob.files().update(fileId=inside["id"], body={"name": "mine"}))
    assert status == (403, "insufficientFilePermissions")
    assert _error(
        bob.permissions().create(
            fileId=folder["id"], body={"type": "user", "role": "writer", "emailAddress": CLIENT}
        )
    ) == (403, "insufficientFilePermissions")

    ann.permissions().update(
        fileId=folder["id"], permissionId=granted["id"], body={"role": "writer"}
    ).execute()
    bob.files().update(fileId=inside["id"], body={"name": "mine.txt"}).execute()
    by_bob = bob.files().create(body={"name": "b.txt", "parents": [folder["id"]]}).execute()
    seen = ann.files().get(fileId=by_bob["id"], fields="lastModifyingUser,owners").execute()
    assert seen["lastModifyingUser"]["emailAddress"] == BOB

    listed = ann.permissions().list(fileId=folder["id"], fields="permissions(id,role,emailAddress)")
    roles = {p["emailAddress"]: p["role"] for p in listed.execute()["permissions"]}
    assert roles == {ANN: "owner", BOB: "writer"}
    ann.permissions().create(
        fileId=folder["id"], body={"type": "user", "role": "commenter", "emailAddress": CLIENT}
    ).execute()
    sent = emu.admin("GET", "/drive/notifications").json()
    assert [(n["recipient"], n["email_sent"]) for n in sent] == [(BOB, False), (CLIENT, True)]

    assert _error(
        ann.permissions().create(
            fileId=folder["id"], body={"type": "user", "role": "organizer", "emailAddress": BOB}
        )
    ) == (403, "invalidSharingRequest")
    owner_id = next(p for p in listed.execute()["permissions"] if p["role"] == "owner")["id"]
    assert _error(ann.permissions().delete(fileId=folder["id"], permissionId=owner_id)) == (
        403,
        "cannotDeletePermission",
    )
    ann.permissions().delete(fileId=folder["id"], permissionId=granted["id"]).execute()
    assert _error(bob.files().get(fileId=inside["id"])) == (404, "notFound")


def test_shared_drive_items_take_organizer_roles_and_domain_grants(emu: Any) -> None:
    ann = emu.drive_for(ANN)
    drive = ann.drives().create(requestId="r1", body={"name": "Org"}).execute()
    folder = (
        ann.files()
        .create(
            body={"name": "Leads", "mimeType": FOLDER, "parents": [drive["id"]]},
            supportsAllDrives=True,
        )
        .execute()
    )
    made = (
        ann.permissions()
        .create(
            fileId=folder["id"],
            body={"type": "user", "role": "fileOrganizer", "emailAddress": BOB},
            supportsAllDrives=True,
            fields="role,permissionDetails",
        )
        .execute()
    )
    assert made["role"] == "fileOrganizer"
    bob = emu.drive_for(BOB)
    got = bob.files().get(fileId=folder["id"], supportsAllDrives=True, fields="id").execute()
    assert got["id"] == folder["id"]

    mine = _folder(ann, "Companies")
    ann.permissions().create(
        fileId=mine["id"], body={"type": "domain", "role": "reader", "domain": "example.com"}
    ).execute()
    assert bob.files().get(fileId=mine["id"], fields="id").execute()["id"] == mine["id"]
    outsider = emu.drive_for(CLIENT)
    assert _error(outsider.files().get(fileId=mine["id"])) == (404, "notFound")


def test_changes_page_from_the_start_token_to_a_new_start_token(emu: Any) -> None:
    ann, bob = emu.drive_for(ANN), emu.drive_for(BOB)
    start = ann.changes().getStartPageToken().execute()["startPageToken"]
    folder = _folder(ann, "Acme")
    files = [
        ann.files().create(body={"name": f"f{n}", "parents": [folder["id"]]}).execute()
        for n in range(3)
    ]
    ann.files().update(fileId=files[0]["id"], body={"trashed": True}).execute()
    ann.files().delete(fileId=files[1]["id"]).execute()

    seen: list[dict[str, Any]] = []
    token: str | None = start
    pages = 0
    new_start = None
    while token is not None:
        page = (
            ann.changes()
            .list(
                pageToken=token,
                pageSize=2,
                fields="nextPageToken,newStartPageToken,changes(fileId,removed,file(name,trashed))",
            )
            .execute()
        )
        pages += 1
        seen.extend(page["changes"])
        token = page.get("nextPageToken")
        new_start = page.get("newStartPageToken")
    assert pages > 2
    assert new_start is not None
    removed = [c["fileId"] for c in seen if c["removed"]]
    assert removed
    assert set(removed) == {files[1]["id"]}
    trashed = [c for c in seen if c["fileId"] == files[0]["id"] and not c["removed"]]
    assert trashed
    assert all(c["file"]["trashed"] for c in trashed)
    assert ann.changes().list(pageToken=new_start).execute()["changes"] == []
    assert bob.changes().list(pageToken=start).execute()["changes"] == []

    ann.permissions().create(
        fileId=folder["id"],
        body={"type": "user", "role": "reader", "emailAddress": BOB},
        sendNotificationEmail=False,
    ).execute()
    for_bob = bob.changes().list(pageToken=new_start, fields="changes(fileId,removed)").execute()
    assert {c["fileId"] for c in for_bob["changes"]} == {
        folder["id"],
        files[0]["id"],
        files[2]["id"],
    }
    assert _error(ann.changes().list(pageToken="nonsense")) == (400, "invalid")


def test_watches_post_drives_headers_until_stopped_or_expired(emu: Any, receiver: Receiver) -> None:
    ann, bob = emu.drive_for(ANN), emu.drive_for(BOB)
    folder = _folder(ann, "Acme")
    ann.permissions().create(
        fileId=folder["id"],
        body={"type": "user", "role": "writer", "emailAddress": BOB},
        sendNotificationEmail=False,
    ).execute()
    start = ann.changes().getStartPageToken().execute()["startPageToken"]
    changes = (
        ann.changes()
        .watch(
            pageToken=start,
            body={"id": "c1", "type": "web_hook", "address": receiver.url, "token": "tok"},
        )
        .execute()
    )
    expires_in = int(changes["expiration"]) / 1000 - time.time()
    assert 3500 < expires_in <= 3600
    on_folder = (
        ann.files()
        .watch(
            fileId=folder["id"],
            body={
                "id": "f1",
                "type": "web_hook",
                "address": receiver.url,
                "expiration": str(int((time.time() + 30 * 86400) * 1000)),
            },
        )
        .execute()
    )
    assert int(on_folder["expiration"]) / 1000 - time.time() <= 86400
    bob.files().create(body={"name": "by-bob.txt", "parents": [folder["id"]]}).execute()
    ann.files().update(fileId=folder["id"], body={"name": "Acme Inc"}).execute()
    settled(emu)
    received = receiver.snapshot()
    by_channel: dict[str, list[dict[str, str]]] = {}
    for headers in received:
        by_channel.setdefault(headers["x-goog-channel-id"], []).append(headers)
    assert [h["x-goog-resource-state"] for h in by_channel["c1"]] == ["sync", "change", "change"]
    assert all(h["x-goog-channel-token"] == "tok" for h in by_channel["c1"])
    assert [h["x-goog-message-number"] for h in by_channel["c1"]] == ["1", "2", "3"]
    folder_states = [
        (h["x-goog-resource-state"], h.get("x-goog-changed")) for h in by_channel["f1"]
    ]
    assert folder_states == [("sync", None), ("update", "children"), ("update", "properties")]
    assert by_channel["f1"][0]["x-goog-resource-id"] == on_folder["resourceId"]

    assert _error(bob.channels().stop(body={"id": "c1", "resourceId": changes["resourceId"]})) == (
        404,
        "notFound",
    )
    ann.channels().stop(body={"id": "c1", "resourceId": changes["resourceId"]}).execute()
    emu.admin("POST", "/clock", json={"advance_seconds": 2 * 86400})
    later = emu.drive_for(ANN)
    later.files().update(fileId=folder["id"], body={"name": "Acme SA"}).execute()
    settled(emu)
    assert len(receiver.snapshot()) == len(received)
    channels = {c["id"]: c for c in emu.admin("GET", "/drive/channels").json()}
    assert channels["c1"]["stopped"]
    assert channels["f1"]["expired"]
    assert httpx.get(f"{emu.url}/_emulator/drive/deliveries").json()["in_flight"] == 0
