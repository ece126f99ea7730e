"""A mailbox's sync through the real client against the emulator: the window newest first and
paced by quota units, then history (adds, label changes, deletes), and a full resync when Gmail
no longer holds the stored history, leaving the mirror equal to the mailbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gmail_service.google import UNITS
from pipedesk_common.auth import Role
from pipedesk_common.clock import ManualClock
from pipedesk_common.google.credentials import GoogleUser
from pipedesk_testkit.identities import Users

pytestmark = pytest.mark.asyncio
CUSTOMER = "buyer@customer.example"


def live(mailbox: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {m["id"]: sorted(m["labelIds"]) for m in mailbox if "TRASH" not in m["labelIds"]}


async def test_initial_window_newest_first_then_history_with_labels_and_deletes(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    address = rep.principal.email
    now = datetime.now(UTC)
    old = await stack.deliver(
        CUSTOMER, [address], subject="Too old", date=(now - timedelta(days=120)).isoformat()
    )
    first = await stack.deliver(
        CUSTOMER, [address], subject="Proposal", date=(now - timedelta(days=3)).isoformat()
    )
    second = await stack.deliver(
        CUSTOMER, [address], subject="Follow-up", date=(now - timedelta(days=1)).isoformat()
    )
    async with stack.start(window_days=90) as service:
        await stack.mailbox(service, rep)
        mirror = await stack.mirror(rep)
        assert set(mirror) == {first[address]["id"], second[address]["id"]}  # the window only
        assert old[address]["id"] not in mirror
        gets = await stack.calls(rep, "gmail.users.messages.get")
        # The listing is newest first; a part's messages are read up to 4 at once, in no set order.
        assert sorted(call["path"].rsplit("/", 1)[1] for call in gets) == sorted(
            [second[address]["id"], first[address]["id"]]
        )

        third = await stack.deliver(CUSTOMER, [address], subject="Signed")
        await stack.google.admin(
            "POST",
            f"/gmail/{address}/messages/{first[address]['id']}/labels",
            json={"remove": ["UNREAD"], "add": ["STARRED"]},
        )
        await stack.google.admin("DELETE", f"/gmail/{address}/messages/{second[address]['id']}")
        await stack.sync(service, rep)
        mirror = await stack.mirror(rep)
        assert set(mirror) == {first[address]["id"], third[address]["id"]}
        assert sorted(mirror[first[address]["id"]]["label_ids"]) == ["INBOX", "STARRED"]
        assert await stack.calls(rep, "gmail.users.history.list")
        deleted = await stack.announced("gmail.message.deleted", rep)
        assert [d["google_id"] for d in deleted] == [second[address]["id"]]
        assert deleted[0]["timeline"]["status"] == "removed"
        updated = await stack.announced("gmail.message.updated", rep)
        assert updated[-1]["label_ids"] == mirror[first[address]["id"]]["label_ids"]


async def test_expired_history_means_a_full_resync_equal_to_the_mailbox(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    address = rep.principal.email
    kept = await stack.deliver(CUSTOMER, [address], subject="Kept")
    dropped = await stack.deliver(CUSTOMER, [address], subject="Dropped")
    async with stack.start(pubsub_topic=None) as service:  # no push: the changes are missed
        await stack.mailbox(service, rep)
        await stack.deliver(CUSTOMER, [address], subject="New while away")
        await stack.google.admin("DELETE", f"/gmail/{address}/messages/{dropped[address]['id']}")
        await stack.google.admin(
            "POST",
            f"/gmail/{address}/messages/{kept[address]['id']}/labels",
            json={"add": ["IMPORTANT"]},
        )
        await stack.google.admin("POST", f"/gmail/{address}/history/expire")
        await stack.sync(service, rep)
        history = await stack.calls(rep, "gmail.users.history.list")
        assert history[-1]["status"] == 404
        mirror = await stack.mirror(rep)
        assert {k: sorted(v["label_ids"]) for k, v in mirror.items()} == live(
            await stack.google_mailbox(address)
        )
        # And history goes on from the resync's watermark.
        later = await stack.deliver(CUSTOMER, [address], subject="After the resync")
        await stack.sync(service, rep)
        assert later[address]["id"] in await stack.mirror(rep)
        assert (await stack.calls(rep, "gmail.users.history.list"))[-1]["status"] == 200


async def test_the_sync_is_paced_by_quota_units_on_the_clock(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    address = rep.principal.email
    for index in range(6):
        await stack.deliver(CUSTOMER, [address], subject=f"m{index}")
    clock = ManualClock(datetime.now(UTC))
    async with stack.start(
        clock, quota_units_per_second=10, quota_burst_units=10, page_size=4
    ) as service:
        await stack.mailbox(service, rep)
        user = GoogleUser(org_id=rep.principal.org_id, user_id=rep.principal.sub)
        budget = service.runtime.google.budget(user)
        calls = await stack.google.requests(user=address)
        assert len([c for c in calls if c["api"] == "gmail.users.messages.get"]) == 6
        assert len([c for c in calls if c["api"] == "gmail.users.messages.list"]) == 2
        spent = sum(
            UNITS[call["api"].removeprefix("gmail.")]
            for call in calls
            if call["api"].startswith("gmail.")
        )
        assert budget.spent == spent
        # Ten units a second, ten at once, and the clock never moved: every unit past the first
        # ten was waited for on the clock.
        assert budget.waited == pytest.approx((spent - 10) / 10)


async def test_hostile_malformed_and_foreign_mail_never_stops_the_sync(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    address = rep.principal.email
    fixtures = (
        "malformed.eml",
        "hostile-html.eml",
        "latin1.eml",
        "rfc2047-headers.eml",
        "html-only.eml",
        "with-attachment.eml",
    )
    recent = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    for fixture in fixtures:
        await stack.seed(address, fixture=fixture, internal_date=recent)
    async with stack.start() as service:
        await stack.mailbox(service, rep)
        mirror = await stack.mirror(rep)
        assert len(mirror) == len(fixtures)
        by_subject = {row["subject"]: row for row in mirror.values()}
        assert "Résumé et prévisions" in by_subject
        assert "見積Q4 見積もり" in by_subject
        hostile = by_subject["Invoice"]["html_body"]
        for inert in ("<script", "alert(", "onload", "onerror", "javascript:", "<iframe", "<form"):
            assert inert.lower() not in hostile.lower()
        [malformed_id] = [key for key, row in mirror.items() if row["problems"]]
        assert "NoBoundaryInMultipartDefect" in mirror[malformed_id]["problems"]
        # The run that read it names it in the mailbox's sync health, and goes on to the end.
        health = await stack.announced("gmail.sync.state_changed", rep)
        named = [
            h
            for h in health
            if h["last_error"] and h["last_error"]["type"].endswith("sync-items-read-in-part")
        ]
        assert named
        assert named[0]["state"] == "idle"
        assert malformed_id in named[0]["last_error"]["message"]
