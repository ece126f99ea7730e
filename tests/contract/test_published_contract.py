"""The gateway's merged OpenAPI document is what the running system answers: schemathesis sends
every public operation generated requests, as each role, and every check of its holds."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipedesk_testkit.google import GoogleStack
from pipedesk_testkit.identities import ActingUser, Identity, Users
from pipedesk_testkit.stack import Stack, serve_stack

pytestmark = pytest.mark.slow

SEED = 20261207
MAX_EXAMPLES = 50
ROLES = ("admin", "manager", "rep", "viewer")
PRODUCTS = ("calendar", "tasks", "drive")


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], identity: Identity) -> Iterator[Stack]:
    # The generated requests come far faster than a person's: the buckets must not hide answers.
    limits = {"RATE_LIMIT_DEFAULT": "1000000/60", "RATE_LIMIT_SENSITIVE": "1000000/60"}
    with serve_stack(service_env, identity, gateway_settings=limits) as system:
        yield system


@pytest.fixture(scope="module")
def acting(stack: Stack, identity: Identity) -> dict[str, ActingUser]:
    """One user per role in one org, each connected to Google; the org has its Drive root."""
    users = Users(identity.minter)
    acting = {role: users.make(role, teams=("team-a",)) for role in ROLES}
    google = GoogleStack(stack.emulator_url, stack.gateway_url, identity.key_dir)

    async def prepare() -> None:
        for user in acting.values():
            await google.connect(user, PRODUCTS)
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
            root = await http.put("/api/drive/root", json={}, headers=acting["admin"].headers)
            assert root.status_code == 200, root.text

    asyncio.run(prepare())
    return acting


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_as_documented(
    stack: Stack, acting: dict[str, ActingUser], role: str, tmp_path: Path
) -> None:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--no-color",
        "run",
        f"{stack.gateway_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--header",
        f"Authorization: Bearer {acting[role].token}",
        "--report",
        "ndjson",
        "--report-dir",
        str(tmp_path),
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-2000:]
