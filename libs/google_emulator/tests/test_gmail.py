"""Gmail v1 through the real google-api-python-client: search, every format, attachments,
threads, labels, history (and its expiry), delivery between mailboxes, fixtures, scopes, faults."""

from __future__ import annotations

import base64
import email
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from googleapiclient.errors import HttpError

ANN = "ann@example.com"
BOB = "bob@example.com"
METADATA = "https://www.googleapis.com/auth/gmail.metadata"
FIXTURES = (
    "with-attachment.eml",
    "latin1.eml",
    "rfc2047-headers.eml",
    "html-only.eml",
    "hostile-html.eml",
    "malformed.eml",
    "newsletter.eml",
)


def deliver(emu: Any, **spec: Any) -> dict[str, Any]:
    body = {"sender": BOB, "to": [ANN], "subject": "Hello", "text": "Hi there", **spec}
    found: dict[str, Any] = emu.admin("POST", "/gmail/deliver", json=body).json()
    return found


def seed(emu: Any, address: str, **spec: Any) -> dict[str, Any]:
    found: dict[str, Any] = emu.admin("POST", f"/gmail/{address}/messages", json=spec).json()
    return found


def ids(listing: dict[str, Any]) -> list[str]:
    return [m["id"] for m in listing.get("messages", [])]


def test_delivery_puts_one_message_id_in_every_mailbox(emu: Any) -> None:
    copies = deliver(emu, cc=["carol@example.com"])
    assert set(copies) == {ANN, BOB, "carol@example.com"}
    assert len({copy["messageId"] for copy in copies.values()}) == 1
    assert copies[BOB]["labelIds"] == ["SENT"]
    assert copies[ANN]["labelIds"] == ["INBOX", "UNREAD"]
    gmail = emu.gmail_for(ANN)
    profile = gmail.users().getProfile(userId="me").execute()
    assert profile["emailAddress"] == ANN
    assert profile["messagesTotal"] == 1
    got = gmail.users().messages().get(userId="me", id=copies[ANN]["id"], format="raw").execute()
    raw = email.message_from_bytes(base64.urlsafe_b64decode(got["raw"]))
    assert raw["Message-ID"] == copies[BOB]["messageId"]


def test_search_operators(emu: Any) -> None:
    now = datetime.now(UTC)
    old = deliver(emu, subject="Old quote", date=(now - timedelta(days=100)).isoformat())
    recent = deliver(emu, subject="Pricing", attachments={"q.txt": "quote"})
    other = deliver(emu, sender="carol@example.com", subject="Lunch?")
    gmail = emu.gmail_for(ANN)

    def search(query: str) -> list[str]:
        return ids(gmail.users().messages().list(userId="me", q=query).execute())

    assert search("from:bob@example.com") == [recent[ANN]["id"], old[ANN]["id"]]
    assert search("from:carol@example.com") == [other[ANN]["id"]]
    assert search("to:ann@example.com subject:pricing") == [recent[ANN]["id"]]
    assert search("newer_than:30d -from:carol@example.com") == [recent[ANN]["id"]]
    cutoff = (now - timedelta(days=50)).strftime("%Y/%m/%d")
    assert search(f"before:{cutoff}") == [old[ANN]["id"]]
    assert search(f"after:{cutoff} has:attachment") == [recent[ANN]["id"]]
    assert search(f"rfc822msgid:{old[ANN]['messageId']}") == [old[ANN]["id"]]
    assert search("in:inbox label:unread") == [other[ANN]["id"], recent[ANN]["id"], old[ANN]["id"]]
    assert search("in:sent") == []
    with pytest.raises(HttpError) as unsupported:
        search("larger:5M")
    assert unsupported.value.resp.status == 400


def test_paging_is_newest_first_and_stable(emu: Any) -> None:
    sent = [deliver(emu, subject=f"m{i}")[ANN]["id"] for i in range(5)]
    gmail = emu.gmail_for(ANN)
    first = gmail.users().messages().list(userId="me", maxResults=2).execute()
    deliver(emu, subject="between pages")
    rest = (
        gmail.users()
        .messages()
        .list(userId="me", maxResults=2, pageToken=first["nextPageToken"])
        .execute()
    )
    last = (
        gmail.users()
        .messages()
        .list(userId="me", maxResults=2, pageToken=rest["nextPageToken"])
        .execute()
    )
    assert ids(first) + ids(rest) + ids(last) == list(reversed(sent))


def test_every_format_and_attachments(emu: Any) -> None:
    copy = seed(emu, ANN, fixture="with-attachment.eml")
    gmail = emu.gmail_for(ANN)
    messages = gmail.users().messages()
    minimal = messages.get(userId="me", id=copy["id"], format="minimal").execute()
    assert "payload" not in minimal
    assert minimal["snippet"] == "Here is the signed proposal."
    metadata = messages.get(
        userId="me", id=copy["id"], format="metadata", metadataHeaders=["Subject"]
    ).execute()
    assert metadata["payload"]["headers"] == [
        {"name": "Subject", "value": "Signed proposal attached"}
    ]
    full = messages.get(userId="me", id=copy["id"]).execute()
    text, pdf = full["payload"]["parts"]
    assert base64.urlsafe_b64decode(text["body"]["data"]) == b"Here is the signed proposal."
    assert pdf["filename"] == "proposal.pdf"
    assert "data" not in pdf["body"]
    attachment = (
        messages.attachments()
        .get(userId="me", messageId=copy["id"], id=pdf["body"]["attachmentId"])
        .execute()
    )
    assert base64.urlsafe_b64decode(attachment["data"]).startswith(b"%PDF-1.4")
    assert attachment["size"] == pdf["body"]["size"]


def test_fixtures_render_in_every_format(emu: Any) -> None:
    gmail = emu.gmail_for(ANN)
    for fixture in FIXTURES:
        copy = seed(emu, ANN, fixture=fixture)
        for fmt in ("full", "metadata", "minimal", "raw"):
            got = gmail.users().messages().get(userId="me", id=copy["id"], format=fmt).execute()
            assert got["id"] == copy["id"], (fixture, fmt)
    assert len(emu.admin("GET", f"/gmail/{ANN}/messages").json()) == len(FIXTURES)


def test_threads_and_labels(emu: Any) -> None:
    first = deliver(emu, subject="Deal")
    reply = deliver(
        emu,
        sender=ANN,
        to=[BOB],
        subject="Re: Deal",
        headers={"In-Reply-To": first[ANN]["messageId"], "References": first[ANN]["messageId"]},
    )
    assert reply[ANN]["threadId"] == first[ANN]["threadId"]
    gmail = emu.gmail_for(ANN)
    threads = gmail.users().threads().list(userId="me").execute()["threads"]
    assert [t["id"] for t in threads] == [first[ANN]["threadId"]]
    thread = gmail.users().threads().get(userId="me", id=first[ANN]["threadId"]).execute()
    assert [m["id"] for m in thread["messages"]] == [first[ANN]["id"], reply[ANN]["id"]]
    label = emu.admin("POST", f"/gmail/{ANN}/labels", json={"name": "Clients"}).json()
    names = {x["name"] for x in gmail.users().labels().list(userId="me").execute()["labels"]}
    assert {"INBOX", "SENT", "Clients"} <= names
    emu.admin(
        "POST", f"/gmail/{ANN}/messages/{first[ANN]['id']}/labels", json={"add": [label["id"]]}
    )
    found = gmail.users().messages().list(userId="me", q="label:clients").execute()
    assert ids(found) == [first[ANN]["id"]]


def test_history_types_and_expiry(emu: Any) -> None:
    gmail = emu.gmail_for(ANN)
    start = gmail.users().getProfile(userId="me").execute()["historyId"]
    copy = deliver(emu)[ANN]
    emu.admin("POST", f"/gmail/{ANN}/messages/{copy['id']}/labels", json={"remove": ["UNREAD"]})
    emu.admin("DELETE", f"/gmail/{ANN}/messages/{copy['id']}")
    history = gmail.users().history().list(userId="me", startHistoryId=start).execute()
    kinds = [
        next(k for k in record if k not in ("id", "messages")) for record in history["history"]
    ]
    assert kinds == ["messagesAdded", "labelsRemoved", "messagesDeleted"]
    assert history["history"][1]["labelsRemoved"][0]["labelIds"] == ["UNREAD"]
    added_only = (
        gmail.users()
        .history()
        .list(userId="me", startHistoryId=start, historyTypes=["messageAdded"])
        .execute()
    )
    assert len(added_only["history"]) == 1
    current = history["historyId"]
    assert (
        "history" not in gmail.users().history().list(userId="me", startHistoryId=current).execute()
    )
    emu.admin("POST", f"/gmail/{ANN}/history/expire")
    with pytest.raises(HttpError) as expired:
        gmail.users().history().list(userId="me", startHistoryId=start).execute()
    assert expired.value.resp.status == 404


def test_metadata_scope_is_as_narrow_as_google(emu: Any) -> None:
    copy = deliver(emu)[ANN]
    gmail = emu.gmail_for(ANN, [METADATA])
    messages = gmail.users().messages()
    assert messages.get(userId="me", id=copy["id"], format="metadata").execute()["id"]
    refusals: list[Callable[[], Any]] = [
        lambda: messages.list(userId="me", q="from:bob@example.com").execute(),
        lambda: messages.get(userId="me", id=copy["id"], format="full").execute(),
        lambda: messages.attachments().get(userId="me", messageId=copy["id"], id="x").execute(),
    ]
    for refused in refusals:
        with pytest.raises(HttpError) as caught:
            refused()
        assert caught.value.resp.status == 403
    other = emu.gmail_for(ANN, ["https://www.googleapis.com/auth/drive"])
    with pytest.raises(HttpError) as unscoped:
        other.users().getProfile(userId="me").execute()
    assert unscoped.value.resp.status == 403


def test_another_users_mailbox_is_refused(emu: Any) -> None:
    deliver(emu)
    gmail = emu.gmail_for(BOB)
    with pytest.raises(HttpError) as caught:
        gmail.users().messages().list(userId=ANN).execute()
    assert caught.value.resp.status == 403


def test_faults_are_injected_like_other_products(emu: Any) -> None:
    emu.admin("POST", "/faults", json={"api_method": "gmail.users.history.list", "status": 503})
    gmail = emu.gmail_for(ANN)
    start = gmail.users().getProfile(userId="me").execute()["historyId"]
    with pytest.raises(HttpError) as caught:
        gmail.users().history().list(userId="me", startHistoryId=start).execute()
    assert caught.value.resp.status == 503
    assert gmail.users().history().list(userId="me", startHistoryId=start).execute()
