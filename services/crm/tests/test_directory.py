"""The org directory: callers upserted from their tokens, teams and pre-provisioned users."""

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from crm_service.models import outbox
from pipedesk_common.auth import Role
from pipedesk_common.contract import NON_BLANK_PATTERN
from pipedesk_common.events import decode_event
from pipedesk_common.events.crm import TeamArchived, UserCreated, UserUpdated
from pipedesk_common.ids import ID_PATTERN
from pipedesk_testkit.identities import Identity, Users

pytestmark = pytest.mark.asyncio


async def _directory_events(database_url: str, entity_id: str) -> list[Any]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            query = (
                select(outbox.c.body)
                .where(outbox.c.routing_key.like("crm.%"))
                .order_by(outbox.c.id)
            )
            bodies = (await connection.execute(query)).scalars().all()
    finally:
        await engine.dispose()
    return [
        data
        for data in (decode_event(body).data for body in bodies)
        if getattr(data, "id", None) == entity_id
    ]


async def test_a_caller_joins_on_first_request_and_the_newest_token_wins(
    crm: httpx.AsyncClient, api: Any, users: Users, database_url: str
) -> None:
    sub = f"ada-{users.org_id}"
    first = users.make(Role.REP, teams=["t1"], sub=sub)
    listed = (await crm.get("/api/users", headers=first.headers)).json()["items"]
    assert [(u["id"], u["role"], u["team_ids"]) for u in listed] == [(sub, "rep", ["t1"])]
    promoted = users.make(Role.MANAGER, teams=["t2", "t1"], sub=sub)
    me = await crm.get(f"/api/users/{sub}", headers=promoted.headers)
    assert (me.json()["role"], me.json()["team_ids"], me.json()["version"]) == (
        "manager",
        ["t1", "t2"],
        2,
    )
    await crm.get(f"/api/users/{sub}", headers=promoted.headers)  # nothing changed: no write
    events = await _directory_events(database_url, sub)
    assert [type(data) for data in events] == [UserCreated, UserUpdated]
    assert (events[1].role, events[1].team_ids, events[1].version) == ("manager", ["t1", "t2"], 2)
    rows = await api.audit(database_url, sub)
    assert [row["action"] for row in rows] == ["created", "updated"]
    assert rows[1]["changes"] == {"role": ["rep", "manager"], "team_ids": [["t1"], ["t1", "t2"]]}
    outsider = users.other_org().make(Role.ADMIN)
    api.assert_problem(await crm.get(f"/api/users/{sub}", headers=outsider.headers), 404)
    assert sub not in {
        u["id"] for u in (await crm.get("/api/users", headers=outsider.headers)).json()["items"]
    }


async def test_admins_manage_teams_and_preprovision_users(
    crm: httpx.AsyncClient, api: Any, users: Users, database_url: str
) -> None:
    admin = users.make(Role.ADMIN, teams=[])
    manager = users.make(Role.MANAGER, teams=["t1"])
    created = await crm.post(
        "/api/teams", json={"id": "emea", "name": "EMEA"}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    generated = await crm.post("/api/teams", json={"name": "Generated"}, headers=admin.headers)
    assert generated.json()["id"]
    api.assert_problem(
        await crm.post("/api/teams", json={"id": "emea", "name": "x"}, headers=admin.headers), 409
    )
    api.assert_problem(
        await crm.post("/api/teams", json={"name": "x"}, headers=manager.headers), 403
    )
    api.assert_problem(
        await crm.patch("/api/teams/emea", json={"name": "x"}, headers=manager.headers), 403
    )
    api.assert_problem(await crm.post("/api/teams/emea/archive", headers=manager.headers), 403)
    renamed = await crm.patch("/api/teams/emea", json={"name": "Europe"}, headers=admin.headers)
    assert renamed.json()["name"] == "Europe"
    assert (await crm.post("/api/teams/emea/archive", headers=admin.headers)).json()["archived_at"]
    api.assert_problem(await crm.post("/api/teams/emea/archive", headers=admin.headers), 409)
    active = (await crm.get("/api/teams", headers=manager.headers)).json()["items"]
    assert [team["name"] for team in active] == ["Generated"]
    archived = (
        await crm.get("/api/teams", params={"archived": "true"}, headers=manager.headers)
    ).json()["items"]
    assert [team["name"] for team in archived] == ["Europe"]
    assert isinstance((await _directory_events(database_url, "emea"))[-1], TeamArchived)
    other_admin = users.other_org().make(Role.ADMIN)
    assert (await crm.get("/api/teams", headers=other_admin.headers)).json()["items"] == []
    api.assert_problem(
        await crm.patch("/api/teams/emea", json={"name": "x"}, headers=other_admin.headers), 404
    )
    provision = {
        "id": "bob",
        "email": "Bob@Example.com",
        "name": "Bob",
        "role": "rep",
        "team_ids": ["emea"],
    }
    api.assert_problem(await crm.post("/api/users", json=provision, headers=manager.headers), 403)
    made = await crm.post("/api/users", json=provision, headers=admin.headers)
    assert made.status_code == 201, made.text
    assert (made.json()["email"], made.json()["role"]) == ("bob@example.com", "rep")
    api.assert_problem(await crm.post("/api/users", json=provision, headers=admin.headers), 409)
    in_team = (
        await crm.get("/api/users", params={"team_id": "emea"}, headers=manager.headers)
    ).json()
    assert [user["id"] for user in in_team["items"]] == ["bob"]
    for bad, field in (
        ({**provision, "id": "carl", "role": "owner"}, "body.role"),
        ({**provision, "id": "carl", "email": "nope"}, "body.email"),
        ({**provision, "id": "x" * 256}, "body.id"),
        ({**provision, "id": "carl", "org_id": "other"}, "body.org_id"),
    ):
        api.assert_problem(
            await crm.post("/api/users", json=bad, headers=admin.headers), 422, field
        )
    api.assert_problem(
        await crm.post("/api/teams", json={"name": "x" * 201}, headers=admin.headers),
        422,
        "body.name",
    )
    api.assert_problem(
        await crm.post("/api/teams", json={"id": "has space", "name": "x"}, headers=admin.headers),
        422,
        "body.id",
    )


async def test_the_users_list_pages_with_a_cursor(crm: httpx.AsyncClient, users: Users) -> None:
    admin = users.make(Role.ADMIN, sub=f"a-{users.org_id}")
    for name in ("u1", "u2", "u3"):
        body = {"id": name, "email": f"{name}@example.com", "role": "viewer"}
        assert (await crm.post("/api/users", json=body, headers=admin.headers)).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await crm.get("/api/users", params=params, headers=admin.headers)).json()
        seen += [user["id"] for user in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted([admin.sub, "u1", "u2", "u3"])


async def test_the_teams_list_pages_by_name_with_a_cursor(
    crm: httpx.AsyncClient, api: Any, users: Users
) -> None:
    admin = users.make(Role.ADMIN)
    for team_id, name in (("t-c", "Charlie"), ("t-a", "Alpha"), ("t-b", "Bravo")):
        body = {"id": team_id, "name": name}
        assert (await crm.post("/api/teams", json=body, headers=admin.headers)).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await crm.get("/api/teams", params=params, headers=admin.headers)).json()
        seen += [team["name"] for team in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["Alpha", "Bravo", "Charlie"]
    first = (await crm.get("/api/teams", params={"limit": 1}, headers=admin.headers)).json()
    archived = {"archived": "true", "cursor": first["next_cursor"]}
    api.assert_problem(await crm.get("/api/teams", params=archived, headers=admin.headers), 400)


async def test_internal_user_lookup_answers_only_the_services_deciding_about_another_user(
    crm: httpx.AsyncClient, api: Any, users: Users, identity: Identity
) -> None:
    from dev_identity.keystore import KeyStore
    from pipedesk_common.auth import ServiceTokenIssuer
    from pipedesk_common.clock import SystemClock

    rep = users.make(Role.REP, teams=["t1"])
    await crm.get("/api/users", headers=rep.headers)
    path = f"/internal/users/{rep.sub}"
    params = {"org_id": rep.principal.org_id}
    api.assert_problem(await crm.get(path, params=params, headers=rep.headers), 401)
    store = KeyStore(identity.key_dir)

    def as_service(name: str) -> dict[str, str]:
        issuer = ServiceTokenIssuer(name, store.service_key(name), clock=SystemClock())
        return {"Authorization": f"Bearer {issuer.token_for('crm')}"}

    for stranger in ("gateway", "timeline"):
        refused = await crm.get(path, params=params, headers=as_service(stranger))
        api.assert_problem(refused, 403)
        assert refused.json()["detail"] == f"the {stranger} service may not call this route"
    service = as_service("calendar")
    assert (await crm.get(path, params=params, headers=as_service("tasks"))).status_code == 200
    # The automation service: whom an owner-change email goes to.
    assert (await crm.get(path, params=params, headers=as_service("automation"))).status_code == 200
    found = await crm.get(path, params=params, headers=service)
    assert found.status_code == 200, found.text
    assert (found.json()["email"], found.json()["role"]) == (rep.principal.email, "rep")
    api.assert_problem(await crm.get(path, params={"org_id": "another-org"}, headers=service), 404)
    api.assert_problem(await crm.get(path, headers=service), 422, "query.org_id")


@pytest.mark.parametrize(
    "user_id",
    [
        "auth0|5f7c8ec7a1b2",
        "ana.lima@example.com",
        "google-oauth2|1234 5678",
        "Łukasz-ß",
        "用户:42",
        "team/sales/ana",
        "a//b/",
    ],
)
async def test_ids_stay_opaque_and_their_location_is_percent_encoded(
    crm: httpx.AsyncClient, api: Any, users: Users, user_id: str
) -> None:
    admin = users.make(Role.ADMIN)
    made = await crm.post(
        "/api/users",
        json={"id": user_id, "email": "someone@example.com", "role": "rep"},
        headers=admin.headers,
    )
    assert made.status_code == 201, made.text
    location = made.headers["location"]
    assert location == "/api/users/" + quote(user_id, safe="")
    assert location.isascii()
    found = await crm.get(location, headers=admin.headers)
    assert found.status_code == 200, found.text
    assert found.json()["id"] == user_id
    lead = await crm.post("/api/leads", json={"title": "Shared"}, headers=admin.headers)
    members = f"/api/leads/{lead.json()['id']}/members/{quote(user_id, safe='')}"
    added = await crm.put(members, json={"role": "follower"}, headers=admin.headers)
    assert added.status_code == 200, added.text
    assert added.json()["user_id"] == user_id
    assert (await crm.delete(members, headers=admin.headers)).status_code == 204


@pytest.mark.parametrize(
    "user_id", ["bob\n", "bob\nSet-Cookie: x=1", "a\tb", " bob", "bob ", "x" * 256, ""]
)
async def test_an_id_no_url_or_header_can_carry_is_refused_and_nothing_is_stored(
    crm: httpx.AsyncClient, api: Any, users: Users, user_id: str
) -> None:
    admin = users.make(Role.ADMIN)
    body = {"id": user_id, "email": "someone@example.com", "role": "rep"}
    api.assert_problem(
        await crm.post("/api/users", json=body, headers=admin.headers), 422, "body.id"
    )
    listed = await crm.get("/api/users", headers=admin.headers)
    assert [user["id"] for user in listed.json()["items"]] == [admin.sub]


async def test_a_path_id_with_whitespace_around_it_is_refused_as_its_document_says(
    crm: httpx.AsyncClient, users: Users
) -> None:
    admin = users.make(Role.ADMIN)
    document = (await crm.get("/openapi.json")).json()
    (parameter,) = document["paths"]["/api/users/{user_id}"]["get"]["parameters"]
    assert parameter["schema"]["pattern"] == ID_PATTERN
    response = await crm.get(f"/api/users/{quote(' ' + admin.sub, safe='')}", headers=admin.headers)
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["path.user_id"]
    found = await crm.get(f"/api/users/{quote(admin.sub, safe='')}", headers=admin.headers)
    assert found.status_code == 200, found.text


async def test_a_text_read_stripped_is_documented_as_needing_more_than_whitespace(
    crm: httpx.AsyncClient, users: Users
) -> None:
    admin = users.make(Role.ADMIN)
    schemas = (await crm.get("/openapi.json")).json()["components"]["schemas"]
    assert schemas["NoteCreate"]["properties"]["body"]["pattern"] == NON_BLANK_PATTERN
    assert schemas["TeamCreate"]["properties"]["name"]["pattern"] == NON_BLANK_PATTERN
    blank = await crm.post("/api/teams", json={"name": "\t"}, headers=admin.headers)
    assert blank.status_code == 422, blank.text
    assert [error["field"] for error in blank.json()["errors"]] == ["body.name"]
