"""One item per message or meeting, however many mailboxes and calendars hold a copy: copies with
one identity are one item with several holders, each copy version-gated on its own, each shown
only under its own holder's sharing."""

import asyncio
import json
from functools import partial
from typing import Any
from uuid import uuid4

import httpx
import pytest
from redis.asyncio import Redis

from pipedesk_common.auth import Role
from pipedesk_common.db import connect_raw
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.servers import serve_in_thread
from timeline_service.app import build_app
from timeline_service.settings import TimelineSettings

pytestmark = pytest.mark.asyncio

DELIVERY_LIMIT_SECONDS = 10
REDIS_URL = "redis://127.0.0.1:6379/0"


async def holder_rows(
    database_url: str, org_id: str
) -> dict[str, tuple[str, str | None, bool, int]]:
    """Every copy the timeline holds in the org: source key → (item, owner, held, version)."""
    connection = await connect_raw(database_url)
    try:
        rows = await connection.fetch(
            "SELECT source_key, item_id::text AS item, owner_id, held, version "
            "FROM timeline.holders WHERE org_id = $1",
            org_id,
        )
    finally:
        await connection.close()
    return {
        row["source_key"]: (row["item"], row["owner_id"], row["held"], row["version"])
        for row in rows
    }


async def item_count(database_url: str, org_id: str) -> int:
    connection = await connect_raw(database_url)
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM timeline.items WHERE org_id = $1", org_id
        )
    finally:
        await connection.close()
    return int(count)


def mail_copy(feed: Any, holder: ActingUser, lead: str, *, version: int = 1, **fields: Any) -> Any:
    """One mailbox's copy of the message ``<q3-terms@acme.test>``."""
    values: dict[str, Any] = {
        "kind": "email",
        "service": "gmail",
        "title": "Q3 terms",
        "summary": "Discount of 12% if signed by Friday",
        "links": [("lead", lead)],
        "owner_id": holder.sub,
        "identity": "<q3-terms@acme.test>",
        "status": None,
        "event_type": "pipedesk.partner.message.received.v1",
        **fields,
    }
    return feed.item(f"mail-{holder.sub}", version=version, **values)


def meeting_copy(feed: Any, meeting: str, holder: ActingUser, **fields: Any) -> Any:
    """One calendar's copy of the meeting whose iCalUID is ``<meeting>@google.com``."""
    values: dict[str, Any] = {"identity": f"{meeting}@google.com", **fields}
    return feed.item(f"{meeting}-{holder.sub}", owner_id=holder.sub, **values)


async def test_copies_with_one_identity_are_one_item_held_by_each_holder(
    timeline_app: OpenService, users: Users, feed, database_url: str
) -> None:
    organizer = users.make(Role.REP, teams=["t1"])
    teammate = users.make(Role.REP, teams=["t1"])
    lead = str(uuid4())
    participants = [organizer.principal.email, teammate.principal.email]
    copy = partial(meeting_copy, feed, "kickoff", title="Acme kick-off", participants=participants)
    async with timeline_app() as timeline:
        await feed.send(feed.access("lead", lead, organizer))
        await feed.send(copy(organizer, links=[("lead", lead)]))
        [first] = (await feed.page(timeline, organizer, "lead", lead))["items"]
        await feed.send(copy(teammate))  # the teammate's copy names no record
        [item] = (await feed.page(timeline, organizer, "lead", lead))["items"]
        assert item["id"] == first["id"]
        assert [link["id"] for link in item["links"]] == [lead]
    held = await holder_rows(database_url, feed.org_id)
    assert held == {
        f"calendar:kickoff-{organizer.sub}": (first["id"], organizer.sub, True, 1),
        f"calendar:kickoff-{teammate.sub}": (first["id"], teammate.sub, True, 1),
    }
    assert await item_count(database_url, feed.org_id) == 1


async def test_a_viewer_sees_the_most_permissive_holders_copy_and_less_once_it_leaves(
    timeline_app: OpenService, users: Users, feed, database_url: str
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    colleague = users.make(Role.MANAGER, teams=["t1"])  # the third user
    lead = str(uuid4())
    async with timeline_app() as timeline:
        await feed.send(feed.access("lead", lead, rep))
        await feed.send(
            mail_copy(feed, rep, lead, sharing="metadata"),
            mail_copy(feed, manager, lead, sharing="full"),
        )
        [item] = (await feed.page(timeline, colleague, "lead", lead))["items"]
        assert (item["title"], item["summary"], item["hidden"]) == (
            "Q3 terms",
            "Discount of 12% if signed by Friday",
            None,
        )
        found = await feed.page(timeline, colleague, "lead", lead, q="discount")
        assert [hit["id"] for hit in found["items"]] == [item["id"]]
        # The manager deletes their copy: the rep's mailbox, shared at metadata level, is left.
        await feed.send(mail_copy(feed, manager, lead, version=2, sharing="full", status="deleted"))
        [narrowed] = (await feed.page(timeline, colleague, "lead", lead))["items"]
        assert narrowed["id"] == item["id"]
        assert (narrowed["title"], narrowed["summary"]) == ("Email", None)
        assert narrowed["hidden"] == {
            "reason": "mailbox_metadata_only",
            "fields": ["title", "summary"],
        }
        assert narrowed["status"] is None  # the rep's copy, still in their mailbox
        assert (await feed.page(timeline, colleague, "lead", lead, q="discount"))["items"] == []
        # Holders see their own copy whole, whatever its sharing.
        [own] = (await feed.page(timeline, rep, "lead", lead))["items"]
        assert (own["title"], own["hidden"]) == ("Q3 terms", None)
    held = await holder_rows(database_url, feed.org_id)
    assert {key: (owner, live) for key, (_, owner, live, _) in held.items()} == {
        f"gmail:mail-{rep.sub}": (rep.sub, True),
        f"gmail:mail-{manager.sub}": (manager.sub, False),
    }


async def test_a_copys_content_is_never_shown_under_another_copys_sharing(
    timeline_app: OpenService, users: Users, feed
) -> None:
    """A copy claiming a message's identity (a forged ``Message-ID``) adds only itself: readers
    see its content at its holder's level, never the other copy's content at that level."""
    rep = users.make(Role.REP, teams=["t1"])
    forger = users.make(Role.REP, teams=["t1"])
    reader = users.make(Role.MANAGER, teams=["t1"])
    lead = str(uuid4())
    async with timeline_app() as timeline:
        await feed.send(feed.access("lead", lead, rep))
        await feed.send(mail_copy(feed, rep, lead, sharing="metadata"))
        await feed.send(
            mail_copy(feed, forger, lead, sharing="full", title="Lunch?", summary="Tacos")
        )
        await feed.send(mail_copy(feed, rep, lead, version=2, sharing="metadata"))  # newest
        [item] = (await feed.page(timeline, reader, "lead", lead))["items"]
        assert (item["title"], item["summary"], item["hidden"]) == ("Lunch?", "Tacos", None)
        for text in ("Q3", "Discount"):
            assert (await feed.page(timeline, reader, "lead", lead, q=text))["items"] == []
        [own] = (await feed.page(timeline, rep, "lead", lead))["items"]
        assert own["title"] == "Q3 terms"


async def test_a_private_meeting_is_busy_unless_some_holder_shows_it_to_the_viewer(
    timeline_app: OpenService, users: Users, feed
) -> None:
    organizer = users.make(Role.REP, teams=["t1"])
    attendee = users.make(Role.REP, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    lead = str(uuid4())
    participants = [organizer.principal.email, attendee.principal.email]
    copy = partial(
        meeting_copy, feed, "board", title="Board prep", participants=participants,
        links=[("lead", lead)],
    )  # fmt: skip
    async with timeline_app() as timeline:
        await feed.send(feed.access("lead", lead, organizer, members={attendee.sub: "follower"}))
        await feed.send(copy(organizer, private=True), copy(attendee, private=False))
        [item] = (await feed.page(timeline, manager, "lead", lead))["items"]
        assert (item["title"], item["hidden"]) == ("Board prep", None)
        await feed.send(copy(attendee, version=2, status="cancelled"))
        [busy] = (await feed.page(timeline, manager, "lead", lead))["items"]
        assert (busy["title"], busy["participants"], busy["hidden"]["reason"]) == (
            "Busy",
            [],
            "private",
        )
        for participant in (organizer, attendee):  # the item's own participants see it all
            [seen] = (await feed.page(timeline, participant, "lead", lead))["items"]
            assert (seen["title"], seen["status"], seen["hidden"]) == (
                "Board prep",
                "confirmed",
                None,
            )


async def test_a_meeting_stays_until_its_last_holder_cancels_it_then_shows_cancelled(
    timeline_app: OpenService, users: Users, feed, database_url: str
) -> None:
    """Of copies shown alike (held or not, at one level), the newest is the one shown."""
    # The teammate's copy comes first by its key: only its age puts the organizer's first.
    organizer = users.make(Role.REP, teams=["t1"], sub=f"z-organizer-{uuid4().hex[:8]}")
    teammate = users.make(Role.REP, teams=["t1"], sub=f"a-teammate-{uuid4().hex[:8]}")
    lead = str(uuid4())
    copy = partial(meeting_copy, feed, "sync", links=[("lead", lead)])
    async with timeline_app() as timeline:
        await feed.send(feed.access("lead", lead, organizer))
        await feed.send(copy(organizer, title="Weekly sync"), copy(teammate, title="Weekly sync"))
        # The teammate removes it from their calendar; the organizer's copy still holds it.
        await feed.send(copy(teammate, version=2, title="Weekly sync", status="cancelled"))
        [item] = (await feed.page(timeline, organizer, "lead", lead))["items"]
        assert item["status"] == "confirmed"
        # The organizer moves it, then cancels it (Google cancels every copy).
        await feed.send(copy(organizer, version=2, title="Weekly sync (moved)"))
        await feed.send(copy(organizer, version=3, title="Weekly sync (moved)", status="cancelled"))
        [cancelled] = (await feed.page(timeline, organizer, "lead", lead))["items"]
        assert (cancelled["id"], cancelled["title"], cancelled["status"]) == (
            item["id"],
            "Weekly sync (moved)",
            "cancelled",
        )
    assert {live for _, _, live, _ in (await holder_rows(database_url, feed.org_id)).values()} == {
        False
    }


async def test_a_message_leaves_the_timeline_once_every_mailbox_removed_it(
    timeline_app: OpenService, users: Users, feed
) -> None:
    rep, manager = users.make(Role.REP, teams=["t1"]), users.make(Role.MANAGER, teams=["t1"])
    lead = str(uuid4())
    async with timeline_app() as timeline:
        await feed.send(feed.access("lead", lead, rep))
        await feed.send(mail_copy(feed, rep, lead), mail_copy(feed, manager, lead))
        await feed.send(mail_copy(feed, rep, lead, version=2, status="removed", title="(removed)"))
        [item] = (await feed.page(timeline, manager, "lead", lead))["items"]
        assert (item["title"], item["status"]) == ("Q3 terms", None)  # the manager's copy
        await feed.send(mail_copy(feed, manager, lead, version=2, status="removed"))
        assert (await feed.page(timeline, manager, "lead", lead))["items"] == []
        await feed.send(mail_copy(feed, manager, lead))  # an older version changes nothing
        assert (await feed.page(timeline, rep, "lead", lead))["items"] == []


async def test_redelivered_and_out_of_order_copies_give_one_item_and_the_right_holders(
    timeline_app: OpenService, users: Users, feed, database_url: str
) -> None:
    rep, manager = users.make(Role.REP, teams=["t1"]), users.make(Role.MANAGER, teams=["t1"])
    lead = str(uuid4())
    rep_v1 = mail_copy(feed, rep, lead, title="Terms v1")
    manager_v1 = mail_copy(feed, manager, lead, title="Terms v1")
    rep_v2 = mail_copy(feed, rep, lead, version=2, title="Terms v2", status="deleted")
    manager_v2 = mail_copy(feed, manager, lead, version=2, title="Terms v2")
    manager_v2_again = mail_copy(feed, manager, lead, version=2, title="Terms v2 (again)")
    async with timeline_app() as timeline:
        await feed.send(feed.access("lead", lead, rep))
        await feed.send(rep_v2, manager_v1)  # the rep's newer version first
        await feed.send(rep_v1, manager_v2, manager_v2)  # then an older one; a duplicate
        await feed.send(manager_v1, manager_v2_again)  # an old one again; the same version anew
        page = await feed.page(timeline, rep, "lead", lead)
        [item] = page["items"]
        assert (item["title"], item["status"]) == ("Terms v2", None)  # the manager's live copy
    held = await holder_rows(database_url, feed.org_id)
    assert held == {
        f"gmail:mail-{rep.sub}": (item["id"], rep.sub, False, 2),
        f"gmail:mail-{manager.sub}": (item["id"], manager.sub, True, 2),
    }
    assert await item_count(database_url, feed.org_id) == 1


async def test_copies_recorded_before_identities_merge_into_one_item_as_they_change(
    timeline_app: OpenService, users: Users, feed, database_url: str
) -> None:
    organizer = users.make(Role.REP, teams=["t1"])
    teammate = users.make(Role.REP, teams=["t1"])
    lead = str(uuid4())
    copy = partial(meeting_copy, feed, "legacy", links=[("lead", lead)])
    async with timeline_app() as timeline:
        await feed.send(feed.access("lead", lead, organizer))
        # Recorded before copies carried an identity: an item each.
        await feed.send(copy(organizer, identity=None), copy(teammate, identity=None))
        assert len((await feed.page(timeline, organizer, "lead", lead))["items"]) == 2
        await feed.send(copy(organizer, version=2))
        await feed.send(copy(teammate, version=2))
        [item] = (await feed.page(timeline, organizer, "lead", lead))["items"]
    held = await holder_rows(database_url, feed.org_id)
    assert {item_id for item_id, _, _, _ in held.values()} == {item["id"]}
    assert await item_count(database_url, feed.org_id) == 1


async def test_a_holder_arriving_or_leaving_changes_the_item_once(
    service_env: dict[str, str], users: Users, feed, broker_prefix: str
) -> None:
    """The record's version moves by one, the page's ETag (the page cache's key) changes, and
    the stream sends the one item once, for a second holder's copy arriving and for it leaving."""
    rep, manager = users.make(Role.REP, teams=["t1"]), users.make(Role.MANAGER, teams=["t1"])
    reader = users.make(Role.MANAGER, teams=["t1"])  # sees what the holders share
    lead = str(uuid4())
    path = f"/api/timeline/lead/{lead}"
    settings = TimelineSettings(**{**service_env, "REDIS_URL": REDIS_URL})
    redis = Redis.from_url(REDIS_URL)
    try:
        with serve_in_thread(build_app(settings)) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as timeline:
                await feed.send(feed.access("lead", lead, rep))
                await feed.send(mail_copy(feed, rep, lead, sharing="metadata"))
                before = await timeline.get(path, headers=reader.headers)
                cached = await redis.get(f"{broker_prefix}timeline:page:{before.headers['etag']}")
                ticket = await timeline.post(f"{path}/stream-ticket", headers=reader.headers)
                params = {"ticket": ticket.json()["ticket"]}
                headers = {"Last-Event-ID": before.headers["Timeline-Version"]}
                async with timeline.stream(
                    "GET", f"{path}/stream", params=params, headers=headers
                ) as live:
                    lines = live.aiter_lines()
                    await feed.send(mail_copy(feed, manager, lead, sharing="full"))
                    arrived = await next_item(lines)
                    after_arrival = await timeline.get(
                        path, headers={**reader.headers, "If-None-Match": before.headers["etag"]}
                    )
                    await feed.send(mail_copy(feed, manager, lead, version=2, status="deleted"))
                    left = await next_item(lines)
                    await feed.send(feed.item("marker", links=[("lead", lead)]))
                    marker = await next_item(lines)
                after_leaving = await timeline.get(path, headers=reader.headers)
    finally:
        await redis.aclose()
    [item] = before.json()["items"]
    assert cached == before.content
    assert [arrived["id"], left["id"], marker["id"]] == [
        str(int(before.headers["Timeline-Version"]) + n) for n in (1, 2, 3)
    ]
    assert arrived["data"]["id"] == left["data"]["id"] == item["id"]
    assert [arrived["data"]["title"], left["data"]["title"]] == ["Q3 terms", "Email"]
    assert marker["data"]["source"]["google_id"] == "marker"  # nothing in between
    assert after_arrival.status_code == 200
    assert [(found["id"], found["title"]) for found in after_arrival.json()["items"]] == [
        (item["id"], "Q3 terms")
    ]
    assert [found["title"] for found in after_leaving.json()["items"]] == [
        "Quarterly review",
        "Email",
    ]
    assert after_leaving.headers["etag"] not in {
        before.headers["etag"],
        after_arrival.headers["etag"],
    }


async def next_item(lines: Any) -> dict[str, Any]:
    """The next ``item`` event of a Server-Sent Events stream: its ``id`` and its ``data``."""
    async with asyncio.timeout(DELIVERY_LIMIT_SECONDS):
        event: dict[str, Any] = {}
        async for line in lines:
            if line.startswith("event: "):
                event = {"event": line.removeprefix("event: ")}
            elif line.startswith("id: "):
                event["id"] = line.removeprefix("id: ")
            elif line.startswith("data: ") and event.get("event") == "item":
                return {"id": event.get("id"), "data": json.loads(line.removeprefix("data: "))}
    raise AssertionError("the stream ended")
