"""Drive v3 through the real google-api-python-client: files, uploads, downloads, queries."""

from __future__ import annotations

import io
from typing import Any

import pytest
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseDownload, MediaIoBaseUpload

FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"


def _status(call: Any) -> tuple[int, str, str]:
    with pytest.raises(HttpError) as caught:
        call.execute()
    error = caught.value.error_details[0] if caught.value.error_details else {}
    return caught.value.resp.status, error.get("reason", ""), error.get("location", "")


def _folder(drive: Any, name: str, parent: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "mimeType": FOLDER, **extra}
    if parent:
        body["parents"] = [parent]
    created: dict[str, Any] = drive.files().create(body=body, fields="id,name,parents").execute()
    return created


def _upload(drive: Any, name: str, data: bytes, parent: str, **options: Any) -> dict[str, Any]:
    media = MediaIoBaseUpload(io.BytesIO(data), mimetype=options.pop("mimetype", "text/plain"))
    body = {"name": name, "parents": [parent], **options}
    created: dict[str, Any] = (
        drive.files().create(body=body, media_body=media, fields="id,size,md5Checksum").execute()
    )
    return created


def test_default_fields_are_few_and_fields_selects(emu: Any) -> None:
    drive = emu.drive_for()
    created = drive.files().create(body={"name": "Acme", "mimeType": FOLDER}).execute()
    assert set(created) == {"kind", "id", "name", "mimeType"}
    got = drive.files().get(fileId=created["id"], fields="id,parents,appProperties").execute()
    assert set(got) == {"id", "parents", "appProperties"}
    listed = drive.files().list(fields="files(id,name)").execute()
    assert listed == {"files": [{"id": created["id"], "name": "Acme"}]}
    status, reason, location = _status(drive.files().get(fileId=created["id"], fields="nosuch"))
    assert (status, reason, location) == (400, "invalidParameter", "fields")


def test_multipart_upload_and_ranged_download(emu: Any) -> None:
    drive = emu.drive_for()
    folder = _folder(drive, "Docs")
    data = bytes(range(256)) * 40
    created = _upload(drive, "a.bin", data, folder["id"], mimetype="application/octet-stream")
    assert created["size"] == str(len(data))
    assert drive.files().get_media(fileId=created["id"]).execute() == data

    request = drive.files().get_media(fileId=created["id"])
    request.headers["Range"] = "bytes=10-19"
    assert request.execute() == data[10:20]

    sink = io.BytesIO()
    downloader = MediaIoBaseDownload(sink, drive.files().get_media(fileId=created["id"]), 1000)
    done = False
    while not done:
        _, done = downloader.next_chunk()
    assert sink.getvalue() == data


def test_resumable_upload_cut_resumes_from_the_reported_offset(emu: Any) -> None:
    drive = emu.drive_for()
    folder = _folder(drive, "Big")
    data = bytes(range(256)) * 4096  # 1 MiB
    emu.admin("POST", "/drive/upload-cuts", json={"after_bytes": 300_000})
    media = MediaIoBaseUpload(
        io.BytesIO(data), mimetype="application/pdf", chunksize=256 * 1024, resumable=True
    )
    request = drive.files().create(
        body={"name": "big.pdf", "parents": [folder["id"]]}, media_body=media, fields="id,size"
    )
    result = None
    _, result = request.next_chunk()  # the first chunk
    assert request.resumable_progress == 256 * 1024
    with pytest.raises(HttpError) as cut:
        request.next_chunk()  # cut after 300 000 bytes
    assert cut.value.resp.status == 503
    _, result = request.next_chunk()  # asks where Google is, resumes from there
    assert request.resumable_progress == 300_000 + 256 * 1024
    while result is None:
        _, result = request.next_chunk()
    assert result["size"] == str(len(data))
    assert drive.files().get_media(fileId=result["id"]).execute() == data


def test_export_of_a_google_doc_and_not_of_binary(emu: Any) -> None:
    drive = emu.drive_for()
    media = MediaIoBaseUpload(io.BytesIO(b"Proposal for Acme"), mimetype="text/plain")
    doc = (
        drive.files()
        .create(body={"name": "Proposal", "mimeType": DOC}, media_body=media, fields="id,mimeType")
        .execute()
    )
    assert doc["mimeType"] == DOC
    exported = drive.files().export(fileId=doc["id"], mimeType="text/plain").execute()
    assert exported == b"Proposal for Acme"
    assert drive.files().export(fileId=doc["id"], mimeType="application/pdf").execute()[:5] == (
        b"%PDF-"
    )
    assert _status(drive.files().get_media(fileId=doc["id"]))[:2] == (403, "fileNotDownloadable")
    assert _status(drive.files().export(fileId=doc["id"], mimeType="image/gif"))[0] == 400
    binary = _upload(drive, "x.txt", b"x", "root")
    assert _status(drive.files().export(fileId=binary["id"], mimeType="text/plain"))[:2] == (
        403,
        "fileNotExportable",
    )


def test_parents_move_trash_restore_and_delete(emu: Any) -> None:
    drive = emu.drive_for()
    leads, deals = _folder(drive, "Leads"), _folder(drive, "Deals")
    record = _folder(drive, "Acme", leads["id"])
    inner = _upload(drive, "note.txt", b"hi", record["id"])
    moved = (
        drive.files()
        .update(
            fileId=record["id"], addParents=deals["id"], removeParents=leads["id"], fields="parents"
        )
        .execute()
    )
    assert moved["parents"] == [deals["id"]]
    assert _status(drive.files().update(fileId=record["id"], addParents=leads["id"]))[:2] == (
        403,
        "cannotAddParent",
    )

    trashed = (
        drive.files()
        .update(fileId=record["id"], body={"trashed": True}, fields="trashed,explicitlyTrashed")
        .execute()
    )
    assert trashed == {"trashed": True, "explicitlyTrashed": True}
    child = drive.files().get(fileId=inner["id"], fields="trashed,explicitlyTrashed").execute()
    assert child == {"trashed": True, "explicitlyTrashed": False}
    drive.files().update(fileId=record["id"], body={"trashed": False}).execute()
    assert drive.files().get(fileId=inner["id"], fields="trashed").execute() == {"trashed": False}

    drive.files().delete(fileId=record["id"]).execute()
    assert _status(drive.files().get(fileId=inner["id"]))[:2] == (404, "notFound")


def test_app_properties_are_merged_and_queried(emu: Any) -> None:
    drive = emu.drive_for()
    folder = _folder(drive, "Acme", appProperties={"record": "lead:1", "org": "o1"})
    drive.files().update(
        fileId=folder["id"], body={"appProperties": {"record": "deal:2", "org": None}}
    ).execute()
    got = drive.files().get(fileId=folder["id"], fields="appProperties").execute()
    assert got == {"appProperties": {"record": "deal:2"}}
    query = "appProperties has { key='record' and value='deal:2' }"
    assert [f["id"] for f in drive.files().list(q=query).execute()["files"]] == [folder["id"]]
    assert (
        drive.files().list(q="appProperties has { key='org' and value='o1' }").execute()["files"]
        == []
    )


def test_query_grammar(emu: Any) -> None:
    drive = emu.drive_for()
    parent = _folder(drive, "Acme Corp")
    report = _upload(drive, "Quarterly report.txt", b"revenue grew", parent["id"])
    memo = _upload(drive, "memo.txt", b"nothing", parent["id"])
    drive.files().update(fileId=memo["id"], body={"trashed": True}).execute()

    def names(q: str) -> list[str]:
        listing = drive.files().list(q=q, orderBy="name", fields="files(name)").execute()
        return [f["name"] for f in listing["files"]]

    inside = f"'{parent['id']}' in parents"
    assert names(inside) == ["memo.txt", "Quarterly report.txt"]
    assert names(f"{inside} and trashed = false") == ["Quarterly report.txt"]
    assert names(f"{inside} and not trashed = false") == ["memo.txt"]
    assert names("name contains 'Corp'") == ["Acme Corp"]
    assert names("name contains 'orp'") == []
    assert names(f"mimeType = '{FOLDER}' or name = 'memo.txt'") == ["Acme Corp", "memo.txt"]
    assert names("fullText contains 'revenue'") == ["Quarterly report.txt"]
    assert names(f"({inside} or name = 'x') and mimeType != 'text/plain'") == []
    assert names("name = 'it\\'s'") == []
    assert names("modifiedTime > '2000-01-01T00:00:00'") == [
        "Acme Corp",
        "memo.txt",
        "Quarterly report.txt",
    ]
    assert names("modifiedTime < '2000-01-01T00:00:00Z'") == []
    assert report["id"]
    for malformed in (
        "name = ",
        "name contains 'x",
        "(trashed = false",
        "trashed = maybe",
        "fullText = 'x'",
        "name and 'x'",
        "appProperties has { key='a' }",
    ):
        assert _status(drive.files().list(q=malformed)) == (400, "invalid", "q"), malformed


def test_paging_is_stable(emu: Any) -> None:
    drive = emu.drive_for()
    for number in range(5):
        _folder(drive, f"f{number}")
    seen: list[str] = []
    token = None
    while True:
        page = drive.files().list(pageSize=2, pageToken=token, orderBy="name").execute()
        seen += [f["name"] for f in page["files"]]
        token = page.get("nextPageToken")
        if not token:
            break
    assert seen == ["f0", "f1", "f2", "f3", "f4"]


def test_shared_drive_needs_supports_all_drives_and_membership(emu: Any) -> None:
    admin = emu.drive_for("admin@acme.com")
    shared = admin.drives().create(requestId="r1", body={"name": "PipeDesk"}).execute()
    assert _status(admin.drives().create(requestId="r1", body={"name": "again"}))[0] == 409
    folder = (
        admin.files()
        .create(
            body={"name": "Leads", "mimeType": FOLDER, "parents": [shared["id"]]},
            supportsAllDrives=True,
            fields="id,driveId",
        )
        .execute()
    )
    assert folder["driveId"] == shared["id"]
    assert _status(admin.files().get(fileId=folder["id"]))[:2] == (404, "notFound")
    assert admin.files().get(fileId=folder["id"], supportsAllDrives=True).execute()["id"]
    assert admin.files().list().execute()["files"] == []
    listed = (
        admin.files()
        .list(
            corpora="drive",
            driveId=shared["id"],
            includeItemsFromAllDrives=True,
            supportsAllDrives=True,
        )
        .execute()
    )
    assert [f["id"] for f in listed["files"]] == [folder["id"]]

    outsider = emu.drive_for("eve@acme.com")
    assert _status(outsider.files().get(fileId=folder["id"], supportsAllDrives=True))[0] == 404
    emu.admin("POST", f"/drive/drives/{shared['id']}/members", json={"email": "eve@acme.com"})
    assert outsider.files().get(fileId=folder["id"], supportsAllDrives=True).execute()["id"]


def test_files_are_per_user_and_scopes_are_checked(emu: Any) -> None:
    mine = _folder(emu.drive_for("ann@example.com"), "Ann's")
    bob = emu.drive_for("bob@example.com")
    assert _status(bob.files().get(fileId=mine["id"]))[0] == 404
    readonly = emu.drive_for(scopes=["https://www.googleapis.com/auth/drive.readonly"])
    assert readonly.files().get(fileId=mine["id"]).execute()["id"] == mine["id"]
    assert _status(readonly.files().create(body={"name": "x"}))[:2] == (
        403,
        "insufficientPermissions",
    )
    only_app_files = emu.drive_for(scopes=["https://www.googleapis.com/auth/drive.file"])
    assert _status(only_app_files.files().list())[0] == 403


def test_faults_per_user_and_store_then_fail(emu: Any) -> None:
    emu.admin(
        "POST",
        "/faults",
        json={"api_method": "drive.files.list", "status": 503, "user": "bob@example.com"},
    )
    assert emu.drive_for("ann@example.com").files().list().execute()["files"] == []
    bob = emu.drive_for("bob@example.com")
    assert _status(bob.files().list())[0] == 503
    assert bob.files().list().execute()["files"] == []

    emu.admin(
        "POST",
        "/faults",
        json={
            "api_method": "drive.files.create",
            "status": 503,
            "after_store": True,
            "user": "bob@example.com",
        },
    )
    marker = {"record": "lead:42"}
    assert _status(bob.files().create(body={"name": "Acme", "appProperties": marker}))[0] == 503
    query = "appProperties has { key='record' and value='lead:42' }"
    assert [f["name"] for f in bob.files().list(q=query).execute()["files"]] == ["Acme"]


def test_a_create_with_a_generated_id_happens_once(emu: Any) -> None:
    drive = emu.drive_for()
    generated = drive.files().generateIds(count=2).execute()
    first, second = generated["ids"]
    created = drive.files().create(body={"id": first, "name": "Acme", "mimeType": FOLDER}).execute()
    assert created["id"] == first
    again = drive.files().create(body={"id": first, "name": "Acme", "mimeType": FOLDER})
    assert _status(again)[:2] == (409, "duplicate")
    assert _status(drive.files().create(body={"id": "made-up", "name": "x"}))[0] == 400
    other = emu.drive_for("bob@example.com")
    assert _status(other.files().create(body={"id": second, "name": "x"}))[0] == 400
