"""Leads through the CRM's HTTP API, with real tokens and a real database."""

from typing import Any
from uuid import uuid4

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users

pytestmark = pytest.mark.asyncio


async def create_lead(client: httpx.AsyncClient, user: ActingUser, **fields: Any) -> dict[str, Any]:
    body = {"title": f"Lead {uuid4().hex[:6]}", **fields}
    response = await client.post("/api/leads", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()


def assert_problem(response: httpx.Response, status: int, *fields: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["type"].startswith("urn:pipedesk:problem:")
    named = {error["field"] for error in problem.get("errors", [])}
    for name in fields:
        assert name in named, f"{name} not named in {problem}"
    return problem


async def test_rep_creates_a_lead_they_own_in_their_only_team(
    crm: httpx.AsyncClient, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["team-a"])
    response = await crm.post(
        "/api/leads",
        json={
            "title": "  Acme expansion ",
            "estimated_value": "1200.50",
            "currency": "EUR",
            "tags": ["x", "x", "y"],
        },
        headers=rep.headers,
    )
    assert response.status_code == 201, response.text
    lead = response.json()
    assert lead["title"] == "Acme expansion"
    assert lead["owner_id"] == rep.sub
    assert lead["org_id"] == rep.principal.org_id
    assert lead["team_id"] == "team-a"
    assert lead["status"] == "new"
    assert lead["priority"] == "normal"
    assert lead["tags"] == ["x", "y"]
    assert lead["estimated_value"] == "1200.50"
    assert lead["version"] == 1
    assert response.headers["location"] == f"/api/leads/{lead['id']}"
    assert response.headers["etag"] == '"1"'
    fetched = await crm.get(f"/api/leads/{lead['id']}", headers=rep.headers)
    assert fetched.status_code == 200
    assert fetched.json() == lead


async def test_user_of_another_org_gets_404_and_an_empty_list(
    crm: httpx.AsyncClient, users: Users
) -> None:
    admin = users.make(Role.ADMIN)
    lead = await create_lead(crm, admin)
    outsider = users.other_org().make(Role.ADMIN, teams=["team-a"])
    response = await crm.get(f"/api/leads/{lead['id']}", headers=outsider.headers)
    assert_problem(response, 404)
    listed = await crm.get("/api/leads", headers=outsider.headers)
    assert listed.status_code == 200
    assert lead["id"] not in {item["id"] for item in listed.json()["items"]}
    for method, path in (("PATCH", ""), ("DELETE", ""), ("POST", "/restore")):
        attempt = await crm.request(
            method,
            f"/api/leads/{lead['id']}{path}",
            json={"title": "x"} if method == "PATCH" else None,
            headers=outsider.headers,
        )
        assert_problem(attempt, 404)


async def test_rep_of_another_team_cannot_see_the_lead(
    crm: httpx.AsyncClient, users: Users
) -> None:
    owner = users.make(Role.REP, teams=["team-a"])
    lead = await create_lead(crm, owner)
    other_rep = users.make(Role.REP, teams=["team-b"])
    same_team_rep = users.make(Role.REP, teams=["team-a"])
    for stranger in (other_rep, same_team_rep):
        assert_problem(await crm.get(f"/api/leads/{lead['id']}", headers=stranger.headers), 404)
        listed = (await crm.get("/api/leads", headers=stranger.headers)).json()["items"]
        assert listed == []


async def test_managers_and_viewers_see_their_teams_leads_only(
    crm: httpx.AsyncClient, users: Users
) -> None:
    in_team = await create_lead(crm, users.make(Role.REP, teams=["team-a"]))
    elsewhere = await create_lead(crm, users.make(Role.REP, teams=["team-b"]))
    for role in (Role.MANAGER, Role.VIEWER):
        reader = users.make(role, teams=["team-a"])
        listed = (await crm.get("/api/leads", headers=reader.headers)).json()["items"]
        assert [item["id"] for item in listed] == [in_team["id"]]
        assert (
            await crm.get(f"/api/leads/{in_team['id']}", headers=reader.headers)
        ).status_code == 200
        assert_problem(await crm.get(f"/api/leads/{elsewhere['id']}", headers=reader.headers), 404)
    admin = users.make(Role.ADMIN, teams=[])
    listed = (await crm.get("/api/leads", headers=admin.headers)).json()["items"]
    assert {item["id"] for item in listed} == {in_team["id"], elsewhere["id"]}


async def test_viewer_may_read_but_not_change(crm: httpx.AsyncClient, users: Users) -> None:
    lead = await create_lead(crm, users.make(Role.REP, teams=["team-a"]))
    viewer = users.make(Role.VIEWER, teams=["team-a"])
    assert_problem(
        await crm.patch(
            f"/api/leads/{lead['id']}", json={"title": "mine now"}, headers=viewer.headers
        ),
        403,
    )
    assert_problem(await crm.delete(f"/api/leads/{lead['id']}", headers=viewer.headers), 403)
    assert_problem(await crm.post("/api/leads", json={"title": "new"}, headers=viewer.headers), 403)
    unchanged = await crm.get(f"/api/leads/{lead['id']}", headers=viewer.headers)
    assert unchanged.json()["title"] == lead["title"]


@pytest.mark.parametrize(
    "field",
    ["org_id", "owner_id", "version", "created_at", "updated_at", "deleted_at", "id", "created_by"],
)
async def test_patch_cannot_mass_assign_protected_fields(
    crm: httpx.AsyncClient, users: Users, field: str
) -> None:
    rep = users.make(Role.REP)
    lead = await create_lead(crm, rep)
    response = await crm.patch(
        f"/api/leads/{lead['id']}", json={"title": "renamed", field: "x"}, headers=rep.headers
    )
    assert_problem(response, 422, f"body.{field}")
    assert (await crm.get(f"/api/leads/{lead['id']}", headers=rep.headers)).json() == lead
    create = await crm.post("/api/leads", json={"title": "t", field: "x"}, headers=rep.headers)
    assert_problem(create, 422, f"body.{field}")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.title"),
        ({"title": "   "}, "body.title"),
        ({"title": "x" * 301}, "body.title"),
        ({"title": "t", "priority": "critical"}, "body.priority"),
        ({"title": "t", "status": "converted"}, "body.status"),
        ({"title": "t", "currency": "eur"}, "body.currency"),
        ({"title": "t", "estimated_value": "-1", "currency": "EUR"}, "body.estimated_value"),
        ({"title": "t", "estimated_value": "1.234", "currency": "EUR"}, "body.estimated_value"),
        ({"title": "t", "estimated_value": "10"}, "body.currency"),
        ({"title": "t", "estimated_value": "1e2", "currency": "EUR"}, "body.estimated_value"),
        ({"title": "t", "estimated_value": 0.125, "currency": "EUR"}, "body.estimated_value"),
        ({"title": "t", "sla_due_at": 0}, "body.sla_due_at"),
        ({"title": "t", "sla_due_at": "2026-01-01T10:00:00"}, "body.sla_due_at"),
        ({"title": "t", "tags": ["ok"] * 21}, "body.tags"),
        ({"title": 42}, "body.title"),
        ([], "body"),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    crm: httpx.AsyncClient, users: Users, body: Any, field: str
) -> None:
    rep = users.make(Role.REP)
    assert_problem(await crm.post("/api/leads", json=body, headers=rep.headers), 422, field)
    assert (await crm.get("/api/leads", headers=rep.headers)).json()["items"] == []


@pytest.mark.parametrize("field", ["title", "status", "priority", "tags"])
async def test_patch_may_not_null_a_required_field(
    crm: httpx.AsyncClient, users: Users, field: str
) -> None:
    rep = users.make(Role.REP)
    lead = await create_lead(crm, rep)
    response = await crm.patch(f"/api/leads/{lead['id']}", json={field: None}, headers=rep.headers)
    assert_problem(response, 422, f"body.{field}")


async def test_malformed_json_is_400_not_500(crm: httpx.AsyncClient, users: Users) -> None:
    rep = users.make(Role.REP)
    headers = {**rep.headers, "content-type": "application/json"}
    for raw in (b"{", b'{"title": "x",}', b"\xff\xfe", b"null"):
        response = await crm.post("/api/leads", content=raw, headers=headers)
        assert response.status_code in {400, 422}, (raw, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert_problem(await crm.post("/api/leads", content=b"{", headers=headers), 400)


async def test_oversized_body_is_413(crm: httpx.AsyncClient, users: Users) -> None:
    rep = users.make(Role.REP)
    huge = {"title": "t", "next_step": "x" * 2_000_000}
    assert_problem(await crm.post("/api/leads", json=huge, headers=rep.headers), 413)

    async def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 65536

    streamed = await crm.post(
        "/api/leads", content=chunks(), headers={**rep.headers, "content-type": "application/json"}
    )
    assert_problem(streamed, 413)


async def test_malformed_lead_id_names_the_parameter(crm: httpx.AsyncClient, users: Users) -> None:
    rep = users.make(Role.REP)
    assert_problem(await crm.get("/api/leads/not-a-uuid", headers=rep.headers), 422, "path.lead_id")


async def test_team_is_required_when_the_creator_has_several(
    crm: httpx.AsyncClient, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["team-a", "team-b"])
    assert_problem(
        await crm.post("/api/leads", json={"title": "t"}, headers=rep.headers), 422, "body.team_id"
    )
    lead = await create_lead(crm, rep, team_id="team-b")
    assert lead["team_id"] == "team-b"
    assert_problem(
        await crm.post("/api/leads", json={"title": "t", "team_id": "team-z"}, headers=rep.headers),
        422,
        "body.team_id",
    )
    admin = users.make(Role.ADMIN, teams=[])
    assert (await create_lead(crm, admin, team_id="team-z"))["team_id"] == "team-z"


async def test_partial_update_changes_only_what_was_sent(
    crm: httpx.AsyncClient, users: Users
) -> None:
    rep = users.make(Role.REP)
    lead = await create_lead(crm, rep, source="referral", next_step="call")
    response = await crm.patch(
        f"/api/leads/{lead['id']}",
        json={"status": "contacted", "next_step": None},
        headers=rep.headers,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["status"] == "contacted"
    assert updated["next_step"] is None
    assert updated["source"] == "referral"
    assert updated["version"] == 2
    assert updated["updated_at"] > lead["updated_at"]
    same = await crm.patch(
        f"/api/leads/{lead['id']}", json={"status": "contacted"}, headers=rep.headers
    )
    assert same.json()["version"] == 2


async def test_patch_answers_the_values_as_stored(crm: httpx.AsyncClient, users: Users) -> None:
    rep = users.make(Role.REP)
    lead = await create_lead(crm, rep)
    path = f"/api/leads/{lead['id']}"
    response = await crm.patch(
        path,
        json={
            "estimated_value": "1200.5",
            "currency": "EUR",
            "sla_due_at": "2026-03-01T12:00:00+02:00",
            "tags": ["b", "a"],
        },
        headers=rep.headers,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["estimated_value"] == "1200.50"
    assert updated["sla_due_at"].startswith("2026-03-01T10:00:00")
    stored = await crm.get(path, headers=rep.headers)
    assert updated == stored.json()
    assert response.headers["etag"] == stored.headers["etag"] == '"2"'


async def test_if_match_guards_against_lost_updates(crm: httpx.AsyncClient, users: Users) -> None:
    rep = users.make(Role.REP)
    lead = await create_lead(crm, rep)
    path = f"/api/leads/{lead['id']}"
    first = await crm.patch(path, json={"title": "a"}, headers={**rep.headers, "If-Match": '"1"'})
    assert first.status_code == 200
    assert first.headers["etag"] == '"2"'
    assert_problem(
        await crm.patch(path, json={"title": "b"}, headers={**rep.headers, "If-Match": '"1"'}), 412
    )
    assert_problem(
        await crm.patch(path, json={"title": "b"}, headers={**rep.headers, "If-Match": "garbage"}),
        422,
        "header.if-match",
    )
    assert (await crm.get(path, headers=rep.headers)).json()["title"] == "a"


async def test_delete_moves_to_trash_and_restore_brings_back(
    crm: httpx.AsyncClient, users: Users
) -> None:
    rep = users.make(Role.REP)
    lead = await create_lead(crm, rep)
    path = f"/api/leads/{lead['id']}"
    deleted = await crm.delete(path, headers=rep.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert "content-type" not in deleted.headers
    assert_problem(await crm.get(path, headers=rep.headers), 404)
    assert_problem(await crm.delete(path, headers=rep.headers), 404)
    assert (await crm.get("/api/leads", headers=rep.headers)).json()["items"] == []
    trash = (await crm.get("/api/leads", params={"deleted": "true"}, headers=rep.headers)).json()[
        "items"
    ]
    assert [item["id"] for item in trash] == [lead["id"]]
    assert trash[0]["deleted_at"] is not None
    restored = await crm.post(f"{path}/restore", headers=rep.headers)
    assert restored.status_code == 200
    assert restored.json()["deleted_at"] is None
    assert restored.json()["version"] == 3
    assert_problem(await crm.post(f"{path}/restore", headers=rep.headers), 409)
    assert (await crm.get(path, headers=rep.headers)).status_code == 200


async def test_list_pages_with_a_cursor_without_gaps_or_repeats(
    crm: httpx.AsyncClient, users: Users
) -> None:
    rep = users.make(Role.REP)
    created = [await create_lead(crm, rep, priority="high") for _ in range(5)]
    await create_lead(crm, rep, priority="low")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, "priority": "high"}
        if cursor:
            params["cursor"] = cursor
        page = (await crm.get("/api/leads", params=params, headers=rep.headers)).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [lead["id"] for lead in reversed(created)]
    oldest_first = (
        await crm.get(
            "/api/leads", params={"sort": "created_at", "priority": "high"}, headers=rep.headers
        )
    ).json()
    assert [item["id"] for item in oldest_first["items"]] == [lead["id"] for lead in created]


async def test_tampered_or_foreign_cursor_is_400(crm: httpx.AsyncClient, users: Users) -> None:
    rep = users.make(Role.REP)
    for _ in range(3):
        await create_lead(crm, rep)
    page = (await crm.get("/api/leads", params={"limit": 1}, headers=rep.headers)).json()
    cursor = page["next_cursor"]
    payload, mac = cursor.split(".")
    tampered = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + mac
    assert_problem(
        await crm.get("/api/leads", params={"limit": 1, "cursor": tampered}, headers=rep.headers),
        400,
        "query.cursor",
    )
    other_query = await crm.get(
        "/api/leads",
        params={"limit": 1, "cursor": cursor, "sort": "-updated_at"},
        headers=rep.headers,
    )
    assert_problem(other_query, 400, "query.cursor")
    assert_problem(await crm.get("/api/leads", params={"cursor": "x"}, headers=rep.headers), 400)


async def test_list_filters_and_text_search(crm: httpx.AsyncClient, users: Users) -> None:
    rep = users.make(Role.REP)
    acme = await create_lead(crm, rep, title="Acme renewal", company_name="Acme Corp")
    await create_lead(crm, rep, title="Globex pilot", status="qualified")
    literal = await create_lead(crm, rep, title="100% uptime deal")
    by_text = (await crm.get("/api/leads", params={"q": "acme"}, headers=rep.headers)).json()[
        "items"
    ]
    assert [item["id"] for item in by_text] == [acme["id"]]
    by_percent = (await crm.get("/api/leads", params={"q": "%"}, headers=rep.headers)).json()[
        "items"
    ]
    assert [item["id"] for item in by_percent] == [literal["id"]]
    by_status = (
        await crm.get("/api/leads", params={"status": "qualified"}, headers=rep.headers)
    ).json()["items"]
    assert [item["title"] for item in by_status] == ["Globex pilot"]
    assert_problem(
        await crm.get("/api/leads", params={"status": "won"}, headers=rep.headers),
        422,
        "query.status.0",
    )
    assert_problem(
        await crm.get("/api/leads", params={"limit": 0}, headers=rep.headers), 422, "query.limit"
    )
    assert_problem(
        await crm.get("/api/leads", params={"limit": 101}, headers=rep.headers), 422, "query.limit"
    )


async def test_internal_acl_requires_a_service_token(
    crm: httpx.AsyncClient, users: Users, identity: Any
) -> None:
    from dev_identity.keystore import KeyStore
    from pipedesk_common.auth import ServiceTokenIssuer
    from pipedesk_common.clock import SystemClock

    rep = users.make(Role.REP, teams=["team-a"])
    lead = await create_lead(crm, rep)
    path = f"/internal/acl/lead/{lead['id']}"
    assert_problem(await crm.get(path, headers=rep.headers), 401)
    assert_problem(await crm.get(path), 401)
    store = KeyStore(identity.key_dir)
    timeline = ServiceTokenIssuer("timeline", store.service_key("timeline"), clock=SystemClock())
    response = await crm.get(path, headers={"Authorization": f"Bearer {timeline.token_for('crm')}"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "type": "lead",
        "id": lead["id"],
        "org_id": rep.principal.org_id,
        "owner_id": rep.sub,
        "team_id": "team-a",
        "members": {},
        "deleted": False,
        "version": 1,
    }
    for stranger in ("gateway", "accounts"):
        issuer = ServiceTokenIssuer(stranger, store.service_key(stranger), clock=SystemClock())
        refused = await crm.get(
            path, headers={"Authorization": f"Bearer {issuer.token_for('crm')}"}
        )
        assert_problem(refused, 403)
    # The automation service decides with the access list too (who may save into a record).
    automation = ServiceTokenIssuer(
        "automation", store.service_key("automation"), clock=SystemClock()
    )
    allowed = await crm.get(
        path, headers={"Authorization": f"Bearer {automation.token_for('crm')}"}
    )
    assert allowed.status_code == 200, allowed.text
    wrong_audience = timeline.token_for("tasks")
    assert_problem(await crm.get(path, headers={"Authorization": f"Bearer {wrong_audience}"}), 401)
    missing = await crm.get(
        f"/internal/acl/lead/{uuid4()}",
        headers={"Authorization": f"Bearer {timeline.token_for('crm')}"},
    )
    assert_problem(missing, 404)


async def test_internal_record_names_are_for_the_drive_and_automation_services_only(
    crm: httpx.AsyncClient, users: Users, identity: Any
) -> None:
    from dev_identity.keystore import KeyStore
    from pipedesk_common.auth import ServiceTokenIssuer
    from pipedesk_common.clock import SystemClock

    rep = users.make(Role.REP, teams=["team-a"])
    lead = await create_lead(crm, rep)
    path = f"/internal/records/lead/{lead['id']}"
    store = KeyStore(identity.key_dir)

    def token_of(service: str) -> dict[str, str]:
        issuer = ServiceTokenIssuer(service, store.service_key(service), clock=SystemClock())
        return {"Authorization": f"Bearer {issuer.token_for('crm')}"}

    assert_problem(await crm.get(path, headers=rep.headers), 401)
    assert_problem(await crm.get(path, headers=token_of("timeline")), 403)
    response = await crm.get(path, headers=token_of("drive"))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "type": "lead",
        "id": lead["id"],
        "org_id": rep.principal.org_id,
        "name": lead["title"],
        "deleted": False,
        "version": 1,
        "lead_id": None,
        "stage": None,
    }
    # The automation service reads a deal's stage (its rules run on deals in given stages).
    made = await crm.post(
        "/api/deals", json={"title": "Expansion", "stage": "proposal"}, headers=rep.headers
    )
    assert made.status_code == 201, made.text
    deal = await crm.get(
        f"/internal/records/deal/{made.json()['id']}", headers=token_of("automation")
    )
    assert deal.status_code == 200, deal.text
    assert (deal.json()["type"], deal.json()["stage"]) == ("deal", "proposal")
    assert_problem(
        await crm.get(f"/internal/records/deal/{uuid4()}", headers=token_of("drive")), 404
    )
    assert_problem(
        await crm.get(f"/internal/records/note/{uuid4()}", headers=token_of("drive")), 422
    )


async def test_request_ids_and_latency_by_route_template(
    crm: httpx.AsyncClient, users: Users
) -> None:
    rep = users.make(Role.REP)
    lead = await create_lead(crm, rep)
    response = await crm.get(
        f"/api/leads/{lead['id']}", headers={**rep.headers, "X-Request-ID": "req-42"}
    )
    assert response.headers["x-request-id"] == "req-42"
    generated = await crm.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] != "bad id with spaces"
    metrics = (await crm.get("/metrics")).text
    assert 'route="/api/leads/{lead_id}",service="crm",status="200"' in metrics
    assert str(lead["id"]) not in metrics


async def test_readiness_reports_database_and_broker(crm: httpx.AsyncClient) -> None:
    response = await crm.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}
    assert (await crm.get("/healthz")).json() == {"status": "ok"}


async def test_readiness_fails_when_the_database_is_unreachable(
    crm_app: Any, own_broker_prefix: str
) -> None:
    from pipedesk_testkit.servers import free_port

    unreachable = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    # A stack of its own on the broker: the run's CRM queues belong to the run's database.
    async with crm_app(DATABASE_URL=unreachable, BROKER_PREFIX=own_broker_prefix) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("unavailable")
    assert response.json()["checks"]["broker"] == "ok"


async def test_control_characters_are_refused_naming_the_field_and_nothing_is_stored(
    crm: httpx.AsyncClient, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["team-a"])
    for body, field in (
        ({"title": "Acme\u0000"}, "body.title"),
        ({"title": "Acme", "tags": ["ok", "x\u001b[31m"]}, "body.tags.1"),
    ):
        refused = await crm.post("/api/leads", json=body, headers=rep.headers)
        assert_problem(refused, 422, field)
    assert_problem(
        await crm.get("/api/leads", params={"q": "a\u0000"}, headers=rep.headers), 422, "query.q"
    )
    assert (await crm.get("/api/leads", headers=rep.headers)).json()["items"] == []
    kept = await create_lead(crm, rep, title="Acme", next_step="call\n\tthen write")
    assert kept["next_step"] == "call\n\tthen write"


async def read_and_write(client: httpx.AsyncClient, rep: ActingUser) -> list[httpx.Response]:
    return [
        await client.get("/api/leads", headers=rep.headers),
        await client.post(
            "/api/leads",
            json={"title": "Acme"},
            headers={**rep.headers, "Idempotency-Key": str(uuid4())},
        ),
    ]


def assert_retry_later(answers: list[httpx.Response]) -> None:
    for answer in answers:
        problem = assert_problem(answer, 503)
        assert problem["type"].endswith(":service-unavailable"), problem
        assert int(answer.headers["retry-after"]) > 0
        assert answer.headers["x-request-id"]


async def test_a_database_unreachable_from_the_start_is_503_with_retry_after_not_500(
    crm_app: Any, own_broker_prefix: str, users: Users
) -> None:
    from pipedesk_testkit.servers import free_port

    rep = users.make(Role.REP, teams=["team-a"])
    unreachable = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    async with crm_app(DATABASE_URL=unreachable, BROKER_PREFIX=own_broker_prefix) as client:
        assert_retry_later(await read_and_write(client, rep))


async def test_a_database_lost_under_pooled_connections_is_503_until_it_is_back(
    crm_app: Any, own_broker_prefix: str, service_env: dict[str, str], users: Users
) -> None:
    from pipedesk_testkit.proxy import server_of, tcp_proxy, through

    rep = users.make(Role.REP, teams=["team-a"])
    with tcp_proxy(*server_of(service_env["DATABASE_URL"])) as proxy:
        proxied = through(proxy, service_env["DATABASE_URL"])
        async with crm_app(DATABASE_URL=proxied, BROKER_PREFIX=own_broker_prefix) as client:
            assert (await client.get("/api/leads", headers=rep.headers)).status_code == 200
            proxy.cut()
            assert_retry_later(await read_and_write(client, rep))
            proxy.restore()
            back = await read_and_write(client, rep)
    assert [answer.status_code for answer in back] == [200, 201], back[-1].text


@pytest.mark.parametrize("kind", ["lead", "deal", "contact", "company"])
async def test_the_document_links_a_read_records_etag_to_its_conditional_change(
    crm: httpx.AsyncClient, users: Users, kind: str
) -> None:
    plural = {"company": "companies"}.get(kind, f"{kind}s")
    document = (await crm.get("/openapi.json")).json()
    update = f"#/paths/~1api~1{plural}~1{{{kind}_id}}/patch"
    for method, path, status, record_id in [
        ("get", f"/api/{plural}/{{{kind}_id}}", "200", f"$request.path.{kind}_id"),
        ("post", f"/api/{plural}", "201", "$response.body#/id"),
    ]:
        response = document["paths"][path][method]["responses"][status]
        assert "ETag" in response["headers"]
        (link,) = response["links"].values()
        assert link["operationRef"] == update
        assert link["parameters"] == {
            f"path.{kind}_id": record_id,
            "header.if-match": "$response.header.ETag",
        }
    # Followed as it says, the link changes the record; the same ETag once more is refused.
    admin = users.make(Role.ADMIN)
    field = "name" if kind in {"contact", "company"} else "title"
    made = await crm.post(f"/api/{plural}", json={field: "First"}, headers=admin.headers)
    read = await crm.get(f"/api/{plural}/{made.json()['id']}", headers=admin.headers)
    changed = await crm.patch(
        f"/api/{plural}/{made.json()['id']}",
        json={field: "Second"},
        headers={**admin.headers, "If-Match": read.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text
    stale = await crm.patch(
        f"/api/{plural}/{made.json()['id']}",
        json={field: "Third"},
        headers={**admin.headers, "If-Match": read.headers["ETag"]},
    )
    assert_problem(stale, 412)
