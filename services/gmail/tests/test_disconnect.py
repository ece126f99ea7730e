"""Disconnecting a mailbox: the watch is stopped at Google (``users.stop``) and forgotten, and the
mailbox's mail follows the org's rule: kept on timelines at metadata level, or removed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio
CUSTOMER = "buyer@customer.example"


async def test_disconnect_stops_the_watch_and_applies_the_orgs_rule(
    stack: Any, users: Users
) -> None:
    keeper = users.make(Role.REP, teams=["t1"])
    remover = users.make(Role.REP, teams=["t1"])
    admin = users.make(Role.ADMIN)
    async with stack.start() as service:
        for user in (keeper, remover):
            await stack.deliver(CUSTOMER, [user.principal.email], subject="Terms")
            await stack.mailbox(service, user)
            shared = await service.client.patch(
                "/api/gmail/mailbox", json={"sharing": "full"}, headers=user.headers
            )
            assert shared.status_code == 200
            assert len(await stack.mirror(user)) == 1

        # The org default rule: the mail stays, at metadata level.
        gone = await service.client.delete("/api/gmail/mailbox", headers=keeper.headers)
        assert gone.status_code == 204
        assert len(await stack.calls(keeper, "gmail.users.stop")) == 1
        watch = await stack.google.admin("GET", f"/gmail/{keeper.principal.email}/watch")
        assert watch.json() == {"watching": False}
        assert len(await stack.mirror(keeper)) == 1
        last = (await stack.announced("gmail.message.updated", keeper))[-1]
        assert last["sharing"] == "metadata"
        assert last["timeline"]["visibility"]["sharing"] == "metadata"
        again = await service.client.get("/api/gmail/mailbox", headers=keeper.headers)
        assert again.status_code == 404

        # The org removes a disconnected mailbox's mail: from every timeline and from PipeDesk.
        rule = await service.client.put(
            "/api/gmail/settings", json={"on_disconnect": "remove"}, headers=admin.headers
        )
        assert rule.status_code == 200
        assert (
            await service.client.delete("/api/gmail/mailbox", headers=remover.headers)
        ).status_code == 204
        assert await stack.mirror(remover) == {}
        assert (
            await stack.rows(
                "SELECT 1 FROM gmail.messages m JOIN gmail.mailboxes b ON b.id = m.mailbox_id "
                "WHERE b.user_id = :user",
                user=remover.principal.sub,
            )
            == []
        )
        [removed] = await stack.announced("gmail.message.deleted", remover)
        assert removed["timeline"]["status"] == "removed"
        assert removed["timeline"]["title"] == "(removed)"
        assert removed["timeline"]["summary"] is None


async def test_disconnecting_google_ends_the_mailboxs_sync_under_the_orgs_rule(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    async with stack.start(pubsub_topic=None) as service:
        await stack.deliver(CUSTOMER, [rep.principal.email], subject="Terms")
        await stack.mailbox(service, rep)
        async with httpx.AsyncClient(base_url=stack.google.accounts_url, timeout=10) as accounts:
            gone = await accounts.delete("/api/accounts/google", headers=rep.headers)
            assert gone.status_code == 204

        async def mailbox_status() -> int:
            answer = await service.client.get("/api/gmail/mailbox", headers=rep.headers)
            return answer.status_code

        # The accounts service's announcement reaches the service's consumer.
        await eventually(mailbox_status, until=lambda status: status == 404)
        last = (await stack.announced("gmail.message.updated", rep))[-1]
        assert last["sharing"] == "metadata"  # the org's default rule: kept, at metadata level
        pending = await stack.rows("SELECT key FROM gmail.work_requests WHERE pending")
        assert pending == []
