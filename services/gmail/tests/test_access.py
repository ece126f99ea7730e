"""Who may use each gmail route: a valid PipeDesk token always; a mailbox is only ever its
owner's (no route names another user's, whatever the caller's role or org); only admins change
the org's mail settings, admins and managers read them, and each org sees its own."""

from __future__ import annotations

from typing import Any

import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users

pytestmark = pytest.mark.asyncio


async def test_every_route_needs_a_pipedesk_token(stack: Any) -> None:
    async with stack.start() as service:
        for method, path in (
            ("POST", "/api/gmail/mailbox"),
            ("GET", "/api/gmail/mailbox"),
            ("PATCH", "/api/gmail/mailbox"),
            ("DELETE", "/api/gmail/mailbox"),
            ("GET", "/api/gmail/settings"),
            ("PUT", "/api/gmail/settings"),
        ):
            answer = await service.client.request(method, path, json={})
            assert answer.status_code == 401, (method, path)


async def test_a_mailbox_is_its_owners_alone(stack: Any, users: Users) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    teammate = users.make(Role.MANAGER, teams=["t1"])
    stranger = users.other_org().make(Role.ADMIN)
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, owner)
        shared = await service.client.patch(
            "/api/gmail/mailbox", json={"sharing": "full"}, headers=owner.headers
        )
        assert shared.status_code == 200
        assert shared.json()["sharing"] == "full"
        for intruder in (teammate, stranger):
            # Their own (unconnected) mailbox: never the owner's.
            mine = await service.client.get("/api/gmail/mailbox", headers=intruder.headers)
            assert mine.status_code == 404
            changed = await service.client.patch(
                "/api/gmail/mailbox", json={"sharing": "metadata"}, headers=intruder.headers
            )
            assert changed.status_code == 404
        kept = await service.client.get("/api/gmail/mailbox", headers=owner.headers)
        assert kept.json()["sharing"] == "full"


async def test_bad_input_names_the_field(stack: Any, users: Users) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    admin = users.make(Role.ADMIN)
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, owner)
        for body, field in (
            ({"sharing": "everything"}, "sharing"),
            ({"blocklist": ["not an address"]}, "blocklist"),
            ({"surprise": True}, "surprise"),
        ):
            answer = await service.client.patch(
                "/api/gmail/mailbox", json=body, headers=owner.headers
            )
            assert answer.status_code == 422
            assert field in answer.text
        refused = await service.client.put(
            "/api/gmail/settings", json={"domains": ["not a domain"]}, headers=admin.headers
        )
        assert refused.status_code == 422
        assert "domains" in refused.text


async def test_only_admins_set_the_orgs_mail_settings_and_each_org_sees_its_own(
    stack: Any, users: Users
) -> None:
    admin = users.make(Role.ADMIN)
    manager = users.make(Role.MANAGER, teams=["t1"])
    rep = users.make(Role.REP, teams=["t1"])
    other_admin = users.other_org().make(Role.ADMIN)
    wanted = {
        "domains": ["acme-corp.example"],
        "blocklist": ["@personal.example", "doctor@clinic.example"],
        "default_sharing": "subject",
        "on_disconnect": "remove",
    }
    async with stack.start(pubsub_topic=None) as service:
        for refused_user in (manager, rep):
            answer = await service.client.put(
                "/api/gmail/settings", json=wanted, headers=refused_user.headers
            )
            assert answer.status_code == 403
        assert (
            await service.client.get("/api/gmail/settings", headers=rep.headers)
        ).status_code == 403
        saved = await service.client.put("/api/gmail/settings", json=wanted, headers=admin.headers)
        assert saved.status_code == 200
        read = (await service.client.get("/api/gmail/settings", headers=manager.headers)).json()
        assert read["default_sharing"] == "subject"
        assert read["blocklist"] == sorted(wanted["blocklist"])
        other = (
            await service.client.get("/api/gmail/settings", headers=other_admin.headers)
        ).json()
        assert other["default_sharing"] == "metadata"
        assert other["domains"] == []
