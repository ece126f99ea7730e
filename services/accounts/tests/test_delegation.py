"""Domain-wide delegation: an org admin stores a service account key (sealed); tokens for that
org's users come from the JWT-bearer grant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from pipedesk_common.auth import Role
from pipedesk_common.google import scopes_for
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.servers import serve_in_thread

if TYPE_CHECKING:
    from conftest import Accounts

pytestmark = pytest.mark.asyncio

TASKS = list(scopes_for(["tasks"]))
CALENDAR = list(scopes_for(["calendar"]))


@pytest.fixture
def directory(service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The CRM whose directory the accounts service asks whom a delegated token may be for."""
    with serve_in_thread(build_crm(CrmSettings(**service_env))) as crm_url:
        monkeypatch.setenv("CRM_URL", crm_url)
        yield crm_url


async def known(crm_url: str, *people: ActingUser) -> None:
    """Each of ``people`` has used PipeDesk: the directory of their org knows them."""
    async with httpx.AsyncClient(base_url=crm_url) as crm:
        for person in people:
            assert (await crm.get("/api/users", headers=person.headers)).status_code == 200


async def service_account(
    accounts: Accounts,
    domain: str,
    *,
    scopes: list[str] | None = None,
    authorised_domain: str | None = None,
) -> dict[str, Any]:
    """A service account registered at Google, whose client id the Workspace admin of
    ``authorised_domain`` (default ``domain``) authorised for ``scopes`` (default Tasks'); its
    JSON key file, as Google hands it out."""
    key = RSAKey.generate_key(2048, private=True)
    email = f"pipedesk-{domain.split('.', maxsplit=1)[0]}@project.iam.gserviceaccount.com"
    registered = await accounts.google.admin(
        "POST", "/service-accounts", json={"email": email, "public_jwk": key.as_dict(private=False)}
    )
    client_id = registered.json()["client_id"]
    await accounts.google.admin(
        "PUT",
        f"/domains/{authorised_domain or domain}/delegation/{client_id}",
        json={"scopes": TASKS if scopes is None else scopes},
    )
    return {
        "type": "service_account",
        "project_id": "project",
        "client_email": email,
        "client_id": client_id,
        "private_key_id": "k-" + key.thumbprint()[:12],
        "private_key": key.as_pem(private=True).decode(),
        "token_uri": "https://evil.example.com/token",
    }


async def test_tokens_for_an_orgs_users_come_from_the_jwt_bearer_grant(
    accounts: Accounts, users: Users, directory: str
) -> None:
    admin, rep = users.make(Role.ADMIN), users.make(Role.REP)
    await known(directory, admin, rep)
    domain = rep.principal.email.split("@")[1]
    key_file = await service_account(accounts, domain)
    configured = await accounts.client.put(
        "/api/accounts/google/delegation",
        json={"domain": domain, "service_account_key": key_file},
        headers=admin.headers,
    )
    assert configured.status_code == 200, configured.text
    assert configured.json() == {
        "domain": domain,
        "client_email": key_file["client_email"],
        "private_key_id": key_file["private_key_id"],
        "configured_by": admin.sub,
        "updated_at": configured.json()["updated_at"],
    }
    stored = await accounts.rows(
        "SELECT private_key FROM accounts.google_delegations WHERE org_id = $1",
        admin.principal.org_id,
    )
    assert b"PRIVATE KEY" not in stored[0]["private_key"]

    stranger = users.other_org().make(Role.ADMIN)
    for method in ("GET", "DELETE"):
        hidden = await accounts.client.request(
            method, "/api/accounts/google/delegation", headers=stranger.headers
        )
        assert hidden.status_code == 404  # another org's admin sees only their own org's
    own = await accounts.client.get("/api/accounts/google/delegation", headers=admin.headers)
    assert own.json()["client_email"] == key_file["client_email"]

    before = len(await accounts.google.requests(api="oauth2.token"))
    answer = await accounts.token(rep, TASKS, email=rep.principal.email)  # never connected
    assert answer.status_code == 200, answer.text
    assert answer.json()["via"] == "delegation"
    cached = await accounts.token(rep, TASKS, email=rep.principal.email)
    assert cached.json()["access_token"] == answer.json()["access_token"]
    assert len(await accounts.google.requests(api="oauth2.token")) == before + 1
    async with httpx.AsyncClient() as http:
        lists = await http.get(
            accounts.google.emulator_url + "/tasks/v1/users/@me/lists",
            headers={"Authorization": f"Bearer {answer.json()['access_token']}"},
        )
    assert lists.status_code == 200
    assert await accounts.google.requests(user=rep.principal.email, api="tasks.tasklists.list")

    status = (await accounts.client.get("/api/accounts/google", headers=rep.headers)).json()
    assert status["via"] == "delegation"
    assert status["status"] == "connected"

    # Someone outside the delegated domain is not impersonated: their own connection counts.
    outsider = await accounts.token(rep, TASKS, email="rep@elsewhere.example.org")
    assert outsider.json()["type"] == "urn:pipedesk:problem:google-not-connected"

    removed = await accounts.client.delete("/api/accounts/google/delegation", headers=admin.headers)
    assert removed.status_code == 204
    after = await accounts.token(rep, TASKS, email=rep.principal.email)
    assert after.status_code == 409


async def test_google_refusing_the_delegation_is_a_clear_problem(
    accounts: Accounts, users: Users, directory: str
) -> None:
    admin, rep = users.make(Role.ADMIN), users.make(Role.REP)
    await known(directory, admin, rep)
    domain = rep.principal.email.split("@")[1]
    key_file = await service_account(accounts, domain, authorised_domain="another.example.net")
    configured = await accounts.client.put(
        "/api/accounts/google/delegation",
        json={"domain": domain, "service_account_key": key_file},
        headers=admin.headers,
    )
    assert configured.status_code == 200
    refused = await accounts.token(rep, TASKS, email=rep.principal.email)
    assert refused.status_code == 502
    problem = refused.json()
    assert problem["type"] == "urn:pipedesk:problem:google-delegation-refused"
    assert problem["errors"][0]["code"] == "unauthorized_client"


async def test_a_scope_the_workspace_admin_did_not_authorise_is_refused_by_google(
    accounts: Accounts, users: Users, directory: str
) -> None:
    """Google's admin console lists, per client id, the scopes it may be delegated: Tasks was
    authorised, Calendar was not."""
    admin, rep = users.make(Role.ADMIN), users.make(Role.REP)
    await known(directory, admin, rep)
    domain = rep.principal.email.split("@")[1]
    key_file = await service_account(accounts, domain, scopes=TASKS)
    configured = await accounts.client.put(
        "/api/accounts/google/delegation",
        json={"domain": domain, "service_account_key": key_file},
        headers=admin.headers,
    )
    assert configured.status_code == 200
    tasks = await accounts.token(rep, TASKS, email=rep.principal.email)
    assert tasks.status_code == 200, tasks.text
    calendar = await accounts.token(rep, CALENDAR, email=rep.principal.email)
    assert calendar.status_code == 502
    problem = calendar.json()
    assert problem["type"] == "urn:pipedesk:problem:google-delegation-refused"
    assert problem["errors"][0]["code"] == "unauthorized_client"
    assert "not authorized for any of the scopes requested" in problem["errors"][0]["message"]
    tokens = await accounts.google.requests(user=rep.principal.email, api="oauth2.token")
    assert [call["status"] for call in tokens] == [200]  # the refused request names no user


async def test_a_key_that_is_not_a_private_key_is_refused_naming_the_field(
    accounts: Accounts, users: Users
) -> None:
    admin = users.make(Role.ADMIN)
    key_file = {
        "type": "service_account",
        "client_email": "sa@project.iam.gserviceaccount.com",
        "private_key_id": "k1",
        "private_key": "-----BEGIN PRIVATE KEY-----\n" + "A" * 200 + "\n-----END PRIVATE KEY-----",
    }
    refused = await accounts.client.put(
        "/api/accounts/google/delegation",
        json={"domain": "example.com", "service_account_key": key_file},
        headers=admin.headers,
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "body.service_account_key.private_key"
    bad_domain = await accounts.client.put(
        "/api/accounts/google/delegation",
        json={"domain": "Not A Domain", "service_account_key": key_file},
        headers=admin.headers,
    )
    assert bad_domain.json()["errors"][0]["field"] == "body.domain"
    missing = await accounts.client.get("/api/accounts/google/delegation", headers=admin.headers)
    assert missing.status_code == 404


async def test_a_delegated_token_is_only_for_a_user_of_the_org_by_their_own_email(
    accounts: Accounts, users: Users, directory: str
) -> None:
    admin, rep = users.make(Role.ADMIN), users.make(Role.REP)
    domain = rep.principal.email.split("@")[1]
    key_file = await service_account(accounts, domain)
    configured = await accounts.client.put(
        "/api/accounts/google/delegation",
        json={"domain": domain, "service_account_key": key_file},
        headers=admin.headers,
    )
    assert configured.status_code == 200, configured.text
    await known(directory, admin, rep)
    before = len(await accounts.google.requests(api="oauth2.token"))

    # The rep's id with the admin's email: the admin is not impersonated.
    as_admin = await accounts.token(rep, TASKS, email=admin.principal.email)
    # Someone the org's directory does not know, with an email in the delegated domain.
    unknown = users.make(Role.REP)
    stranger = await accounts.token(unknown, TASKS, email=unknown.principal.email)
    for refused in (as_admin, stranger):
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"] == "urn:pipedesk:problem:forbidden"
        assert "access_token" not in refused.text
    assert len(await accounts.google.requests(api="oauth2.token")) == before

    own = await accounts.token(rep, TASKS, email=rep.principal.email)
    assert own.status_code == 200, own.text
    assert own.json()["via"] == "delegation"
