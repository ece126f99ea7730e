"""Gmail v1 through the real google-api-python-client: search, every format, attachments,
threads, labels, history (and its expiry), delivery between mailboxes, fixtures, scopes, faults."""

from __future__ import annotations

import base64
import email
import email.message
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaInMemoryUpload

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


SEND = "https://www.googleapis.com/auth/gmail.send"
GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"


def outgoing(
    sender: str, to: str, subject: str = "Quote", *, bcc: str | None = None, **headers: str
) -> email.message.EmailMessage:
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = to
    if bcc is not None:
        message["Bcc"] = bcc
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("The quote is attached.")
    return message


def encoded(message: email.message.EmailMessage) -> str:
    return base64.urlsafe_b64encode(message.as_bytes()).decode()


def test_send_stores_the_sent_copy_delivers_to_mailboxes_and_records_outside_mail(
    emu: Any,
) -> None:
    emu.admin("GET", f"/gmail/{BOB}/messages")  # bob's mailbox exists: example.com is emulated
    gmail = emu.gmail_for(ANN, [SEND, GMAIL_READONLY])
    message = outgoing(ANN, f"{BOB}, client@outside.test", bcc="carol@example.com")
    message["Message-ID"] = "<q1@pipedesk.test>"
    sent = gmail.users().messages().send(userId="me", body={"raw": encoded(message)}).execute()
    assert sent["labelIds"] == ["SENT"]
    [ann_copy] = emu.admin("GET", f"/gmail/{ANN}/messages").json()
    assert ann_copy["id"] == sent["id"]
    assert ann_copy["messageId"] == "<q1@pipedesk.test>"
    [bob_copy] = emu.admin("GET", f"/gmail/{BOB}/messages").json()
    assert bob_copy["labelIds"] == ["INBOX", "UNREAD"]
    assert bob_copy["messageId"] == "<q1@pipedesk.test>"
    [carol_copy] = emu.admin("GET", "/gmail/carol@example.com/messages").json()
    bobs = gmail_raw(emu.gmail_for(BOB), bob_copy["id"])
    assert bobs["Bcc"] is None  # a blind copy stays blind
    [outside] = emu.admin("GET", "/gmail/outbound").json()
    assert outside["recipient"] == "client@outside.test"
    assert outside["messageId"] == "<q1@pipedesk.test>"
    assert carol_copy["messageId"] == "<q1@pipedesk.test>"
    # Found again by its Message-ID, as a sender reconciling a lost answer looks for it.
    found = gmail.users().messages().list(userId="me", q="rfc822msgid:q1@pipedesk.test").execute()
    assert ids(found) == [sent["id"]]
    history = gmail.users().history().list(userId="me", startHistoryId="1000").execute()
    assert history["history"][-1]["messagesAdded"][0]["message"]["id"] == sent["id"]


def gmail_raw(gmail: Any, message_id: str) -> email.message.Message:
    got = gmail.users().messages().get(userId="me", id=message_id, format="raw").execute()
    return email.message_from_bytes(base64.urlsafe_b64decode(got["raw"]))


def test_a_reply_keeps_the_thread_by_thread_id_or_by_its_headers(emu: Any) -> None:
    first = deliver(emu, subject="Quote", message_id="<orig@example.com>")
    gmail = emu.gmail_for(ANN, [SEND, GMAIL_READONLY])
    reply = outgoing(
        ANN, BOB, "Re: Quote", In_Reply_To="<orig@example.com>", References="<orig@example.com>"
    )
    thread = first[ANN]["threadId"]
    body = {"raw": encoded(reply), "threadId": thread}
    sent = gmail.users().messages().send(userId="me", body=body).execute()
    assert sent["threadId"] == thread
    # Bob's copy joins his thread by its headers.
    bob_thread = emu.admin("GET", f"/gmail/{BOB}/messages").json()
    assert {m["threadId"] for m in bob_thread} == {first[BOB]["threadId"]}
    # Another subject does not join the thread (as at Gmail), and an unknown thread is 404.
    other = outgoing(ANN, BOB, "Lunch", In_Reply_To="<orig@example.com>")
    apart = (
        gmail.users().messages().send(userId="me", body={"raw": encoded(other), "threadId": thread})
    )
    assert apart.execute()["threadId"] != thread
    with pytest.raises(HttpError) as unknown:
        gmail.users().messages().send(
            userId="me", body={"raw": encoded(reply), "threadId": "feedfeedfeedfeed"}
        ).execute()
    assert unknown.value.resp.status == 404


def test_send_by_media_upload_simple_and_multipart(emu: Any) -> None:
    first = deliver(emu, subject="Quote", message_id="<orig2@example.com>")
    gmail = emu.gmail_for(ANN, [SEND, GMAIL_READONLY])
    media = MediaInMemoryUpload(outgoing(ANN, BOB).as_bytes(), mimetype="message/rfc822")
    simple = gmail.users().messages().send(userId="me", media_body=media).execute()
    assert simple["labelIds"] == ["SENT"]
    reply = outgoing(ANN, BOB, "RE: Quote", In_Reply_To="<orig2@example.com>")
    media = MediaInMemoryUpload(reply.as_bytes(), mimetype="message/rfc822")
    body = {"threadId": first[ANN]["threadId"]}
    threaded = gmail.users().messages().send(userId="me", body=body, media_body=media).execute()
    assert threaded["threadId"] == first[ANN]["threadId"]
    logged = emu.admin("GET", "/requests", params={"api": "gmail.users.messages.send"}).json()
    assert [entry["query"].get("uploadType") for entry in logged] == ["media", "multipart"]


def test_send_refuses_what_gmail_refuses(emu: Any) -> None:
    gmail = emu.gmail_for(ANN, [SEND])
    as_bob = outgoing(BOB, "client@outside.test")
    nobody = email.message.EmailMessage()
    nobody["From"] = ANN
    nobody.set_content("to whom?")
    huge = outgoing(ANN, BOB)
    huge.add_attachment(b"\0" * (19 * 1024 * 1024), maintype="application", subtype="zip")
    for message in (as_bob, nobody, huge):
        media = MediaInMemoryUpload(message.as_bytes(), mimetype="message/rfc822")
        with pytest.raises(HttpError) as refused:
            gmail.users().messages().send(userId="me", media_body=media).execute()
        assert refused.value.resp.status == 400
    assert emu.admin("GET", f"/gmail/{ANN}/messages").json() == []
    reader = emu.gmail_for(ANN, [GMAIL_READONLY])
    with pytest.raises(HttpError) as scope:
        reader.users().messages().send(userId="me", body={"raw": encoded(as_bob)}).execute()
    assert scope.value.resp.status == 403


def test_a_send_whose_answer_is_lost_after_the_store_is_stored_once(emu: Any) -> None:
    emu.admin(
        "POST",
        "/faults",
        json={"api_method": "gmail.users.messages.send", "status": 503, "after_store": True},
    )
    gmail = emu.gmail_for(ANN, [SEND, GMAIL_READONLY])
    message = outgoing(ANN, BOB)
    message["Message-ID"] = "<lost@pipedesk.test>"
    with pytest.raises(HttpError) as failed:
        gmail.users().messages().send(userId="me", body={"raw": encoded(message)}).execute()
    assert failed.value.resp.status == 503
    found = gmail.users().messages().list(userId="me", q="rfc822msgid:lost@pipedesk.test")
    assert len(ids(found.execute())) == 1
