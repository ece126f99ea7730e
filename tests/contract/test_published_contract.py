"""The gateway's merged OpenAPI document is what the running system answers: schemathesis sends
every public operation generated requests (every check, stateful links where declared, a fixed
seed, 50 examples per operation) with a token of each role, each role in an org of its own.

The failures it still finds are listed, one per operation, check and status, in
``schemathesis-baseline.json``: answers that depend on what the system holds (a cursor it issued,
a record's version, a key used before…), which no schema states. A failure not listed there fails
this test, and an entry is removed once its failure is fixed (``--baseline-prune``). It runs in
``make test`` beside the rest of the suite, and alone with ``make contract`` (see
docs/development.md#the-published-contract)."""

from __future__ import annotations

import asyncio
import json
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

HERE = Path(__file__).parent
SEED = 20261207
MAX_EXAMPLES = 50
ROLES = ("admin", "manager", "rep", "viewer")
PRODUCTS = ("calendar", "tasks", "drive", "gmail")


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], identity: Identity) -> Iterator[Stack]:
    # The generated requests come far faster than a person's: the buckets must not hide answers.
    limits = {"RATE_LIMIT_DEFAULT": "1000000/60", "RATE_LIMIT_SENSITIVE": "1000000/60"}
    with serve_stack(service_env, identity, gateway_settings=limits) as system:
        yield system


def role_users(stack: Stack, identity: Identity) -> dict[str, ActingUser]:
    """A user per role, each in an org of its own whose Drive root is set, each connected to
    Google for Calendar, Tasks, Drive and Gmail (which connects their mailbox)."""
    acting: dict[str, ActingUser] = {}
    admins: list[ActingUser] = []
    for role in ROLES:
        org = Users(identity.minter)
        acting[role] = org.make(role, teams=("team-a",))
        admins.append(acting[role] if role == "admin" else org.make("admin"))
    google = GoogleStack(stack.emulator_url, stack.gateway_url, identity.key_dir)

    async def prepare() -> None:
        for user in [*acting.values(), *admins]:
            await google.connect(user, PRODUCTS)
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
            for admin in admins:
                root = await http.put("/api/drive/root", json={}, headers=admin.headers)
                assert root.status_code == 200, root.text

    asyncio.run(prepare())
    return acting


def test_every_operation_answers_as_its_published_contract_says(
    stack: Stack, identity: Identity, tmp_path: Path
) -> None:
    acting = role_users(stack, identity)
    auth = tmp_path / "auth.json"
    auth.write_text(
        json.dumps(
            {
                "auth": [
                    {
                        "name": role,
                        "fixedHeaders": [
                            {"name": "Authorization", "value": f"Bearer {user.token}"}
                        ],
                    }
                    for role, user in acting.items()
                ]
            }
        )
    )
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--no-color",
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{stack.gateway_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        # One worker: schemathesis draws in threads, and on Python 3.11 two threads parsing
        # source at once can fail CPython's AST recursion check (a SystemError inside
        # hypothesis, an error of the run, not of the contract).
        "--workers",
        "1",
        # Beside the rest of make test on two cores an answer may take longer than schemathesis'
        # 10 s default, which it counts as an error of the run; past the gateway's own read
        # timeout (15 s), every request gets its answer, a documented 504 at worst.
        "--request-timeout",
        "30",
        "--baseline",
        str(HERE / "schemathesis-baseline.json"),
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        cwd=tmp_path,  # its .hypothesis and .schemathesis folders stay out of the repository
        env={
            **os.environ,
            "PIPEDESK_CONTRACT_AUTH": str(auth),
            # A fresh Idempotency-Key per request (see hooks.py).
            "SCHEMATHESIS_HOOKS": str(HERE / "hooks.py"),
            "SCHEMATHESIS_TELEMETRY": "false",
        },
    )
    assert result.returncode == 0, result.stdout[-25000:] + result.stderr[-3000:]
