"""Who sees what: the record first (404), then what the item's source shares."""

import asyncio
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest

from pipedesk_common.auth import Principal, Role
from pipedesk_common.clock import ManualClock, SystemClock
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.servers import serve_in_thread
from timeline_service.app import build_app
from timeline_service.service import entity_tag, visibility_class
from timeline_service.settings import TimelineSettings

pytestmark = pytest.mark.asyncio


async def test_record_access_decides_who_gets_the_timeline(
    timeline_app: OpenService, users: Users, feed
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    follower = users.make(Role.REP, teams=["t9"])
    lead = str(uuid4())
    async with timeline_app() as timeline:
        await feed.send(
            feed.access("lead", lead, owner, members={follower.sub: "follower"}),
            feed.item("m-acl", links=[("lead", lead)]),
            # Another org's item naming this lead stays that org's.
            feed.item("m-elsewhere", links=[("lead", lead)], org_id=f"org-{uuid4().hex[:12]}"),
        )
        assert len((await feed.page(timeline, follower, "lead", lead))["items"]) == 1
        assert len((await feed.page(timeline, owner, "lead", lead))["items"]) == 1
        for stranger in (
            users.make(Role.REP, teams=["t1"]),  # a rep without access
            users.make(Role.MANAGER, teams=["t2"]),  # a manager of another team
            users.other_org().make(Role.ADMIN, teams=["t1"]),
        ):
            response = await timeline.get(f"/api/timeline/lead/{lead}", headers=stranger.headers)
            assert response.status_code == 404
            ticket = await timeline.post(
                f"/api/timeline/lead/{lead}/stream-ticket", headers=stranger.headers
            )
            assert ticket.status_code == 404
            assert ticket.headers["content-type"] == "application/problem+json"
        no_token = await timeline.post(f"/api/timeline/lead/{lead}/stream-ticket")
        assert no_token.status_code == 401


async def test_a_private_meeting_is_busy_for_a_teammate_who_is_not_an_attendee(
    timeline_app: OpenService, users: Users, feed
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    attendee = users.make(Role.REP, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    lead = str(uuid4())
    async with timeline_app() as timeline:
        await feed.send(
            feed.access("lead", lead, owner, members={attendee.sub: "collaborator"}),
            feed.item(
                "m-private",
                title="Acquisition talks",
                summary="Confidential",
                participants=[owner.principal.email, attendee.principal.email.upper()],
                links=[("lead", lead)],
                private=True,
                owner_id=owner.sub,
            ),
        )
        for full_viewer in (owner, attendee):
            [item] = (await feed.page(timeline, full_viewer, "lead", lead))["items"]
            assert (item["title"], item["summary"], item["hidden"]) == (
                "Acquisition talks",
                "Confidential",
                None,
            )
        [busy] = (await feed.page(timeline, manager, "lead", lead))["items"]
        assert busy["title"] == "Busy"
        # What a Busy item keeps: that the meeting stands, and whose it is.
        assert (busy["status"], busy["actor_id"]) == ("confirmed", owner.sub)
        assert busy["summary"] is None
        assert busy["participants"] == []
        assert busy["source"] == {
            "service": busy["source"]["service"],
            "google_id": None,
            "url": None,
        }
        assert busy["hidden"] == {
            "reason": "private",
            "fields": ["title", "summary", "participants", "source.google_id", "source.url"],
        }
        # A search never matches what the viewer may not see.
        for hidden_text in ("Acquisition", "Confidential"):  # the title, the summary
            assert (await feed.page(timeline, manager, "lead", lead, q=hidden_text))["items"] == []
            found = await feed.page(timeline, attendee, "lead", lead, q=hidden_text.lower())
            assert len(found["items"]) == 1


async def test_mailbox_sharing_levels_hide_the_summary_or_the_subject(
    timeline_app: OpenService, users: Users, feed
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    lead = str(uuid4())
    async with timeline_app() as timeline:
        await feed.send(
            feed.access("lead", lead, owner),
            *(
                feed.item(
                    f"mail-{level}",
                    kind="email",
                    service="gmail",
                    title=f"Subject {level}",
                    summary=f"Body {level}",
                    links=[("lead", lead)],
                    sharing=level,
                    owner_id=owner.sub,
                    event_type="pipedesk.partner.message.received.v1",
                )
                for level in ("full", "subject", "metadata")
            ),
        )
        seen = {
            item["source"]["google_id"]: item
            for item in (await feed.page(timeline, manager, "lead", lead))["items"]
        }
        assert (seen["mail-full"]["title"], seen["mail-full"]["summary"]) == (
            "Subject full",
            "Body full",
        )
        assert (seen["mail-subject"]["title"], seen["mail-subject"]["summary"]) == (
            "Subject subject",
            None,
        )
        assert seen["mail-subject"]["hidden"] == {
            "reason": "mailbox_subject_only",
            "fields": ["summary"],
        }
        assert (seen["mail-metadata"]["title"], seen["mail-metadata"]["summary"]) == ("Email", None)
        assert seen["mail-metadata"]["hidden"] == {
            "reason": "mailbox_metadata_only",
            "fields": ["title", "summary"],
        }
        hits = await feed.page(timeline, manager, "lead", lead, q="body")
        assert [item["source"]["google_id"] for item in hits["items"]] == ["mail-full"]
        titled = await feed.page(timeline, manager, "lead", lead, q="subject")
        assert {item["source"]["google_id"] for item in titled["items"]} == {
            "mail-full",
            "mail-subject",
        }
        mine = await feed.page(timeline, owner, "lead", lead, q="body")
        assert len(mine["items"]) == 3


async def test_contact_timelines_show_only_what_a_lead_or_deal_or_own_sources_allow(
    timeline_app: OpenService, users: Users, feed
) -> None:
    ada, bob = users.make(Role.REP, teams=["t1"]), users.make(Role.REP, teams=["t1"])
    casey, drew, ada_lead = str(uuid4()), str(uuid4()), str(uuid4())

    async def seen(user: ActingUser, contact: str) -> set[str]:
        page = await feed.page(timeline, user, "contact", contact)
        return {item["source"]["google_id"] for item in page["items"]}

    async with timeline_app() as timeline:
        await feed.send(
            feed.access("lead", ada_lead, ada),
            feed.contact(casey, ["casey@acme.test"]),
            feed.contact(drew, ["drew@acme.test"]),
            feed.lead(ada_lead, ada, [casey]),
        )
        await feed.send(
            feed.item("m-ada", participants=["casey@acme.test"], owner_id=ada.sub),
            feed.item("m-bob-own", participants=["drew@acme.test"], owner_id=bob.sub),
            feed.item("n-drew", kind="note", service="crm", links=[("contact", drew)]),
        )
        assert await seen(ada, casey) == {"m-ada"}  # through her lead
        assert await seen(bob, casey) == set()  # no lead or deal of his, not his source
        assert await seen(bob, drew) == {"m-bob-own", "n-drew"}  # his own calendar
        assert await seen(ada, drew) == {"n-drew"}  # the contact's own history only
        [item] = (await feed.page(timeline, ada, "contact", casey))["items"]
        assert {(link["type"], link["id"]) for link in item["links"]} == {
            ("contact", casey),
            ("lead", ada_lead),
        }
        admin = users.make(Role.ADMIN)
        [admin_item] = (await feed.page(timeline, admin, "contact", casey))["items"]
        assert len(admin_item["links"]) == 2
        [bob_item] = (await feed.page(timeline, bob, "contact", drew, kinds="meeting"))["items"]
        assert bob_item["links"] == [{"type": "contact", "id": drew}]
        other = users.other_org().make(Role.ADMIN)
        refused = await timeline.get(f"/api/timeline/contact/{casey}", headers=other.headers)
        assert refused.status_code == 404
        unknown = await timeline.get(f"/api/timeline/contact/{uuid4()}", headers=ada.headers)
        assert unknown.status_code == 404
        await feed.send(feed.contact(casey, ["casey@acme.test"], deleted=True))
        trashed = await timeline.get(f"/api/timeline/contact/{casey}", headers=ada.headers)
        assert trashed.status_code == 404


async def test_a_record_is_its_type_and_its_id(
    timeline_app: OpenService, users: Users, feed
) -> None:
    """Reading one lead, or a deal under another lead's id, shows a viewer neither that other
    lead's items on a contact's timeline nor that lead among an item's links; a contact's id
    names no company."""
    ada, bob = users.make(Role.REP, teams=["t1"]), users.make(Role.REP, teams=["t1"])
    casey, ada_lead, bob_lead = str(uuid4()), str(uuid4()), str(uuid4())
    async with timeline_app() as timeline:
        await feed.send(
            feed.access("lead", ada_lead, ada),
            feed.access("lead", bob_lead, bob),
            feed.access("deal", ada_lead, bob),
            feed.contact(casey, ["casey@acme.test"]),
            feed.lead(ada_lead, ada, [casey]),
        )
        await feed.send(
            feed.item("m-ada", participants=["casey@acme.test"], owner_id=ada.sub),
            feed.item("m-bob", participants=["casey@acme.test"], owner_id=bob.sub),
        )
        [item] = (await feed.page(timeline, bob, "contact", casey))["items"]
        assert item["source"]["google_id"] == "m-bob"  # his own; ada's only through her lead
        assert item["links"] == [{"type": "contact", "id": casey}]
        page = await feed.page(timeline, ada, "contact", casey)
        assert {item["source"]["google_id"] for item in page["items"]} == {"m-ada", "m-bob"}
        company = await timeline.get(f"/api/timeline/company/{casey}", headers=bob.headers)
        assert company.status_code == 404


async def test_through_a_lead_a_contacts_timeline_shows_an_item_to_the_leads_readers(
    timeline_app: OpenService, users: Users, feed
) -> None:
    """Exactly who may read the lead sees its item on the contact's timeline, with the lead among
    its links: the lead's owner, its members, its team's managers, the org's admins; once the
    lead is deleted, none of them but the item's own holder, and the lead is no longer a link."""
    owner = users.make(Role.REP, teams=["t1"])
    member = users.make(Role.REP, teams=["t2"])
    manager, admin = users.make(Role.MANAGER, teams=["t1"]), users.make(Role.ADMIN, teams=["t9"])
    outsiders = (users.make(Role.REP, teams=["t1"]), users.make(Role.MANAGER, teams=["t2"]))
    casey, lead = str(uuid4()), str(uuid4())
    members = {member.sub: "follower"}

    async def links(user: ActingUser) -> list[list[dict[str, str]]]:
        page = await feed.page(timeline, user, "contact", casey)
        return [item["links"] for item in page["items"]]

    async with timeline_app() as timeline:
        await feed.send(
            feed.access("lead", lead, owner, members=members),
            feed.contact(casey, ["casey@acme.test"]),
            feed.lead(lead, owner, [casey]),
        )
        await feed.send(feed.item("m-lead", participants=["casey@acme.test"], owner_id=owner.sub))
        contact_link, lead_link = {"type": "contact", "id": casey}, {"type": "lead", "id": lead}
        for reader in (owner, member, manager, admin):
            assert await links(reader) == [[contact_link, lead_link]]
        for outsider in outsiders:
            assert await links(outsider) == []
        await feed.send(feed.access("lead", lead, owner, members=members, deleted=True))
        for reader in (member, manager, admin):
            assert await links(reader) == []
        assert await links(owner) == [[contact_link]]


async def test_deal_and_company_timelines_follow_the_same_rules(
    timeline_app: OpenService, users: Users, feed
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    viewer = users.make(Role.VIEWER, teams=["t1"])
    deal, company, contact = str(uuid4()), str(uuid4()), str(uuid4())
    async with timeline_app() as timeline:
        await feed.send(
            feed.access("deal", deal, owner),
            feed.company(company),
            feed.contact(contact, ["buyer@acme.test"]),
            feed.deal(deal, owner, [contact]),
        )
        await feed.send(
            feed.item("m-deal", participants=["buyer@acme.test"], owner_id=owner.sub),
            feed.item("f-company", kind="file", service="drive", links=[("company", company)]),
            feed.item(
                "m-company-private-source",
                links=[("company", company)],
                owner_id="someone-else",
            ),
        )
        for reader in (owner, viewer):  # a viewer reads their team's deals
            page = await feed.page(timeline, reader, "deal", deal)
            assert [item["source"]["google_id"] for item in page["items"]] == ["m-deal"]
        for stranger in (users.make(Role.MANAGER, teams=["t2"]), users.make(Role.REP)):
            refused = await timeline.get(f"/api/timeline/deal/{deal}", headers=stranger.headers)
            assert refused.status_code == 404
        company_page = await feed.page(timeline, viewer, "company", company)
        assert [item["source"]["google_id"] for item in company_page["items"]] == ["f-company"]
        await feed.send(feed.company(company, deleted=True))
        gone = await timeline.get(f"/api/timeline/company/{company}", headers=owner.headers)
        assert gone.status_code == 404


async def test_an_item_seen_whole_shows_its_status_author_source_and_series(
    timeline_app: OpenService, users: Users, feed
) -> None:
    """A series' next occurrence counts from the current minute: an occurrence at its start
    is still the next one until the minute is over."""
    owner = users.make(Role.REP, teams=["t1"])
    lead = str(uuid4())
    now = SystemClock().now()
    first = now.replace(second=0, microsecond=0)
    weekly = {"rule": ["RRULE:FREQ=WEEKLY;COUNT=4"], "time_zone": "Europe/Paris", "all_day": False}
    clock = ManualClock(now)
    async with timeline_app(clock=clock) as timeline:
        await feed.send(
            feed.access("lead", lead, owner),
            feed.item(
                "m-series",
                links=[("lead", lead)],
                occurred_at=first,
                owner_id=owner.sub,
                recurrence=weekly,
            ),
        )
        [item] = (await feed.page(timeline, owner, "lead", lead))["items"]
    assert (item["status"], item["actor_id"]) == ("confirmed", owner.sub)
    assert item["source"]["url"] == "https://calendar.google.com/event?eid=m-series"
    series = item["series"]
    assert datetime.fromisoformat(series.pop("next_occurrence")) == first
    assert series == weekly


async def first_item(stream: httpx.Response) -> dict[str, Any]:
    """The data of the first ``item`` event of a server-sent event stream."""
    event = None
    async with asyncio.timeout(30):
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:") and event == "item":
                item: dict[str, Any] = json.loads(line.partition(":")[2])
                return item
    raise AssertionError("the stream ended without an item")


async def test_a_stream_ticket_carries_its_viewers_teams_and_address(
    service_env: dict[str, str], users: Users, feed
) -> None:
    """A manager reads a teammate's lead through their team, and a private meeting they attend
    in full; the stream their ticket opens does too."""
    owner = users.make(Role.REP, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    lead = str(uuid4())
    with serve_in_thread(build_app(TimelineSettings(**service_env))) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as timeline:
            await feed.send(feed.access("lead", lead, owner))
            ticket = await timeline.post(
                f"/api/timeline/lead/{lead}/stream-ticket", headers=manager.headers
            )
            assert ticket.status_code == 201, ticket.text
            path = f"/api/timeline/lead/{lead}/stream"
            params = {"ticket": ticket.json()["ticket"]}
            async with timeline.stream("GET", path, params=params) as opened:
                assert opened.status_code == 200
                await feed.publish(
                    feed.item(
                        "m-attended",
                        title="Pricing call",
                        participants=[manager.principal.email],
                        links=[("lead", lead)],
                        private=True,
                        owner_id=owner.sub,
                    )
                )
                item = await first_item(opened)
    assert (item["title"], item["hidden"]) == ("Pricing call", None)


ANN = Principal(
    sub="u1",
    email="Strasse@Example.com",
    org_id="o1",
    role=Role.REP,
    team_ids=frozenset({"t2", "t1"}),
)


async def test_a_viewers_class_tells_apart_whatever_changes_what_they_see() -> None:
    same = replace(ANN, email="strasse@example.com", team_ids=frozenset({"t1", "t2"}))
    assert visibility_class(same) == visibility_class(ANN)
    others = [
        replace(ANN, role=Role.MANAGER),
        replace(ANN, email="bob@example.com"),
        # attendees are matched by address: ß is not ss
        replace(ANN, email="straße@example.com"),
        replace(ANN, team_ids=frozenset({"t1"})),
    ]
    classes = {visibility_class(principal) for principal in [ANN, *others]}
    assert len(classes) == 1 + len(others)


async def test_an_entity_tag_is_weak_and_made_from_the_query_not_its_order() -> None:
    query = {"kinds": ["meeting"], "since": datetime(2030, 1, 1, tzinfo=UTC), "limit": 50}
    tag = entity_tag(3, 4, ANN, query)
    assert re.fullmatch(r'W/"[0-9a-f]+"', tag)
    assert entity_tag(3, 4, ANN, dict(reversed(query.items()))) == tag
    assert entity_tag(3, 5, ANN, query) != tag
    assert entity_tag(3, 4, ANN, {**query, "limit": 51}) != tag
