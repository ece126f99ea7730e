"""Validators that are never stale: a new item or changed access makes a new ETag."""

from uuid import uuid4

import pytest
from redis.asyncio import Redis

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users
from pipedesk_testkit.plugin import OpenService
from timeline_service.cache import PageCache

pytestmark = pytest.mark.asyncio


async def test_304_until_a_new_item_or_the_viewers_access_changes(
    timeline_app: OpenService, users: Users, feed
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    member = users.make(Role.REP, teams=["t2"])
    lead, other_lead = str(uuid4()), str(uuid4())
    path = f"/api/timeline/lead/{lead}"
    async with timeline_app() as timeline:
        await feed.send(
            feed.access("lead", lead, owner, members={member.sub: "follower"}),
            feed.access("lead", other_lead, owner),
            feed.item("m-1", links=[("lead", lead), ("lead", other_lead)]),
        )
        first = await timeline.get(path, headers=member.headers)
        tag = first.headers["etag"]
        assert first.headers["cache-control"] == "private, no-cache"
        again = await timeline.get(path, headers={**member.headers, "If-None-Match": tag})
        assert again.status_code == 304
        assert again.headers["etag"] == tag
        assert again.content == b""
        # Another viewer, another query: another tag.
        assert (await timeline.get(path, headers=owner.headers)).headers["etag"] != tag
        filtered = await timeline.get(path, params={"kinds": "note"}, headers=member.headers)
        assert filtered.headers["etag"] != tag
        # 404 comes before any 304, even with the right tag.
        stranger = users.make(Role.REP, teams=["t1"])
        refused = await timeline.get(path, headers={**stranger.headers, "If-None-Match": tag})
        assert refused.status_code == 404
        # The member gains access to the other lead: the item's links now show it.
        await feed.send(
            feed.access("lead", other_lead, owner, members={member.sub: "collaborator"})
        )
        changed = await timeline.get(path, headers={**member.headers, "If-None-Match": tag})
        assert changed.status_code == 200
        [item] = changed.json()["items"]
        assert {link["id"] for link in item["links"]} == {lead, other_lead}
        tag = changed.headers["etag"]
        assert (
            await timeline.get(path, headers={**member.headers, "If-None-Match": tag})
        ).status_code == 304
        await feed.send(feed.item("m-2", links=[("lead", lead)]))
        fresh = await timeline.get(path, headers={**member.headers, "If-None-Match": tag})
        assert fresh.status_code == 200
        assert len(fresh.json()["items"]) == 2


async def test_the_redis_page_cache_uses_the_etag_as_key_and_is_never_stale(
    timeline_app: OpenService, users: Users, feed, broker_prefix: str, redis_url: str
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    lead = str(uuid4())
    path = f"/api/timeline/lead/{lead}"
    redis = Redis.from_url(redis_url)
    try:
        async with timeline_app(REDIS_URL=redis_url) as timeline:
            await feed.send(
                feed.access("lead", lead, owner), feed.item("m-1", links=[("lead", lead)])
            )
            first = await timeline.get(path, headers=owner.headers)
            key = f"{broker_prefix}timeline:page:{first.headers['etag']}"
            assert await redis.get(key) == first.content
            assert (await timeline.get(path, headers=owner.headers)).content == first.content
            await feed.send(feed.item("m-2", links=[("lead", lead)]))
            second = await timeline.get(path, headers=owner.headers)
            assert len(second.json()["items"]) == 2
            assert second.headers["etag"] != first.headers["etag"]
        async with timeline_app(REDIS_URL="redis://127.0.0.1:1/0") as timeline:
            # An unreachable cache costs nothing but the cache.
            assert (await timeline.get(path, headers=owner.headers)).json() == second.json()
    finally:
        await redis.aclose()


async def test_a_contact_timeline_changes_when_its_items_become_visible_through_a_lead(
    timeline_app: OpenService, users: Users, feed
) -> None:
    ada = users.make(Role.REP, teams=["t1"])
    contact, lead = str(uuid4()), str(uuid4())
    path = f"/api/timeline/contact/{contact}"
    async with timeline_app() as timeline:
        await feed.send(
            feed.access("lead", lead, ada),
            feed.contact(contact, ["casey@acme.test"]),
            feed.lead(lead, ada, []),
        )
        await feed.send(feed.item("m-someone", participants=["casey@acme.test"], owner_id="bob"))
        before = await timeline.get(path, headers=ada.headers)
        assert before.json()["items"] == []
        await feed.send(feed.lead(lead, ada, [contact]))  # backfill: now through her lead
        after = await timeline.get(
            path, headers={**ada.headers, "If-None-Match": before.headers["etag"]}
        )
        assert after.status_code == 200
        assert [item["source"]["google_id"] for item in after.json()["items"]] == ["m-someone"]


async def test_the_memory_page_cache_keeps_the_recently_used_pages_within_its_bound() -> None:
    cache = PageCache(None, memory_bytes=1000)
    for name in "ABCD":
        await cache.put(name, name.encode() * 200)
    assert await cache.get("A") == b"A" * 200  # now the most recently used
    await cache.put("big", b"x" * 300)  # over a quarter of the bound: not kept
    assert await cache.get("big") is None
    await cache.put("E", b"E" * 250)  # 1,050 bytes: the least recently used goes
    assert await cache.get("B") is None
    for name in "ACDE":
        assert await cache.get(name) is not None
