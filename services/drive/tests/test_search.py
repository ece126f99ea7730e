"""Search across the record folders a user may see: the user's text is one escaped Drive string
(quotes, backslashes and query syntax are searched for, never obeyed), and results follow CRM
visibility."""

from __future__ import annotations

from typing import Any

import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users

pytestmark = pytest.mark.asyncio

TRICKY = ("O'Brien quote.txt", "back\\slash.txt", "a) or (b.txt", "x' or name contains '.txt")


async def found(service: Any, user: ActingUser, q: str, **params: Any) -> list[str]:
    answer = await service.client.get(
        "/api/drive/search", params={"q": q, **params}, headers=user.headers
    )
    assert answer.status_code == 200, answer.text
    return [hit["name"] for hit in answer.json()["items"]]


async def test_search_escapes_the_text_and_follows_crm_visibility(stack: Any, users: Users) -> None:
    async with stack.start() as service:
        admin = await stack.admin_with_root(service, users)
        owner = users.make(Role.REP, teams=["t1"])
        other_team = users.make(Role.REP, teams=["t2"])
        stranger = await stack.admin_with_root(service, users.other_org())  # Drive set up too
        lead_id = await stack.lead(owner, "Acme")
        theirs = await stack.lead(other_team, "Globex")
        client = service.client
        for name in TRICKY:
            made = await stack.upload(client, owner, "lead", lead_id, name, b"notes")
            assert made.status_code == 201, made.text
        plain = (
            await stack.upload(client, owner, "lead", lead_id, "plain.txt", b"the budget for 2027")
        ).json()
        await stack.upload(client, other_team, "lead", theirs, "plain globex.txt", b"budget")

        # Drive's `name contains` matches the name's start or its words' starts.
        assert await found(service, owner, "O'Brien") == ["O'Brien quote.txt"]
        assert await found(service, owner, "back\\slash") == ["back\\slash.txt"]
        assert await found(service, owner, "a) or (b") == ["a) or (b.txt"]
        assert await found(service, owner, "x' or name contains '") == ["x' or name contains '.txt"]
        # Searched for as text (its words, as Drive does): neither a broken query (a 400) nor
        # a wider one (everything).
        expected = {
            "'": [],
            "\\": [],
            ") or (": ["a) or (b.txt", "x' or name contains '.txt"],
            "' or name contains '": ["x' or name contains '.txt"],
            "\\' or trashed = false or '": [],
        }
        for text, names in expected.items():
            assert await found(service, owner, text) == names, text
        assert await found(service, owner, "budget", full_text="true") == ["plain.txt"]
        assert await found(service, owner, "budget") == []
        assert await found(service, owner, "plain") == ["plain.txt"]
        assert await found(service, admin, "plain") == ["plain globex.txt", "plain.txt"]

        assert await found(service, other_team, "plain") == ["plain globex.txt"]
        assert await found(service, stranger, "plain") == []
        for intruder in (other_team, stranger):
            refused = await client.get(f"/api/drive/files/{plain['id']}", headers=intruder.headers)
            assert refused.status_code == 404
        empty = await client.get("/api/drive/search", params={"q": ""}, headers=owner.headers)
        assert empty.status_code == 422
        unsigned = await client.get("/api/drive/search", params={"q": "plain"})
        assert unsigned.status_code == 401
