"""``python -m pipedesk_common.keys jwks``: the service JWKS an operator publishes, from the
services' private keys, verifies every service's tokens and holds no private part."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from joserfc.jwk import ECKey

from pipedesk_common.auth import JwksCache, ServiceTokenIssuer, ServiceTokenVerifier
from pipedesk_common.clock import SystemClock
from pipedesk_common.errors import Unauthorized
from pipedesk_common.settings import PORT_OFFSETS

SERVICES = sorted(set(PORT_OFFSETS) - {"google_emulator", "identity"})


def jwks_of(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - this interpreter, this module
        [sys.executable, "-m", "pipedesk_common.keys", "jwks", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.asyncio
async def test_the_jwks_of_every_services_key_verifies_each_services_tokens(tmp_path: Path) -> None:
    keys = {service: ECKey.generate_key("P-256", private=True) for service in SERVICES}
    for service, key in keys.items():
        (tmp_path / f"{service}-service-key.pem").write_bytes(key.as_pem(private=True))
    result = jwks_of(*(f"{service}-service-key.pem" for service in SERVICES), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    published = json.loads(result.stdout)
    assert all("d" not in jwk for jwk in published["keys"]), "a private part was printed"
    (tmp_path / "service-jwks.json").write_text(result.stdout)

    clock = SystemClock()
    async with httpx.AsyncClient() as http:
        cache = JwksCache((tmp_path / "service-jwks.json").as_uri(), http=http, clock=clock)
        callee = ServiceTokenVerifier(cache, audience="crm", clock=clock)
        for service, key in keys.items():
            token = ServiceTokenIssuer(service, key, clock=clock).token_for("crm")
            assert (await callee.caller(token)).name == service
        stranger = ServiceTokenIssuer("crm", ECKey.generate_key("P-256", private=True), clock=clock)
        with pytest.raises(Unauthorized):
            await callee.caller(stranger.token_for("crm"))


@pytest.mark.asyncio
async def test_while_a_key_rotates_the_jwks_verifies_tokens_of_both(tmp_path: Path) -> None:
    old, new = (ECKey.generate_key("P-256", private=True) for _ in range(2))
    (tmp_path / "crm-service-key.pem").write_bytes(old.as_pem(private=True))
    (tmp_path / "crm-service-key.new.pem").write_bytes(new.as_pem(private=True))
    result = jwks_of("crm-service-key.pem", "crm=crm-service-key.new.pem", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (tmp_path / "service-jwks.json").write_text(result.stdout)
    clock = SystemClock()
    async with httpx.AsyncClient() as http:
        cache = JwksCache((tmp_path / "service-jwks.json").as_uri(), http=http, clock=clock)
        callee = ServiceTokenVerifier(cache, audience="timeline", clock=clock)
        for key in (old, new):
            token = ServiceTokenIssuer("crm", key, clock=clock).token_for("timeline")
            assert (await callee.caller(token)).name == "crm"


def test_a_key_file_must_name_its_service_and_be_a_p256_key(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_bytes(
        ECKey.generate_key("P-256", private=True).as_pem(private=True)
    )
    unnamed = jwks_of("key.pem", cwd=tmp_path)
    assert unnamed.returncode != 0
    assert "<service>-service-key.pem" in unnamed.stderr
    assert jwks_of("crm=key.pem", cwd=tmp_path).returncode == 0
    (tmp_path / "p384.pem").write_bytes(
        ECKey.generate_key("P-384", private=True).as_pem(private=True)
    )
    wrong_curve = jwks_of("crm=p384.pem", cwd=tmp_path)
    assert wrong_curve.returncode != 0
    assert wrong_curve.stderr.strip() == "crm: a service key is a P-256 key, not P-384"
