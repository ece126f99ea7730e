"""OAuth against the emulator: code + PKCE, refresh, revocation, expiry, scopes, JWT bearer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from googleapiclient.errors import HttpError
from joserfc.jwk import RSAKey

TASKS = "https://www.googleapis.com/auth/tasks"
TASKS_READONLY = "https://www.googleapis.com/auth/tasks.readonly"


def test_code_flow_with_pkce(emu: Any) -> None:
    verifier, challenge = emu.pkce_pair()
    redirect = emu.authorize(
        "Ann@Example.com", ["openid", "email", TASKS], code_challenge=challenge
    )
    assert redirect["state"] == ["xyz"]
    code = redirect["code"][0]

    wrong = emu.exchange(code, verifier + "x")
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"

    verifier, challenge = emu.pkce_pair()
    code = emu.authorize(
        "ann@example.com", [TASKS, "email"], code_challenge=challenge, access_type="offline"
    )["code"][0]
    granted = emu.exchange(code, verifier)
    assert granted.status_code == 200
    body = granted.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert set(body["scope"].split()) == {TASKS, "email"}
    assert body["refresh_token"]

    replay = emu.exchange(code, verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"

    service = emu.tasks(emu.credentials(body["access_token"]))
    lists = service.tasklists().list().execute()
    assert [item["title"] for item in lists["items"]] == ["My Tasks"]

    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    v2 = httpx.get(f"{emu.url}/oauth2/v2/userinfo", headers=bearer).json()
    assert v2["email"] == "ann@example.com"
    assert v2["verified_email"] is True
    v3 = httpx.get(f"{emu.url}/oauth2/v3/userinfo", headers=bearer).json()
    assert v3["email_verified"] is True
    assert v3["sub"] == v2["id"]


def _tokens(emu: Any, email: str, scopes: list[str], **params: str) -> dict[str, Any]:
    verifier, challenge = emu.pkce_pair()
    code = emu.authorize(email, scopes, code_challenge=challenge, **params)["code"][0]
    answer = emu.exchange(code, verifier)
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def test_a_refresh_token_comes_only_with_offline_access_and_again_only_with_consent(
    emu: Any,
) -> None:
    online = _tokens(emu, "ann@example.com", [TASKS])
    assert "refresh_token" not in online
    assert online["access_token"]
    first = _tokens(emu, "ann@example.com", [TASKS], access_type="offline")
    assert first["refresh_token"]
    # The user holds an offline grant for this client: no second refresh token without consent.
    again = _tokens(emu, "ann@example.com", [TASKS], access_type="offline")
    assert "refresh_token" not in again
    consented = _tokens(emu, "ann@example.com", [TASKS], access_type="offline", prompt="consent")
    assert consented["refresh_token"] not in (None, first["refresh_token"])
    # Once every grant is revoked, the next offline consent gives a refresh token again.
    emu.admin("POST", "/users/ann@example.com/revoke")
    assert _tokens(emu, "ann@example.com", [TASKS], access_type="offline")["refresh_token"]
    bad = emu.authorize("ann@example.com", [TASKS], code_challenge="c", access_type="forever")
    assert bad["error"] == ["invalid_request"]


def test_granular_consent_grants_fewer_scopes_than_asked(emu: Any) -> None:
    emu.admin("PUT", "/users/ann@example.com/consent", json={"declined_scopes": [TASKS, "email"]})
    _, challenge = emu.pkce_pair()
    redirect = emu.authorize(
        "ann@example.com", ["openid", "email", TASKS, TASKS_READONLY], code_challenge=challenge
    )
    # Sign-in scopes cannot be unticked; tasks was.
    assert set(redirect["scope"][0].split()) == {"openid", "email", TASKS_READONLY}
    tokens = _tokens(emu, "ann@example.com", [TASKS, TASKS_READONLY], access_type="offline")
    assert set(tokens["scope"].split()) == {TASKS_READONLY}
    service = emu.tasks(emu.credentials(tokens["access_token"]))
    assert service.tasklists().list().execute()["items"]
    with pytest.raises(HttpError) as caught:
        service.tasklists().insert(body={"title": "Not granted"}).execute()
    assert caught.value.error_details[0]["reason"] == "insufficientPermissions"
    nothing = emu.authorize("ann@example.com", [TASKS], code_challenge=challenge)
    assert nothing["error"] == ["access_denied"]
    assert nothing["state"] == ["xyz"]


def test_authorization_requires_pkce_and_known_client(emu: Any) -> None:
    no_pkce = emu.authorize_response("ann@example.com", [TASKS])
    assert no_pkce.status_code == 302
    assert "error=invalid_request" in no_pkce.headers["location"]
    assert "state=xyz" in no_pkce.headers["location"]

    unknown = emu.authorize_response("ann@example.com", [TASKS], client_id="nope")
    assert unknown.status_code == 401
    assert unknown.json()["error"] == "invalid_client"


def test_include_granted_scopes_merges_earlier_grants(emu: Any) -> None:
    _, challenge = emu.pkce_pair()
    emu.authorize("ann@example.com", ["email"], code_challenge=challenge)
    redirect = emu.authorize(
        "ann@example.com", [TASKS], code_challenge=challenge, include_granted_scopes="true"
    )
    assert set(redirect["scope"][0].split()) == {"email", TASKS}


def test_registered_client_and_bad_secret(emu: Any) -> None:
    emu.admin(
        "POST",
        "/clients",
        json={"client_id": "other", "client_secret": "s3", "redirect_uris": ["http://x/cb"]},
    )
    mismatch = emu.authorize_response("ann@example.com", [TASKS], client_id="other")
    assert mismatch.status_code == 400
    assert mismatch.json()["error"] == "redirect_uri_mismatch"
    bad = httpx.post(
        f"{emu.url}/token",
        data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": "other"},
    )
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"


def test_expiry_refresh_and_revocation(emu: Any) -> None:
    tokens = emu.oauth_login("ann@example.com", [TASKS])
    old = tokens["access_token"]
    emu.admin("POST", "/clock", json={"advance_seconds": 3601})
    bearer = {"Authorization": f"Bearer {old}"}
    expired = httpx.get(f"{emu.url}/tasks/v1/users/@me/lists", headers=bearer)
    assert expired.status_code == 401
    assert expired.json()["error"]["errors"][0]["reason"] == "authError"

    # The real client sees the 401, refreshes through /token and retries.
    credentials = emu.credentials(old, tokens["refresh_token"])
    service = emu.tasks(credentials)
    assert service.tasklists().list().execute()["items"]
    assert credentials.token != old

    revoked = httpx.post(f"{emu.url}/revoke", data={"token": tokens["refresh_token"]})
    assert revoked.status_code == 200
    after = {"Authorization": f"Bearer {credentials.token}"}
    assert httpx.get(f"{emu.url}/tasks/v1/users/@me/lists", headers=after).status_code == 401
    with pytest.raises(RefreshError, match="invalid_grant"):
        emu.tasks(emu.credentials(None, tokens["refresh_token"])).tasklists().list().execute()
    again = httpx.post(f"{emu.url}/revoke", data={"token": credentials.token})
    assert again.status_code == 400


def test_out_of_scope_is_403(emu: Any) -> None:
    service = emu.tasks_for(scopes=[TASKS_READONLY])
    assert service.tasklists().list().execute()["items"]
    with pytest.raises(HttpError) as caught:
        service.tasklists().insert(body={"title": "Nope"}).execute()
    assert caught.value.resp.status == 403
    assert caught.value.error_details[0]["reason"] == "insufficientPermissions"


def _service_account(emu: Any, domain: str, scopes: list[str]) -> tuple[RSAKey, str]:
    """A service account whose client id the domain's admin authorised for ``scopes``."""
    key = RSAKey.generate_key(2048)
    email = "sync@pipedesk-dev.iam.gserviceaccount.com"
    registered = emu.admin(
        "POST",
        "/service-accounts",
        json={"email": email, "public_jwk": key.as_dict(private=False)},
    ).json()
    emu.admin(
        "PUT", f"/domains/{domain}/delegation/{registered['client_id']}", json={"scopes": scopes}
    )
    return key, email


def _delegated(
    emu: Any, key: RSAKey, email: str, subject: str, scopes: list[str] | None = None
) -> Any:
    info = {
        "type": "service_account",
        "client_email": email,
        "private_key": key.as_pem(private=True).decode(),
        "private_key_id": "k1",
        "token_uri": f"{emu.url}/token",
    }
    credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        info, scopes=scopes or [TASKS]
    ).with_subject(subject)
    return emu.tasks(credentials)


def test_jwt_bearer_grant_for_delegated_user(emu: Any) -> None:
    key, email = _service_account(emu, "example.com", [TASKS])
    service = _delegated(emu, key, email, "bob@example.com")
    created = service.tasklists().insert(body={"title": "Delegated"}).execute()
    assert created["title"] == "Delegated"
    log = emu.admin("GET", "/requests", params={"api": "tasks.tasklists.insert"}).json()
    assert [entry["user"] for entry in log] == ["bob@example.com"]

    with pytest.raises(RefreshError, match="unauthorized_client"):
        _delegated(emu, key, email, "eve@elsewhere.org").tasklists().list().execute()

    stranger = RSAKey.generate_key(2048)
    with pytest.raises(RefreshError, match="invalid_grant"):
        _delegated(emu, stranger, email, "bob@example.com").tasklists().list().execute()


def test_delegation_is_refused_for_a_scope_the_domain_admin_did_not_authorise(emu: Any) -> None:
    key, email = _service_account(emu, "example.com", [TASKS_READONLY])
    reader = _delegated(emu, key, email, "bob@example.com", [TASKS_READONLY])
    assert reader.tasklists().list().execute()["items"]
    # tasks covers tasks.readonly, but the admin console authorises scopes as listed.
    with pytest.raises(RefreshError, match="unauthorized_client") as refused:
        _delegated(emu, key, email, "bob@example.com", [TASKS]).tasklists().list().execute()
    assert "not authorized for any of the scopes requested" in str(refused.value)
    both = _delegated(emu, key, email, "bob@example.com", [TASKS, TASKS_READONLY])
    with pytest.raises(RefreshError, match="unauthorized_client"):
        both.tasklists().list().execute()


def test_a_user_removing_the_app_revokes_every_grant_they_gave(emu: Any) -> None:
    first = emu.oauth_login("bea@example.com", [TASKS])
    second = emu.oauth_login("bea@example.com", [TASKS_READONLY], prompt="consent")
    other = emu.oauth_login("cy@example.com", [TASKS])
    assert emu.admin("POST", "/users/Bea@example.com/revoke").json() == {"revoked": 2}
    for tokens in (first, second):
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert httpx.get(f"{emu.url}/tasks/v1/users/@me/lists", headers=bearer).status_code == 401
        with pytest.raises(RefreshError, match="invalid_grant"):
            emu.tasks(emu.credentials(None, tokens["refresh_token"])).tasklists().list().execute()
    still = {"Authorization": f"Bearer {other['access_token']}"}
    assert httpx.get(f"{emu.url}/tasks/v1/users/@me/lists", headers=still).status_code == 200
    assert emu.admin("POST", "/users/bea@example.com/revoke").json() == {"revoked": 0}
    # Nothing granted before the removal comes back with include_granted_scopes.
    _, challenge = emu.pkce_pair()
    redirect = emu.authorize(
        "bea@example.com", ["email"], code_challenge=challenge, include_granted_scopes="true"
    )
    assert redirect["scope"] == ["email"]
