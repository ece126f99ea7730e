"""The org's mail retention: mirrored mail older than ``retention_days`` (by its date) leaves
every timeline and PipeDesk when the ``gmail.retention`` job runs; newer mail, and another org's,
stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users

pytestmark = pytest.mark.asyncio
CUSTOMER = "buyer@customer.example"


async def test_mail_older_than_the_orgs_retention_leaves_pipedesk_and_every_timeline(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    admin = users.make(Role.ADMIN)
    manager = users.make(Role.MANAGER, teams=["t1"])
    elsewhere = users.other_org().make(Role.REP, teams=["t1"])
    old = datetime.now(UTC) - timedelta(days=40)
    async with stack.start(pubsub_topic=None) as service:
        for user in (rep, elsewhere):
            await stack.deliver(
                CUSTOMER, [user.principal.email], subject="Old", date=old.isoformat()
            )
            await stack.deliver(CUSTOMER, [user.principal.email], subject="New")
            await stack.mailbox(service, user)
            assert len(await stack.mirror(user)) == 2

        # Without a retention the job keeps everything.
        assert (await service.run_job("gmail.retention"))["result"] == 0
        assert len(await stack.mirror(rep)) == 2

        path = "/api/gmail/settings"
        refused = await service.client.put(
            path, json={"retention_days": 30}, headers=manager.headers
        )
        assert refused.status_code == 403
        for bad in (0, -1, "a month", True, "30"):
            answer = await service.client.put(
                path, json={"retention_days": bad}, headers=admin.headers
            )
            assert answer.status_code == 422, answer.text
            assert answer.json()["errors"][0]["field"] == "body.retention_days"
        kept = await service.client.put(path, json={"retention_days": 30}, headers=admin.headers)
        assert kept.status_code == 200, kept.text
        assert kept.json()["retention_days"] == 30
        read = await service.client.get(path, headers=admin.headers)
        assert read.json()["retention_days"] == 30

        assert (await service.run_job("gmail.retention"))["result"] == 1
        left = await stack.mirror(rep)
        assert [message["subject"] for message in left.values()] == ["New"]
        [removed] = await stack.announced("gmail.message.deleted", rep)
        assert removed["timeline"]["status"] == "removed"
        # Another org, without a retention, keeps its old mail; a second run removes nothing.
        assert len(await stack.mirror(elsewhere)) == 2
        assert (await service.run_job("gmail.retention"))["result"] == 0
