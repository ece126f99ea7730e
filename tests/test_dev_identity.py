"""The dev identity provider: keys made once and kept private, tokens the services accept."""

import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dev_identity.keystore import KeyStore
from dev_identity.server import create_identity_app
from pipedesk_common.auth import JwksCache, Role, TokenVerifier
from pipedesk_common.clock import SystemClock
from pipedesk_testkit.servers import serve_in_thread


def cli(key_dir: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "dev_identity", *args],
        env={"DEV_KEY_DIR": str(key_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_keys_are_made_once_and_readable_only_by_their_owner(tmp_path: Path) -> None:
    cli(tmp_path, "init")
    files = sorted(path.name for path in tmp_path.iterdir())
    assert "identity.pem" in files
    assert "svc-crm.pem" in files
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cli(tmp_path, "init")
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


@pytest.mark.asyncio
async def test_a_cli_token_is_accepted_by_the_services_verifier(tmp_path: Path) -> None:
    token = cli(
        tmp_path, "token", "--sub", "u1", "--role", "manager", "--org", "acme", "--teams", "t1,t2"
    )
    with serve_in_thread(create_identity_app(KeyStore(tmp_path))) as url:
        async with httpx.AsyncClient() as http:
            keys = JwksCache(url + "/.well-known/jwks.json", http=http, clock=SystemClock())
            verifier = TokenVerifier(
                keys, issuer="pipedesk-dev-identity", audience="pipedesk-api", clock=SystemClock()
            )
            principal = await verifier.principal(token)
            service_jwks = (await http.get(url + "/.well-known/service-jwks.json")).json()
    assert principal.sub == "u1"
    assert principal.org_id == "acme"
    assert principal.role is Role.MANAGER
    assert principal.team_ids == frozenset({"t1", "t2"})
    assert principal.email == "u1@example.com"
    owners = {entry["kid"].split(".")[0] for entry in service_jwks["keys"]}
    assert {"crm", "timeline", "gateway"} <= owners
    assert all("d" not in entry for entry in service_jwks["keys"])
