"""A replica of a deal's access list fed out of order (v3 before v2) ends in the v3 state."""

from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from crm_service.models import outbox
from pipedesk_common.access import AccessReplica
from pipedesk_common.auth import Role
from pipedesk_common.clock import SystemClock
from pipedesk_common.db import create_sessionmaker
from pipedesk_common.events import new_event
from pipedesk_common.events.crm import DealAccessChanged
from pipedesk_common.outbox import add_event
from pipedesk_common.rbac import Action
from pipedesk_testkit.identities import Users
from pipedesk_testkit.plugin import OpenService
from pipedesk_testkit.waiting import eventually
from timeline_service.models import access_replica, inbox

pytestmark = pytest.mark.asyncio


def _no() -> Any:
    raise AssertionError("the replica holds this deal: nothing is fetched from the CRM")


async def test_deal_access_fed_v3_before_v2_ends_in_v3(
    crm_app: OpenService, timeline_app: OpenService, users: Users, database_url: str
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    dropped = users.make(Role.REP, teams=["t9"])  # a member in v2 only
    kept = users.make(Role.REP, teams=["t9"])  # a member from v3 on
    org = owner.principal.org_id
    deal_id = str(uuid4())

    def access(version: int, members: dict[str, str]) -> Any:
        data = DealAccessChanged(
            id=deal_id, version=version, org_id=org, owner_id=owner.sub, team_id="t1",
            members=members,
        )  # fmt: skip
        return new_event(data, org_id=org, actor_id=owner.sub, time=SystemClock().now())

    v1 = access(1, {})
    v2 = access(2, {dropped.sub: "collaborator"})
    v3 = access(3, {kept.sub: "follower"})
    engine = create_async_engine(database_url)
    try:
        async with timeline_app(), crm_app():
            # the CRM's relay publishes in the order rows were written: v3, then v2, then v1
            for event in (v3, v2, v1):
                async with create_sessionmaker(engine)() as session:
                    await add_event(session, outbox, event)
                    await session.commit()

            async def processed() -> set[Any]:
                async with engine.connect() as connection:
                    rows = await connection.execute(
                        select(inbox.inbox.c.event_id).where(
                            inbox.inbox.c.event_id.in_([v1.id, v2.id, v3.id])
                        )
                    )
                    return set(rows.scalars())

            await eventually(processed, until=lambda ids: ids == {v1.id, v2.id, v3.id})
            async with engine.connect() as connection:
                row = (
                    await connection.execute(
                        select(access_replica).where(access_replica.c.record_id == deal_id)
                    )
                ).one()
            assert (row.version, row.members, row.owner_id) == (
                3,
                {kept.sub: "follower"},
                owner.sub,
            )
            replica = AccessReplica(access_replica, crm_url="http://unused", http=_no, issuer=_no)
            async with create_sessionmaker(engine)() as session:
                for user, allowed in ((kept, True), (dropped, False)):
                    decision = await replica.can(
                        session, user.principal, Action.READ, "deal", deal_id
                    )
                    assert decision is allowed
    finally:
        await engine.dispose()
