"""``Idempotency-Key`` on the CRM's creating POSTs: one answer per (org, caller, route, key)."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from pipedesk_common.auth import Role
from pipedesk_common.idempotency import body_fingerprint, claim_lock_id, request_scope
from pipedesk_testkit.identities import ActingUser, Users

pytestmark = pytest.mark.asyncio


async def post(
    crm: httpx.AsyncClient, user: ActingUser, path: str, body: dict[str, Any], key: str
) -> httpx.Response:
    return await crm.post(path, json=body, headers={**user.headers, "Idempotency-Key": key})


async def titles(crm: httpx.AsyncClient, user: ActingUser) -> list[str]:
    listed = (await crm.get("/api/leads", headers=user.headers)).json()
    return sorted(lead["title"] for lead in listed["items"])


async def test_the_same_key_and_payload_get_the_first_answer_and_create_once(
    crm: httpx.AsyncClient, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    first = await post(crm, rep, "/api/leads", {"title": "Acme"}, "k-1")
    assert first.status_code == 201, first.text
    again = await post(crm, rep, "/api/leads", {"title": "Acme"}, "k-1")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["idempotent-replayed"] == "true"
    assert await titles(crm, rep) == ["Acme"]

    reused = await post(crm, rep, "/api/leads", {"title": "Other"}, "k-1")
    assert reused.status_code == 422
    assert reused.json()["type"] == "urn:pipedesk:problem:idempotency-key-reused"
    assert [error["field"] for error in reused.json()["errors"]] == ["header.idempotency-key"]
    assert await titles(crm, rep) == ["Acme"]


async def test_a_key_belongs_to_its_org_caller_and_route(
    crm: httpx.AsyncClient, users: Users
) -> None:
    rep, colleague = users.make(Role.REP, teams=["t1"]), users.make(Role.REP, teams=["t1"])
    outsider = users.other_org().make(Role.REP, teams=["t1"])
    answers = [
        await post(crm, rep, "/api/leads", {"title": "Acme"}, "shared"),
        await post(crm, colleague, "/api/leads", {"title": "Acme"}, "shared"),
        await post(crm, outsider, "/api/leads", {"title": "Acme"}, "shared"),
        await post(crm, rep, "/api/contacts", {"name": "Ana"}, "shared"),
    ]
    assert [answer.status_code for answer in answers] == [201, 201, 201, 201]
    assert len({answer.json()["id"] for answer in answers}) == 4
    assert not any("idempotent-replayed" in answer.headers for answer in answers)


async def test_a_key_held_by_a_running_request_is_a_409_and_duplicates_create_once(
    crm: httpx.AsyncClient, users: Users, database_url: str
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    body = {"title": "Busy"}
    scope = request_scope(rep.principal.org_id, rep.sub, "POST", "/api/leads")
    engine = create_async_engine(database_url)
    try:
        # Another process holds the key: its row, and the lock its open transaction holds. It
        # has been running for an hour: however long, a live holder keeps its key.
        holder = await engine.connect()
        await holder.execute(
            text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": claim_lock_id(scope, "held")}
        )
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO crm.idempotency_keys (scope, key, fingerprint, status, body, "
                    "created_at) VALUES (:scope, 'held', :digest, 0, '{}', :started)"
                ),
                {
                    "scope": scope,
                    "digest": body_fingerprint(b'{"title": "Busy"}'),
                    "started": datetime.now(UTC) - timedelta(hours=1),
                },
            )
        held = await post(crm, rep, "/api/leads", body, "held")
        assert held.status_code == 409, held.text
        assert held.json()["type"] == "urn:pipedesk:problem:idempotency-key-in-progress"
        assert held.headers["retry-after"] == "1"
        assert await titles(crm, rep) == []
        # The holder's process dies (its connection goes): the key is free at once, and the
        # retry runs, since the dead request left no answer.
        await holder.invalidate()
        await holder.close()
        retried = await post(crm, rep, "/api/leads", body, "held")
        assert retried.status_code == 201, retried.text
        assert await titles(crm, rep) == ["Busy"]
    finally:
        await engine.dispose()

    racing = await asyncio.gather(
        *(post(crm, rep, "/api/leads", {"title": "Race"}, "race") for _ in range(6))
    )
    assert {answer.status_code for answer in racing} <= {201, 409}
    assert len({answer.json()["id"] for answer in racing if answer.status_code == 201}) == 1
    assert await titles(crm, rep) == ["Busy", "Race"]


async def test_a_create_whose_answer_could_not_be_remembered_is_not_kept_and_retries_once(
    crm: httpx.AsyncClient, users: Users, database_url: str
) -> None:
    """The window a crash could hit: the change made, its answer not yet remembered. Here the
    database refuses to remember this key's answer (a trigger), as a crash there would: the
    lead must not be kept without its answer, the client must not be told it was created, and
    the retry creates it once."""
    rep = users.make(Role.REP, teams=["t1"])
    engine = create_async_engine(database_url)
    refuse = (
        "CREATE FUNCTION crm.refuse_answer() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the answer is lost'; END $$",
        "CREATE TRIGGER refuse_answer BEFORE UPDATE ON crm.idempotency_keys FOR EACH ROW "
        "WHEN (NEW.key = 'lost-answer' AND NEW.status <> 0) EXECUTE FUNCTION crm.refuse_answer()",
    )
    try:
        async with engine.begin() as connection:
            for statement in refuse:
                await connection.execute(text(statement))
        try:
            failed = await post(crm, rep, "/api/leads", {"title": "Once"}, "lost-answer")
        finally:
            async with engine.begin() as connection:
                await connection.execute(text("DROP TRIGGER refuse_answer ON crm.idempotency_keys"))
                await connection.execute(text("DROP FUNCTION crm.refuse_answer()"))
    finally:
        await engine.dispose()
    assert failed.status_code >= 500, failed.text
    assert await titles(crm, rep) == []
    retried = await post(crm, rep, "/api/leads", {"title": "Once"}, "lost-answer")
    assert retried.status_code == 201, retried.text
    again = await post(crm, rep, "/api/leads", {"title": "Once"}, "lost-answer")
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == retried.json()["id"]
    assert await titles(crm, rep) == ["Once"]


async def test_a_refused_request_frees_its_key_and_a_day_old_key_is_forgotten(
    crm: httpx.AsyncClient, users: Users, database_url: str
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    refused = await post(crm, rep, "/api/leads", {"title": ""}, "k-2")
    assert refused.status_code == 422
    fixed = await post(crm, rep, "/api/leads", {"title": "Fixed"}, "k-2")
    assert fixed.status_code == 201, fixed.text
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE crm.idempotency_keys SET created_at = :old WHERE key = 'k-2'"),
                {"old": datetime.now(UTC) - timedelta(hours=24, minutes=1)},
            )
    finally:
        await engine.dispose()
    later = await post(crm, rep, "/api/leads", {"title": "Fixed"}, "k-2")
    assert later.status_code == 201
    assert later.json()["id"] != fixed.json()["id"]
    assert await titles(crm, rep) == ["Fixed", "Fixed"]


async def test_every_creating_post_and_convert_honour_the_key(
    crm: httpx.AsyncClient, users: Users
) -> None:
    admin = users.make(Role.ADMIN, teams=["t1"])
    lead = (await post(crm, admin, "/api/leads", {"title": "To convert"}, "lead")).json()
    cases: list[tuple[str, dict[str, Any]]] = [
        ("/api/deals", {"title": "Deal", "team_id": "t1"}),
        ("/api/contacts", {"name": "Ana"}),
        ("/api/companies", {"name": "Acme"}),
        (f"/api/leads/{lead['id']}/notes", {"body": "called"}),
        (f"/api/leads/{lead['id']}/convert", {}),
        ("/api/users", {"id": "idem-user", "email": "u@example.com", "role": "rep"}),
        ("/api/teams", {"name": "Idempotent team"}),
    ]
    for path, body in cases:
        first = await post(crm, admin, path, body, f"key:{path}")
        again = await post(crm, admin, path, body, f"key:{path}")
        assert (first.status_code, again.status_code) == (201, 201), (path, again.text)
        assert again.json() == first.json(), path
        assert again.headers["idempotent-replayed"] == "true"
    document = (await crm.get("/openapi.json")).json()
    for path, _body in cases:
        template = path.replace(lead["id"], "{lead_id}")
        operation = document["paths"][template]["post"]
        names = [parameter["name"] for parameter in operation.get("parameters", [])]
        assert "Idempotency-Key" in names, template
        assert {"409", "422"} <= set(operation["responses"]), template


async def test_a_key_outside_its_documented_form_is_refused_naming_the_header(
    crm: httpx.AsyncClient, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    document = (await crm.get("/openapi.json")).json()
    parameters = document["paths"]["/api/leads"]["post"]["parameters"]
    (key,) = [parameter for parameter in parameters if parameter["name"] == "Idempotency-Key"]
    assert key["schema"]["pattern"] == "^[\\x21-\\x7e]{1,255}$"
    for bad in (b"two words", b"k" * 256, "é".encode("latin-1")):
        refused = await crm.post(
            "/api/leads", json={"title": "Acme"}, headers={**rep.headers, "Idempotency-Key": bad}
        )
        assert refused.status_code == 422, bad
        assert [error["field"] for error in refused.json()["errors"]] == ["header.idempotency-key"]
    assert await titles(crm, rep) == []
