"""``python -m dev_identity.demo``: seed a demo org through the gateway, print how to call it.

Run by ``make run`` beside the services. It waits for the gateway, creates a few leads if the
demo org has none (so a second run reuses the data), connects every demo user's Google account
(the emulator's) through the real OAuth flow, prints the gateway URL, a token per role and
example requests that work as printed, then stays up until the other processes stop.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from dev_identity.keystore import DEFAULT_AUDIENCE, DEFAULT_ISSUER, KeyStore, TokenMinter
from pipedesk_common.settings import DEFAULT_PORT_BASE, DEV_KEY_DIR, port_for

ORG = "demo"


@dataclass(frozen=True)
class DemoUser:
    sub: str
    role: str
    teams: tuple[str, ...]

    @property
    def email(self) -> str:
        return f"{self.sub}@demo.pipedesk.test"

    def token(self, minter: TokenMinter) -> str:
        return minter.mint(
            sub=self.sub, org_id=ORG, role=self.role, email=self.email, team_ids=self.teams
        )


USERS = (
    DemoUser("ada", "admin", ()),
    DemoUser("max", "manager", ("sales-emea",)),
    DemoUser("rita", "rep", ("sales-emea",)),
    DemoUser("ravi", "rep", ("sales-us",)),
    DemoUser("vera", "viewer", ("sales-emea",)),
)
LEADS = (
    ("rita", {"title": "Acme Corp expansion", "company_name": "Acme Corp", "priority": "high",
              "estimated_value": "48000.00", "currency": "EUR", "tags": ["expansion"]}),
    ("rita", {"title": "Globex pilot", "company_name": "Globex", "status": "contacted"}),
    ("rita", {"title": "Initech renewal", "company_name": "Initech", "next_step": "Send proposal"}),
    ("ravi", {"title": "Umbrella onboarding", "company_name": "Umbrella", "priority": "urgent"}),
    ("ravi", {"title": "Hooli trial", "company_name": "Hooli", "source": "webinar"}),
)  # fmt: skip


def tokens(minter: TokenMinter) -> dict[str, str]:
    return {user.sub: user.token(minter) for user in USERS}


async def wait_for_gateway(
    http: httpx.AsyncClient, url: str, token: str, within: float = 120
) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            response = await http.get(
                f"{url}/api/leads", headers={"Authorization": f"Bearer {token}"}
            )
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the gateway at {url} did not answer within {within:.0f} s")
        await asyncio.sleep(0.5)


async def seed(http: httpx.AsyncClient, url: str, by_user: dict[str, str]) -> str:
    """Create the demo leads unless the org has some already; returns one lead's id."""
    rita = {"Authorization": f"Bearer {by_user['rita']}"}
    existing = (await http.get(f"{url}/api/leads", headers=rita)).json()["items"]
    if existing:
        return str(existing[-1]["id"])  # one rita may read: the examples run as her
    first = ""
    for owner, body in LEADS:
        response = await http.post(
            f"{url}/api/leads", json=body, headers={"Authorization": f"Bearer {by_user[owner]}"}
        )
        response.raise_for_status()
        first = first or str(response.json()["id"])
    return first


GOOGLE_PRODUCTS = "calendar,tasks,drive"


async def connect_google(http: httpx.AsyncClient, url: str, token: str, within: float = 60) -> None:
    """Connect one user's Google account through the gateway and the emulator's auto-consent.

    Done on every run: the emulator forgets its grants when it stops, so the refresh tokens a
    previous run stored are no longer valid; a new flow replaces them.
    """
    auth = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + within
    while True:  # the accounts service may still be starting
        try:
            start = await http.get(
                f"{url}/api/accounts/google/connect",
                params={"products": GOOGLE_PRODUCTS},
                headers=auth,
            )
            if start.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(
                f"the accounts service behind {url} did not answer within {within:.0f} s"
            )
        await asyncio.sleep(0.5)
    consent = await http.get(start.json()["authorization_url"])
    callback = consent.headers.get("location", "")
    if consent.status_code != 302 or not callback.startswith(url):
        raise SystemExit(f"the Google emulator did not consent: {consent.status_code}")
    back = await http.get(callback)
    if back.status_code != 302 or "google=connected" not in back.headers.get("location", ""):
        raise SystemExit(f"connecting Google failed: {back.status_code}")


async def set_drive_root(http: httpx.AsyncClient, url: str, token: str, within: float = 60) -> None:
    """Make the admin's (emulated) Drive hold the demo org's record folders."""
    deadline = time.monotonic() + within
    while True:  # the drive service may still be starting
        try:
            answer = await http.put(
                f"{url}/api/drive/root", json={}, headers={"Authorization": f"Bearer {token}"}
            )
            if answer.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the drive service behind {url} did not set the Drive root")
        await asyncio.sleep(0.5)


def instructions(url: str, by_user: dict[str, str], lead_id: str) -> str:
    rep = by_user["rita"]
    lines = [
        "",
        f"PipeDesk is up. Gateway: {url}   (API docs: {url}/docs)",
        f"Console: {url}/app/   (sign in as a demo user; it shows the API as a frontend uses it)",
        f"Demo org '{ORG}'; tokens are valid for 12 hours:",
    ]
    for user in USERS:
        teams = ",".join(user.teams) or "-"
        lines.append(f"  {user.role:<8} {user.sub:<5} teams={teams:<11} {by_user[user.sub]}")
    auth = shlex.quote(f"Authorization: Bearer {rep}")
    body = shlex.quote('{"title": "New lead from the demo", "priority": "high"}')
    lines += [
        "",
        "Example requests (as rita, a rep):",
        f"curl -sf {url}/api/leads -H {auth}",
        f"curl -sf -X POST {url}/api/leads -H {auth} -H 'content-type: application/json' -d {body}",
        f"curl -sf {url}/api/timeline/lead/{lead_id} -H {auth}",
        f"curl -sf {url}/api/accounts/google -H {auth}",
        f"curl -sf -X POST '{url}/api/drive/records/lead/{lead_id}/files?name=notes.txt'"
        f" -H {auth} -H 'content-type: text/plain' --data-binary 'Call notes'",
        f"curl -sf {url}/api/drive/records/lead/{lead_id}/files -H {auth}",
        "",
        f"Every demo user's Google account is connected (the emulator's) for {GOOGLE_PRODUCTS}.",
        "",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


async def main() -> None:
    port_base = int(os.environ.get("PORT_BASE", DEFAULT_PORT_BASE))
    url = os.environ.get("GATEWAY_URL", f"http://127.0.0.1:{port_for('gateway', port_base)}")
    store = KeyStore(Path(os.environ.get("DEV_KEY_DIR", DEV_KEY_DIR)))
    minter = TokenMinter(
        store.identity_key(),
        issuer=os.environ.get("AUTH_ISSUER", DEFAULT_ISSUER),
        audience=os.environ.get("AUTH_AUDIENCE", DEFAULT_AUDIENCE),
        lifetime_seconds=12 * 3600,
    )
    by_user = tokens(minter)
    async with httpx.AsyncClient(timeout=10) as http:
        await wait_for_gateway(http, url, by_user["ada"])
        lead_id = await seed(http, url, by_user)
        for user in USERS:
            await connect_google(http, url, by_user[user.sub])
        await set_drive_root(http, url, by_user["ada"])
    print(instructions(url, by_user, lead_id), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()  # stay up: the process manager stops everything when one process ends


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
