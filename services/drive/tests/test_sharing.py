"""A record folder's sharing follows CRM access (owner and collaborators write, followers read,
contacts and companies org-wide), CRM's events carry it through, and explicit shares go only to
allowed domains, made by the record's writers and admins."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio


async def grants(stack: Any, folder_google_id: str) -> dict[str, str]:
    """Who the folder is shared with in Google: email or domain → role (the holder left out)."""
    found = (await stack.google.admin("GET", f"/drive/files/{folder_google_id}/permissions")).json()
    return {
        p.get("emailAddress") or p.get("domain") or p["type"]: p["role"]
        for p in found
        if p["role"] != "owner"
    }


async def known(stack: Any, *users: ActingUser) -> None:
    """The users have used PipeDesk: the directory knows them."""
    for user in users:
        (await stack.crm.get("/api/users", headers=user.headers)).raise_for_status()


async def test_sharing_follows_members_and_owner_changes(stack: Any, users: Users) -> None:
    async with stack.start() as service:
        admin = await stack.admin_with_root(service, users)
        owner = users.make(Role.REP, teams=["t1"])
        colleague = users.make(Role.REP, teams=["t1"])
        watcher = users.make(Role.REP, teams=["t1"])
        await known(stack, owner, colleague, watcher)
        lead_id = await stack.lead(owner)
        folder = (await stack.folder(service, owner, "lead", lead_id)).json()
        google_id = folder["google_id"]
        await eventually(
            lambda: grants(stack, google_id), until=lambda g: g == {owner.principal.email: "writer"}
        )

        members = f"/api/leads/{lead_id}/members"
        put = await stack.crm.put(
            f"{members}/{colleague.sub}", json={"role": "collaborator"}, headers=owner.headers
        )
        assert put.status_code == 200, put.text
        await stack.crm.put(
            f"{members}/{watcher.sub}", json={"role": "follower"}, headers=owner.headers
        )
        expected = {
            owner.principal.email: "writer",
            colleague.principal.email: "writer",
            watcher.principal.email: "reader",
        }
        await eventually(lambda: grants(stack, google_id), until=lambda g: g == expected)

        removed = await stack.crm.delete(f"{members}/{colleague.sub}", headers=owner.headers)
        assert removed.status_code == 204
        expected = {owner.principal.email: "writer", watcher.principal.email: "reader"}
        await eventually(lambda: grants(stack, google_id), until=lambda g: g == expected)

        changed = await stack.crm.post(
            f"/api/leads/{lead_id}/change-owner",
            json={"new_owner_id": colleague.sub},
            headers=admin.headers,
        )
        assert changed.status_code == 200, changed.text
        expected = {colleague.principal.email: "writer", watcher.principal.email: "reader"}
        await eventually(lambda: grants(stack, google_id), until=lambda g: g == expected)
        sent = (await stack.google.admin("GET", "/drive/notifications")).json()
        assert sent
        assert not any(n["email_sent"] for n in sent)

        # A second sync (a redelivered event, the periodic one) changes nothing.
        before = (await stack.google.admin("GET", "/drive/notifications")).json()
        await service.run_job("drive.sync-folders")
        assert (await stack.google.admin("GET", "/drive/notifications")).json() == before
        assert await grants(stack, google_id) == expected


async def test_contact_folders_are_readable_org_wide(stack: Any, users: Users) -> None:
    async with stack.start() as service:
        admin = await stack.admin_with_root(service, users)
        rep = users.make(Role.REP)
        contact = await stack.crm.post("/api/contacts", json={"name": "Ann"}, headers=rep.headers)
        folder = (await stack.folder(service, rep, "contact", contact.json()["id"])).json()
        domain = admin.principal.email.rpartition("@")[2]
        await eventually(
            lambda: grants(stack, folder["google_id"]), until=lambda g: g == {domain: "reader"}
        )


async def test_explicit_shares_stay_in_the_allow_list_and_only_writers_make_them(
    stack: Any, users: Users
) -> None:
    async with stack.start() as service:
        admin = await stack.admin_with_root(service, users)
        owner = users.make(Role.REP, teams=["t1"])
        watcher = users.make(Role.REP, teams=["t1"])
        other_team = users.make(Role.REP, teams=["t2"])
        stranger = users.other_org().make(Role.ADMIN)
        await known(stack, owner, watcher)
        lead_id = await stack.lead(owner)
        await stack.crm.put(
            f"/api/leads/{lead_id}/members/{watcher.sub}",
            json={"role": "follower"},
            headers=owner.headers,
        )
        shares = f"/api/drive/records/lead/{lead_id}/shares"
        client = {"email": "Carla@Client.org", "role": "commenter", "notify": True}

        refused = await service.client.post(shares, json=client, headers=owner.headers)
        assert refused.status_code == 422
        assert "email" in refused.json()["detail"]
        by_rep = await service.client.put(
            "/api/drive/share-domains", json={"domains": ["client.org"]}, headers=owner.headers
        )
        assert by_rep.status_code == 403
        allowed = await service.client.put(
            "/api/drive/share-domains", json={"domains": ["client.org"]}, headers=admin.headers
        )
        assert allowed.json()["share_domains"] == ["client.org"]
        outside = await service.client.post(
            shares, json={**client, "email": "eve@elsewhere.com"}, headers=owner.headers
        )
        assert outside.status_code == 422
        no_choice = await service.client.post(
            shares, json={"email": "carla@client.org", "role": "reader"}, headers=owner.headers
        )
        assert no_choice.status_code == 422

        follower_try = await service.client.post(shares, json=client, headers=watcher.headers)
        assert follower_try.status_code == 403
        for intruder in (other_team, stranger):
            for method in ("GET", "POST"):
                answer = await service.client.request(
                    method, shares, headers=intruder.headers, json=client
                )
                assert answer.status_code == 404, (intruder.sub, method)
            gone = await service.client.delete(
                f"{shares}/carla@client.org", headers=intruder.headers
            )
            assert gone.status_code == 404

        made = await service.client.post(shares, json=client, headers=owner.headers)
        assert made.status_code == 201, made.text
        assert made.json()["email"] == "carla@client.org"
        listed = (await service.client.get(shares, headers=watcher.headers)).json()
        assert listed["next_cursor"] is None
        flags = {s["email"]: (s["role"], s["derived"], s["explicit"]) for s in listed["items"]}
        first = await service.client.get(shares, params={"limit": 2}, headers=watcher.headers)
        rest = await service.client.get(
            shares, params={"cursor": first.json()["next_cursor"]}, headers=watcher.headers
        )
        paged = [s["email"] for s in first.json()["items"] + rest.json()["items"]]
        assert sorted(paged) == sorted(flags)  # each share once, none lost between pages
        assert flags == {
            "carla@client.org": ("commenter", False, True),
            owner.principal.email: ("writer", True, False),
            watcher.principal.email: ("reader", True, False),
        }
        folder = (await stack.folder(service, owner, "lead", lead_id)).json()
        in_google = await grants(stack, folder["google_id"])
        assert in_google["carla@client.org"] == "commenter"
        sent = (await stack.google.admin("GET", "/drive/notifications")).json()
        to_client = [
            n["email_sent"]
            for n in sent
            if n["recipient"] == "carla@client.org" and n["file_id"] == folder["google_id"]
        ]
        assert to_client == [True]

        taken = await service.client.delete(f"{shares}/carla@client.org", headers=owner.headers)
        assert taken.status_code == 204
        assert "carla@client.org" not in await grants(stack, folder["google_id"])


async def test_derived_shares_go_to_the_connected_google_account(stack: Any, users: Users) -> None:
    async with stack.start() as service:
        await stack.admin_with_root(service, users)
        owner = users.make(Role.REP, teams=["t1"])
        colleague = users.make(Role.REP, teams=["t1"])
        await known(stack, owner, colleague)
        lead_id = await stack.lead(owner)
        folder = (await stack.folder(service, owner, "lead", lead_id)).json()
        google_id = folder["google_id"]
        put = await stack.crm.put(
            f"/api/leads/{lead_id}/members/{colleague.sub}",
            json={"role": "collaborator"},
            headers=owner.headers,
        )
        assert put.status_code == 200, put.text
        directory = {owner.principal.email: "writer", colleague.principal.email: "writer"}
        await eventually(lambda: grants(stack, google_id), until=lambda g: g == directory)

        # The colleague connects another Google account: the share moves to it.
        account = f"{colleague.sub}.google@gmail.example"
        status = await stack.google.connect(colleague, ["gmail"], google_email=account)
        assert status["google_email"] == account
        connected = {owner.principal.email: "writer", account: "writer"}
        await eventually(lambda: grants(stack, google_id), until=lambda g: g == connected)
        sent = (await stack.google.admin("GET", "/drive/notifications")).json()
        to_account = [n for n in sent if n["file_id"] == google_id and n["recipient"] == account]
        assert [n["email_sent"] for n in to_account] == [False]

        # Disconnected: back to the directory e-mail.
        async with httpx.AsyncClient(base_url=stack.google.accounts_url, timeout=10) as accounts:
            gone = await accounts.delete("/api/accounts/google", headers=colleague.headers)
        assert gone.status_code == 204, gone.text
        await eventually(lambda: grants(stack, google_id), until=lambda g: g == directory)
