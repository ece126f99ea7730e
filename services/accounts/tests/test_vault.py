"""The vault: AES-GCM per value, bound to its row; no plaintext token in the database or the
logs; key rotation."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import subprocess
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from accounts_service.app import build_app
from accounts_service.models import SEALED_COLUMNS, seal_context
from accounts_service.rotate_keys import rotate
from accounts_service.settings import AccountsSettings
from accounts_service.vault import Vault, VaultError, parse_keys
from pipedesk_common.auth import Role
from pipedesk_common.google import scopes_for
from pipedesk_testkit.clients import app_client
from pipedesk_testkit.identities import Users

if TYPE_CHECKING:
    from conftest import Accounts

TASKS = list(scopes_for(["tasks"]))


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def key_spec(**keys: bytes) -> str:
    return ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in keys.items())


def test_each_seal_uses_a_fresh_nonce_and_opens_only_in_its_own_context() -> None:
    vault = Vault({"k1": os.urandom(32)}, "k1")
    one = vault.seal("1//secret-refresh-token", context="google_connections.refresh_token:a")
    two = vault.seal("1//secret-refresh-token", context="google_connections.refresh_token:a")
    assert one != two
    assert b"secret" not in one
    assert vault.open(one, context="google_connections.refresh_token:a") == (
        "1//secret-refresh-token"
    )
    for wrong in ("google_connections.refresh_token:b", "google_connections.access_token:a"):
        with pytest.raises(VaultError):
            vault.open(one, context=wrong)
    tampered = bytearray(one)
    tampered[-1] ^= 1
    with pytest.raises(VaultError):
        vault.open(bytes(tampered), context="google_connections.refresh_token:a")


def test_a_value_sealed_with_a_key_that_is_gone_does_not_open() -> None:
    old = Vault({"old": os.urandom(32)}, "old")
    sealed = old.seal("token", context="c")
    with pytest.raises(VaultError, match="'old' is not configured"):
        Vault({"new": os.urandom(32)}, "new").open(sealed, context="c")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("k1:" + base64.b64encode(b"short").decode(), "must be 32 bytes"),
        ("k1:not base64!", "not base64"),
        (":" + base64.b64encode(os.urandom(32)).decode(), "ASCII id"),
    ],
)
def test_malformed_key_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_keys(spec)


def test_production_refuses_the_development_vault_key(service_env: dict[str, str]) -> None:
    production = {
        **service_env,
        "ENVIRONMENT": "production",
        "CURSOR_SECRET": "a-production-cursor-secret-of-enough-length",
        "service_key": "a configured signing key",
    }
    with pytest.raises(ValueError, match="ACCOUNTS_VAULT_KEYS holds the development key"):
        AccountsSettings(**production)
    key = base64.b64encode(os.urandom(32)).decode()
    configured = AccountsSettings(
        **production,
        vault_keys=f"k1:{key}",
        vault_active_key="k1",
        google_client_secret="a-real-client-secret",
        google_redirect_uri="https://app.example.com/api/accounts/google/callback",
        frontend_url="https://app.example.com/settings/google",
    )
    assert configured.vault_active_key == "k1"
    assert configured.return_url == "https://app.example.com/settings/google"
    elsewhere = {**configured.model_dump(), "google_auth_url": "https://consent.example.com/auth"}
    with pytest.raises(
        ValueError, match=r"ACCOUNTS_GOOGLE_AUTH_URL .* GOOGLE_ALLOW_NON_GOOGLE_ROOT"
    ):
        AccountsSettings(**elsewhere)


@pytest.mark.asyncio
async def test_a_database_dump_holds_no_plaintext_token_and_logs_hold_none_either(
    accounts: Accounts, users: Users, no_secret_in_logs: list[logging.LogRecord]
) -> None:
    rep, other = users.make(Role.REP), users.make(Role.REP)
    secrets: list[str] = []
    for user in (rep, other):
        consent = await accounts.consent(user)
        secrets.append(consent.split("code=")[1].split("&")[0])  # the authorization code
        accounts.outcome(await accounts.client.get(consent.split("accounts.test", 1)[1]))
        secrets.append((await accounts.token(user, TASKS)).json()["access_token"])
        forced = await accounts.token(user, TASKS, force_refresh=True)
        secrets.append(forced.json()["access_token"])
    for user in (rep, other):
        secrets.append(await accounts.refresh_token_of(user.sub))
    assert len(secrets) == 8
    assert all(len(secret) > 20 for secret in secrets)

    dump = await asyncio.to_thread(
        subprocess.run,
        ["pg_dump", "--data-only", "--schema=accounts", libpq_url(accounts.database_url)],
        capture_output=True,
        check=True,
    )
    text = dump.stdout.decode()
    assert rep.sub in text  # the dump does hold the connections
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in no_secret_in_logs)
    assert "/internal/google/token" in logged  # requests were logged, without their secrets
    for secret in secrets:
        assert secret not in text
        assert secret not in logged
    assert "1//emu-" not in text  # no refresh token of the emulator's shape at all
    assert "ya29." not in text


@pytest.mark.asyncio
async def test_ciphertext_swapped_between_two_rows_fails_to_decrypt(
    accounts: Accounts, users: Users
) -> None:
    first, second = users.make(Role.REP), users.make(Role.REP)
    for user in (first, second):
        accounts.outcome(await accounts.connect(user))
    query = "SELECT refresh_token FROM accounts.google_connections WHERE user_id = $1"
    original = (await accounts.rows(query, first.sub))[0]["refresh_token"]
    swap = "UPDATE accounts.google_connections SET refresh_token = $2 WHERE user_id = $1"
    await accounts.rows(
        swap, first.sub, (await accounts.rows(query, second.sub))[0]["refresh_token"]
    )
    try:
        answer = await accounts.token(first, TASKS, force_refresh=True)
        assert answer.status_code == 503
        problem = answer.json()
        assert problem["type"] == "urn:pipedesk:problem:vault-unavailable"
        assert "1//" not in answer.text
        assert (await accounts.token(second, TASKS, force_refresh=True)).status_code == 200
        status = await accounts.client.get("/api/accounts/google", headers=first.headers)
        assert status.json()["status"] == "connected"  # nothing was forgotten or revoked
    finally:
        await accounts.rows(swap, first.sub, original)
    assert (await accounts.token(first, TASKS, force_refresh=True)).status_code == 200


@pytest.mark.asyncio
async def test_after_key_rotation_every_row_decrypts_with_the_new_key_alone(
    accounts_settings: AccountsSettings, accounts: Accounts, users: Users
) -> None:
    admin = users.make(Role.ADMIN)
    accounts.outcome(await accounts.connect(admin))
    await accounts.consent(users.make(Role.REP))  # a flow left pending: a sealed verifier
    current = parse_keys(accounts_settings.vault_keys.get_secret_value())
    active = accounts_settings.vault_active_key
    new = os.urandom(32)
    engine = create_async_engine(accounts_settings.database_url)
    try:
        report = await rotate(engine, Vault({**current, "new": new}, "new"))
        again = await rotate(engine, Vault({**current, "new": new}, "new"))
        try:
            assert report.resealed["google_connections.refresh_token"] >= 1
            assert report.resealed["google_connections.access_token"] >= 1
            assert report.resealed["oauth_states.code_verifier"] >= 1
            assert again.total == 0
            assert report.unopened == []
            only_new = Vault({"new": new}, "new")
            for model, column, key_column in SEALED_COLUMNS:
                table = model.__tablename__
                query = f"SELECT {key_column} AS key, {column} AS sealed FROM accounts.{table}"
                for row in await accounts.rows(query):
                    if row["sealed"] is not None:
                        context = seal_context(model, column, row["key"])
                        assert only_new.open(row["sealed"], context=context)
            after = accounts_settings.model_copy(
                update={"vault_keys": SecretStr(key_spec(new=new)), "vault_active_key": "new"}
            )
            async with app_client(build_app(after), "http://accounts.test") as client:
                accounts.client, saved = client, accounts.client
                try:
                    refreshed = await accounts.token(admin, TASKS, force_refresh=True)
                finally:
                    accounts.client = saved
            assert refreshed.status_code == 200
        finally:  # the run's other tests use the development key: rotate back to it
            await rotate(engine, Vault({**current, "new": new}, active))
    finally:
        await engine.dispose()


def test_the_callback_returns_to_the_console_in_development_and_production_names_the_frontend(
    service_env: dict[str, str],
) -> None:
    development = AccountsSettings(**{**service_env, "PORT_BASE": "9000"})
    assert development.return_url == "http://127.0.0.1:9000/app/"
    production = {
        **service_env,
        "ENVIRONMENT": "production",
        "CURSOR_SECRET": "a-production-cursor-secret-of-enough-length",
        "service_key": "a configured signing key",
        "vault_keys": "k1:" + base64.b64encode(os.urandom(32)).decode(),
        "vault_active_key": "k1",
        "google_client_secret": "a-real-client-secret",
        "google_redirect_uri": "https://api.example.com/api/accounts/google/callback",
    }
    with pytest.raises(ValueError, match="ACCOUNTS_FRONTEND_URL must be the frontend's page"):
        AccountsSettings(**production)
