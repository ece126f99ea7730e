"""Items from events: one item per source object, matched to records through participants."""

import json
import re
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_common.clock import SystemClock
from pipedesk_common.db import connect_raw
from pipedesk_common.dlq import list_dead_letters
from pipedesk_common.events import new_event
from pipedesk_common.events.crm import UserCreated
from pipedesk_common.messaging import Topology
from pipedesk_testkit.identities import Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.waiting import eventually
from timeline_service.app import ITEMS_QUEUE

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


async def link_rows(database_url: str, org_id: str) -> list[tuple[str, str, str]]:
    connection = await connect_raw(database_url)
    try:
        rows = await connection.fetch(
            "SELECT h.source_key, l.record_type, l.record_id FROM timeline.links l "
            "JOIN timeline.holders h ON h.item_id = l.item_id WHERE l.org_id = $1",
            org_id,
        )
    finally:
        await connection.close()
    return sorted((row["source_key"], row["record_type"], row["record_id"]) for row in rows)


async def metric(client: httpx.AsyncClient, name: str) -> float:
    text = (await client.get("/metrics")).text
    pattern = rf'^{name}\{{queue="{re.escape(ITEMS_QUEUE)}"\}} (\S+)$'
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_versions_in_any_order_and_repeated_yield_one_item_with_the_newest(
    timeline_app: OpenService, users: Users, feed, database_url: str
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    lead_id = str(uuid4())
    versions = {
        n: feed.item("evt-1", version=n, title=f"Review v{n}", links=[("lead", lead_id)])
        for n in (1, 2, 3)
    }
    cancelled = feed.item(
        "evt-1", version=4, title="Review v4", status="cancelled", links=[("lead", lead_id)]
    )
    async with timeline_app() as timeline:
        await feed.send(feed.access("lead", lead_id, owner))
        await feed.send(versions[2], versions[2])  # a duplicate
        await feed.send(versions[3], versions[1])  # out of order: 1 arrives after 3
        page = await feed.page(timeline, owner, "lead", lead_id)
        assert [item["title"] for item in page["items"]] == ["Review v3"]
        await feed.send(versions[2])  # an older version redelivered later changes nothing
        assert (await feed.page(timeline, owner, "lead", lead_id))["items"] == page["items"]
        await feed.send(cancelled)
        [item] = (await feed.page(timeline, owner, "lead", lead_id))["items"]
        assert (item["title"], item["status"], item["id"]) == (
            "Review v4",
            "cancelled",
            page["items"][0]["id"],
        )
    assert await link_rows(database_url, feed.org_id) == [("calendar:evt-1", "lead", lead_id)]


async def test_an_event_redelivered_after_its_inbox_entry_is_gone_changes_nothing(
    timeline_app: OpenService, users: Users, feed, database_url: str
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    lead_id = str(uuid4())
    event = feed.item("evt-crash", title="Only once", links=[("lead", lead_id)])
    async with timeline_app() as timeline:
        await feed.send(feed.access("lead", lead_id, owner), event)
        first = await feed.page(timeline, owner, "lead", lead_id)
        # As after a crash between commit and ack, once the inbox forgot the event id.
        connection = await connect_raw(database_url)
        try:
            await connection.execute(
                "DELETE FROM timeline.inbox WHERE event_id = $1::uuid", event.id
            )
        finally:
            await connection.close()
        await feed.send(event)
        assert await feed.page(timeline, owner, "lead", lead_id) == first
        assert len(first["items"]) == 1


async def test_unknown_types_are_acked_and_counted_and_malformed_ones_dead_lettered(
    timeline_app: OpenService, users: Users, feed, service_env: dict[str, str]
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    lead_id = str(uuid4())
    no_projection = new_event(
        UserCreated(id="u9", version=1, org_id=feed.org_id, email=None, name=None, role="rep",
                    team_ids=[]),
        org_id=feed.org_id, actor_id=None, time=SystemClock().now(),
    )  # fmt: skip
    future_type = feed.item(
        "mail-1",
        kind="email",
        service="gmail",
        event_type="pipedesk.partner.message.received.v1",
        links=[("lead", lead_id)],
    )
    unknown_without_projection = feed.item("x", event_type="pipedesk.billing.invoice.paid.v1")
    unknown_without_projection = type(unknown_without_projection)(
        unknown_without_projection.id,
        unknown_without_projection.routing_key,
        json.dumps({**json.loads(unknown_without_projection.body), "data": {"amount": 3}}).encode(),
    )
    broken = feed.item("y", event_type="pipedesk.partner.message.received.v1")
    broken_body = json.loads(broken.body)
    broken_body["data"]["timeline"]["kind"] = "gossip"
    async with timeline_app() as timeline:
        unknown_before = await metric(timeline, "pipedesk_events_unknown_total")
        dead_before = await metric(timeline, "pipedesk_events_dead_lettered_total")
        await feed.send(feed.access("lead", lead_id, owner))
        await feed.publish(
            no_projection,
            unknown_without_projection,
            type(broken)(broken.id, broken.routing_key, json.dumps(broken_body).encode()),
            future_type,
        )
        await feed.processed(future_type)
        [item] = (await feed.page(timeline, owner, "lead", lead_id))["items"]
        assert (item["kind"], item["source"]["service"]) == ("email", "gmail")
        await eventually(
            lambda: metric(timeline, "pipedesk_events_unknown_total"),
            until=lambda value: value >= unknown_before + 2,
        )
        await eventually(
            lambda: metric(timeline, "pipedesk_events_dead_lettered_total"),
            until=lambda value: value >= dead_before + 1,
        )
    queue = Topology(service_env["BROKER_PREFIX"]).queue(ITEMS_QUEUE)
    letters = await list_dead_letters(service_env["AMQP_URL"], queue)
    assert broken.id in {letter.event_id for letter in letters}


async def test_a_meeting_with_a_contacts_second_address_attaches_to_it_and_its_open_records(
    timeline_app: OpenService, users: Users, feed, database_url: str
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    contact, lead, deal, won, converted = (str(uuid4()) for _ in range(5))
    async with timeline_app():
        await feed.send(
            feed.contact(contact, ["casey@acme.test", "c.casey@home.test"]),
            feed.lead(lead, owner, [contact]),
            feed.deal(deal, owner, [contact]),
            feed.deal(won, owner, [contact], stage="won"),
            feed.lead(converted, owner, [contact], status="converted"),
        )
        await feed.send(feed.item("m-1", participants=["C.Casey@Home.test", "rep@us.test"]))
    assert await link_rows(database_url, feed.org_id) == sorted(
        [
            ("calendar:m-1", "contact", contact),
            ("calendar:m-1", "lead", lead),
            ("calendar:m-1", "deal", deal),
        ]
    )


async def test_adding_an_address_or_a_contact_later_attaches_earlier_items_once(
    timeline_app: OpenService, users: Users, feed, database_url: str
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    contact, lead = str(uuid4()), str(uuid4())
    earlier = feed.item("m-early", participants=["new@acme.test"], occurred_at=T0)
    async with timeline_app() as timeline:
        await feed.send(
            feed.access("lead", lead, owner),
            feed.contact(contact, ["old@acme.test"]),
            feed.lead(lead, owner, []),
            earlier,
        )
        assert await link_rows(database_url, feed.org_id) == []
        await feed.send(feed.contact(contact, ["old@acme.test", "new@acme.test"]))
        assert await link_rows(database_url, feed.org_id) == [
            ("calendar:m-early", "contact", contact)
        ]
        await feed.send(feed.lead(lead, owner, [contact]))
        expected = [("calendar:m-early", "contact", contact), ("calendar:m-early", "lead", lead)]
        assert await link_rows(database_url, feed.org_id) == expected
        version_before = (await timeline.get(
            f"/api/timeline/lead/{lead}", headers=owner.headers
        )).headers["Timeline-Version"]  # fmt: skip
        # Replays of the index changes (new versions, same content) add nothing.
        await feed.send(feed.contact(contact, ["old@acme.test", "new@acme.test"]))
        await feed.send(feed.lead(lead, owner, [contact]))
        assert await link_rows(database_url, feed.org_id) == expected
        page = await feed.page(timeline, owner, "lead", lead)
        assert [item["title"] for item in page["items"]] == ["Quarterly review"]
        version_after = (await timeline.get(
            f"/api/timeline/lead/{lead}", headers=owner.headers
        )).headers["Timeline-Version"]  # fmt: skip
        assert version_after == version_before


async def test_nothing_attaches_across_orgs_even_with_the_same_address(
    timeline_app: OpenService, users: Users, feed, database_url: str
) -> None:
    other_org = users.other_org()
    contact_here, contact_there = str(uuid4()), str(uuid4())
    async with timeline_app():
        there = type(feed)(feed.env, feed.database_url, other_org.org_id)
        await feed.send(feed.contact(contact_here, ["shared@acme.test"]))
        await there.send(there.contact(contact_there, ["shared@acme.test"]))
        await feed.send(feed.item("m-org", participants=["shared@acme.test"]))
        await there.send(there.item("m-late", participants=["shared@acme.test"], version=1))
    assert await link_rows(database_url, feed.org_id) == [
        ("calendar:m-org", "contact", contact_here)
    ]
    assert await link_rows(database_url, other_org.org_id) == [
        ("calendar:m-late", "contact", contact_there)
    ]


async def test_a_closed_deal_keeps_its_items_but_gains_no_new_ones(
    timeline_app: OpenService, users: Users, feed, database_url: str
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    contact, deal = str(uuid4()), str(uuid4())
    async with timeline_app():
        await feed.send(
            feed.contact(contact, ["buyer@acme.test"]), feed.deal(deal, owner, [contact])
        )
        await feed.send(feed.item("m-open", participants=["buyer@acme.test"]))
        await feed.send(feed.deal(deal, owner, [contact], stage="won"))
        await feed.send(
            feed.item("m-open", version=2, participants=["buyer@acme.test"]),
            feed.item("m-after", participants=["buyer@acme.test"], occurred_at=T0 + timedelta(1)),
        )
    assert await link_rows(database_url, feed.org_id) == sorted(
        [
            ("calendar:m-open", "contact", contact),
            ("calendar:m-open", "deal", deal),
            ("calendar:m-after", "contact", contact),
        ]
    )


@pytest.mark.parametrize(
    "settings",
    [{"consumer_batch_size": 1}, {}],
    ids=["one event per transaction, concurrently", "in batches"],
)
async def test_items_and_the_addresses_that_match_them_arriving_together_always_meet(
    timeline_app: OpenService, users: Users, feed, database_url: str, settings: dict[str, int]
) -> None:
    contact = str(uuid4())
    addresses = [f"a{n}@acme.test" for n in range(30)]
    items = [
        feed.item(f"m-race-{n}", participants=[address]) for n, address in enumerate(addresses)
    ]
    async with timeline_app(**settings):
        # Handled concurrently: each item may be written while the address that matches it is.
        await feed.send(*items[:15], feed.contact(contact, addresses), *items[15:])
    links = await link_rows(database_url, feed.org_id)
    assert links == sorted((f"calendar:m-race-{n}", "contact", contact) for n in range(30))


async def test_an_item_that_is_no_series_keeps_no_rule_so_its_page_never_counts_as_one(
    timeline_app: OpenService, users: Users, feed, database_url: str
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    lead_id = str(uuid4())
    async with timeline_app() as timeline:
        await feed.send(feed.access("lead", lead_id, owner))
        await feed.send(feed.item("evt-plain", version=1, links=[("lead", lead_id)]))
        assert len((await feed.page(timeline, owner, "lead", lead_id))["items"]) == 1
    connection = await connect_raw(database_url)
    try:
        rules = await connection.fetch(
            "SELECT recurrence IS NULL AS no_rule FROM timeline.holders WHERE org_id = $1",
            feed.org_id,
        )
    finally:
        await connection.close()
    # SQL NULL, not JSON null: a live series is found by "recurrence IS NOT NULL".
    assert [row["no_rule"] for row in rules] == [True]
