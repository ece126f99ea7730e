"""Deals, contacts, companies, lead conversion, members and notes through the HTTP API."""

import re
from typing import Any
from uuid import uuid4

import httpx
import pytest

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import Users

pytestmark = pytest.mark.asyncio


async def test_contacts_keep_several_emails_lower_case_and_are_found_by_any(
    crm: httpx.AsyncClient, api: Any, users: Users
) -> None:
    rep = users.make(Role.REP)
    company = await api.create("companies", rep, name="Acme", domain="ACME.example.COM")
    assert company["domain"] == "acme.example.com"
    contact = await api.create(
        "contacts",
        rep,
        name="Ada Lovelace",
        emails=["Ada@Acme.Example.com", "ada.l@home.example.org", "ada@acme.example.com"],
        phones=["+44 20 7946 0000"],
        company_id=company["id"],
    )
    assert contact["emails"] == ["ada@acme.example.com", "ada.l@home.example.org"]
    for params in ({"q": "HOME.example"}, {"email": "ADA.L@home.example.org"}, {"q": "lovelace"}):
        found = (await crm.get("/api/contacts", params=params, headers=rep.headers)).json()
        assert [item["id"] for item in found["items"]] == [contact["id"]], params
    lead = await api.create("leads", rep, title="Renewal", contact_ids=[contact["id"]])
    deal = await api.create("deals", rep, title="Upsell", contact_ids=[contact["id"]])
    await api.create("leads", rep, title="Unrelated")
    for plural, record in (("leads", lead), ("deals", deal)):
        found = await crm.get(f"/api/{plural}", params={"q": "ada.l@HOME"}, headers=rep.headers)
        assert [item["id"] for item in found.json()["items"]] == [record["id"]], plural
    by_company = await crm.get(
        "/api/contacts", params={"company_id": company["id"]}, headers=rep.headers
    )
    assert [item["id"] for item in by_company.json()["items"]] == [contact["id"]]
    # contacts and companies are readable by the whole org, and by nobody outside it
    viewer = users.make(Role.VIEWER, teams=["elsewhere"])
    assert (await crm.get(f"/api/contacts/{contact['id']}", headers=viewer.headers)).is_success
    api.assert_problem(
        await crm.patch(
            f"/api/contacts/{contact['id']}", json={"name": "x"}, headers=viewer.headers
        ),
        403,
    )
    outsider = users.other_org().make(Role.ADMIN)
    for path in (f"/api/contacts/{contact['id']}", f"/api/companies/{company['id']}"):
        api.assert_problem(await crm.get(path, headers=outsider.headers), 404)
        api.assert_problem(await crm.delete(path, headers=outsider.headers), 404)
    assert (await crm.get("/api/contacts", headers=outsider.headers)).json()["items"] == []


async def test_deals_are_created_listed_updated_deleted_and_restored(
    crm: httpx.AsyncClient, api: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    deal = await api.create("deals", rep, amount="5000", currency="EUR", stage="proposal")
    assert (deal["owner_id"], deal["team_id"], deal["stage"], deal["version"]) == (
        rep.sub,
        "t1",
        "proposal",
        1,
    )
    won = await api.create("deals", rep, stage="won")
    path = f"/api/deals/{deal['id']}"
    updated = await crm.patch(
        path,
        json={"stage": "negotiation", "expected_close_date": "2027-01-31"},
        headers=rep.headers,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    open_deals = await crm.get("/api/deals", params={"open": "true"}, headers=rep.headers)
    assert [item["id"] for item in open_deals.json()["items"]] == [deal["id"]]
    closed = await crm.get("/api/deals", params={"open": "false"}, headers=rep.headers)
    assert [item["id"] for item in closed.json()["items"]] == [won["id"]]
    won_and_open = await crm.get(
        "/api/deals", params={"open": "true", "stage": "won"}, headers=rep.headers
    )
    assert won_and_open.json() == {"items": [], "next_cursor": None}
    assert (await crm.delete(path, headers=rep.headers)).status_code == 204
    api.assert_problem(await crm.get(path, headers=rep.headers), 404)
    restored = await crm.post(f"{path}/restore", headers=rep.headers)
    assert restored.json()["deleted_at"] is None
    assert restored.json()["version"] == 4
    other_rep = users.make(Role.REP, teams=["t1"])
    api.assert_problem(await crm.get(path, headers=other_rep.headers), 404)


async def test_converting_a_lead_makes_a_linked_deal_once(
    crm: httpx.AsyncClient, api: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    company = await api.create("companies", rep)
    contact = await api.create("contacts", rep, emails=["c@example.com"])
    lead = await api.create(
        "leads",
        rep,
        company_id=company["id"],
        contact_ids=[contact["id"]],
        estimated_value="1200.50",
        currency="USD",
    )
    follower = users.make(Role.REP, teams=["t2"])
    await crm.get("/api/users", headers=follower.headers)  # joins the directory
    put = await crm.put(
        f"/api/leads/{lead['id']}/members/{follower.sub}",
        json={"role": "follower"},
        headers=rep.headers,
    )
    assert put.status_code == 200, put.text
    converted = await crm.post(f"/api/leads/{lead['id']}/convert", headers=rep.headers)
    assert converted.status_code == 201, converted.text
    deal = converted.json()
    assert deal["lead_id"] == lead["id"]
    assert (deal["company_id"], deal["contact_ids"]) == (company["id"], [contact["id"]])
    assert (deal["amount"], deal["currency"], deal["owner_id"]) == ("1200.50", "USD", rep.sub)
    assert converted.headers["location"] == f"/api/deals/{deal['id']}"
    lead_now = (await crm.get(f"/api/leads/{lead['id']}", headers=rep.headers)).json()
    assert lead_now["status"] == "converted"
    members = (await crm.get(f"/api/deals/{deal['id']}/members", headers=rep.headers)).json()[
        "items"
    ]
    assert [(m["user_id"], m["role"]) for m in members] == [(follower.sub, "follower")]
    assert (await crm.get(f"/api/deals/{deal['id']}", headers=follower.headers)).is_success
    api.assert_problem(await crm.post(f"/api/leads/{lead['id']}/convert", headers=rep.headers), 409)


async def test_members_give_access_and_the_directory_guards_who_can_be_added(
    crm: httpx.AsyncClient, api: Any, users: Users
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    lead = await api.create("leads", owner)
    helper = users.make(Role.REP, teams=["t9"])
    path = f"/api/leads/{lead['id']}"
    # not in the directory yet: nobody can be handed access by a guessed id
    api.assert_problem(
        await crm.put(
            f"{path}/members/{helper.sub}", json={"role": "collaborator"}, headers=owner.headers
        ),
        422,
        "path.user_id",
    )
    outsider = users.other_org().make(Role.REP, sub=f"out-{uuid4().hex[:6]}")
    await crm.get("/api/users", headers=outsider.headers)
    await crm.get("/api/users", headers=helper.headers)
    api.assert_problem(
        await crm.put(
            f"{path}/members/{outsider.sub}", json={"role": "follower"}, headers=owner.headers
        ),
        422,
        "path.user_id",
    )
    api.assert_problem(await crm.get(path, headers=helper.headers), 404)
    added = await crm.put(
        f"{path}/members/{helper.sub}", json={"role": "collaborator"}, headers=owner.headers
    )
    assert added.status_code == 200, added.text
    assert (await crm.patch(path, json={"title": "edited"}, headers=helper.headers)).is_success
    listed = (await crm.get("/api/leads", headers=helper.headers)).json()["items"]
    assert [item["id"] for item in listed] == [lead["id"]]
    api.assert_problem(
        await crm.put(
            f"{path}/members/{helper.sub}", json={"role": "owner"}, headers=owner.headers
        ),
        422,
        "body.role",
    )
    await crm.put(f"{path}/members/{helper.sub}", json={"role": "follower"}, headers=owner.headers)
    api.assert_problem(await crm.patch(path, json={"title": "x"}, headers=helper.headers), 403)
    # a member may leave on their own
    assert (
        await crm.delete(f"{path}/members/{helper.sub}", headers=helper.headers)
    ).status_code == 204
    api.assert_problem(await crm.get(path, headers=helper.headers), 404)
    api.assert_problem(await crm.delete(f"{path}/members/{helper.sub}", headers=owner.headers), 404)
    # another org sees nothing; a viewer of the team sees but cannot manage
    foreign = users.other_org().make(Role.ADMIN)
    api.assert_problem(await crm.get(f"{path}/members", headers=foreign.headers), 404)
    api.assert_problem(
        await crm.put(
            f"{path}/members/{helper.sub}", json={"role": "follower"}, headers=foreign.headers
        ),
        404,
    )
    viewer = users.make(Role.VIEWER, teams=["t1"])
    assert (await crm.get(f"{path}/members", headers=viewer.headers)).json()["items"] == []
    api.assert_problem(
        await crm.put(
            f"{path}/members/{helper.sub}", json={"role": "follower"}, headers=viewer.headers
        ),
        403,
    )


async def test_notes_are_added_by_editors_and_changed_by_their_author_only(
    crm: httpx.AsyncClient, api: Any, users: Users
) -> None:
    owner = users.make(Role.REP, teams=["t1"])
    manager = users.make(Role.MANAGER, teams=["t1"])
    viewer = users.make(Role.VIEWER, teams=["t1"])
    for plural in ("leads", "deals", "contacts", "companies"):
        record = await api.create(plural, owner)
        notes = f"/api/{plural}/{record['id']}/notes"
        first = await crm.post(notes, json={"body": " Called them. "}, headers=owner.headers)
        assert first.status_code == 201, first.text
        note = first.json()
        assert (note["body"], note["author_id"], note["record_id"]) == (
            "Called them.",
            owner.sub,
            record["id"],
        )
        await crm.post(notes, json={"body": "Second"}, headers=manager.headers)
        api.assert_problem(await crm.post(notes, json={"body": "x"}, headers=viewer.headers), 403)
        api.assert_problem(
            await crm.post(notes, json={"body": ""}, headers=owner.headers), 422, "body.body"
        )
        listed = (await crm.get(notes, headers=viewer.headers)).json()
        assert [item["body"] for item in listed["items"]] == ["Second", "Called them."]
        mine = f"{notes}/{note['id']}"
        api.assert_problem(
            await crm.patch(mine, json={"body": "hijacked"}, headers=manager.headers), 403
        )
        api.assert_problem(await crm.delete(mine, headers=manager.headers), 403)
        edited = await crm.patch(mine, json={"body": "Called them twice."}, headers=owner.headers)
        assert edited.json()["version"] == 2
        assert (await crm.delete(mine, headers=owner.headers)).status_code == 204
        api.assert_problem(await crm.delete(mine, headers=owner.headers), 404)
        outsider = users.other_org().make(Role.ADMIN)
        api.assert_problem(await crm.get(notes, headers=outsider.headers), 404)
        api.assert_problem(await crm.post(notes, json={"body": "x"}, headers=outsider.headers), 404)


@pytest.mark.parametrize(
    ("plural", "body", "field"),
    [
        ("deals", {"title": "t", "stage": "closed"}, "body.stage"),
        ("deals", {"title": "t", "amount": "-5", "currency": "EUR"}, "body.amount"),
        ("deals", {"title": "t", "amount": "5"}, "body.currency"),
        ("deals", {"title": "t", "expected_close_date": "31/01/2027"}, "body.expected_close_date"),
        ("deals", {"title": "t", "expected_close_date": 0}, "body.expected_close_date"),
        ("deals", {"title": "t", "amount": "007", "currency": "EUR"}, "body.amount"),
        ("deals", {"title": "x" * 301}, "body.title"),
        ("deals", {"title": "t", "company_id": str(uuid4())}, "body.company_id"),
        ("deals", {"title": "t", "contact_ids": [str(uuid4())]}, "body.contact_ids.0"),
        ("deals", {"title": "t", "contact_ids": ["nope"]}, "body.contact_ids.0"),
        ("leads", {"title": "t", "company_id": str(uuid4())}, "body.company_id"),
        ("leads", {"title": "t", "contact_ids": [str(uuid4())]}, "body.contact_ids.0"),
        ("contacts", {"name": "n", "emails": ["not-an-email"]}, "body.emails.0"),
        ("contacts", {"name": "n", "emails": ["a@b.co"] * 1 + ["x@y"]}, "body.emails.1"),
        ("contacts", {"name": "n", "phones": ["call me"]}, "body.phones.0"),
        ("contacts", {"name": "n" * 301}, "body.name"),
        ("contacts", {"name": "n", "company_id": str(uuid4())}, "body.company_id"),
        ("contacts", {"name": "n", "emails": [f"a{i}@b.co" for i in range(21)]}, "body.emails"),
        ("companies", {"name": "n", "domain": "not a domain"}, "body.domain"),
        ("companies", {}, "body.name"),
        ("companies", {"name": "n", "website": "x"}, "body.website"),
    ],
)
async def test_bad_input_on_every_record_is_422_naming_the_field(
    crm: httpx.AsyncClient, api: Any, users: Users, plural: str, body: Any, field: str
) -> None:
    rep = users.make(Role.REP)
    api.assert_problem(await crm.post(f"/api/{plural}", json=body, headers=rep.headers), 422, field)
    assert (await crm.get(f"/api/{plural}", headers=rep.headers)).json()["items"] == []


@pytest.mark.parametrize("plural", ["leads", "deals", "contacts", "companies"])
@pytest.mark.parametrize("field", ["owner_id", "org_id", "created_at", "version", "deleted_at"])
async def test_mass_assignment_is_422_and_leaves_the_row_unchanged(
    crm: httpx.AsyncClient, api: Any, users: Users, database_url: str, plural: str, field: str
) -> None:
    rep = users.make(Role.REP)
    record = await api.create(plural, rep)
    path = f"/api/{plural}/{record['id']}"
    name = "title" if plural in {"leads", "deals"} else "name"
    attempt = await crm.patch(path, json={name: "renamed", field: "x"}, headers=rep.headers)
    api.assert_problem(attempt, 422, f"body.{field}")
    assert (await crm.get(path, headers=rep.headers)).json() == record
    assert [row["action"] for row in await api.audit(database_url, record["id"])] == ["created"]


async def test_a_foreign_company_or_contact_cannot_be_linked(
    crm: httpx.AsyncClient, api: Any, users: Users
) -> None:
    outsider = users.other_org().make(Role.ADMIN)
    foreign_company = await api.create("companies", outsider)
    foreign_contact = await api.create("contacts", outsider)
    rep = users.make(Role.REP)
    lead = await api.create("leads", rep)
    api.assert_problem(
        await crm.patch(
            f"/api/leads/{lead['id']}",
            json={"company_id": foreign_company["id"]},
            headers=rep.headers,
        ),
        422,
        "body.company_id",
    )
    api.assert_problem(
        await crm.post(
            "/api/deals",
            json={"title": "t", "contact_ids": [foreign_contact["id"]]},
            headers=rep.headers,
        ),
        422,
        "body.contact_ids.0",
    )
    assert (await crm.get(f"/api/leads/{lead['id']}", headers=rep.headers)).json() == lead


async def test_every_malformed_record_id_in_a_path_is_422_naming_it(
    crm: httpx.AsyncClient, api: Any, users: Users
) -> None:
    admin = users.make(Role.ADMIN)
    document = (await crm.get("/openapi.json")).json()
    checked = 0
    for path, operations in document["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            uuid_params = [
                p["name"]
                for p in operation.get("parameters", [])
                if p["in"] == "path" and p["schema"].get("format") == "uuid"
            ]
            for name in uuid_params:
                url = path.replace(f"{{{name}}}", "not-a-uuid")
                url = re.sub(r"\{[a-z_]+\}", str(uuid4()), url)
                response = await crm.request(method.upper(), url, json={}, headers=admin.headers)
                api.assert_problem(response, 422, f"path.{name}")
                checked += 1
    assert checked >= 40


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/deals", {"stage": "closed"}, "query.stage.0"),
        ("/api/deals", {"open": "perhaps"}, "query.open"),
        ("/api/deals", {"lead_id": "x"}, "query.lead_id"),
        ("/api/contacts", {"email": "not-an-address"}, "query.email"),
        ("/api/contacts", {"q": "x" * 201}, "query.q"),
        ("/api/companies", {"sort": "name"}, "query.sort"),
        ("/api/leads", {"company_id": "x"}, "query.company_id"),
        ("/api/users", {"limit": 0}, "query.limit"),
        ("/api/teams", {"archived": "maybe"}, "query.archived"),
    ],
)
async def test_bad_list_parameters_are_422_naming_them(
    crm: httpx.AsyncClient, api: Any, users: Users, path: str, params: dict[str, Any], field: str
) -> None:
    rep = users.make(Role.REP)
    api.assert_problem(await crm.get(path, params=params, headers=rep.headers), 422, field)
