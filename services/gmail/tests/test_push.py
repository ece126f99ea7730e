"""Gmail push: a Pub/Sub push with Google's valid OIDC token syncs the mailbox; a forged, expired,
wrong-audience or wrong-account token is 401 and queues nothing; the watch is renewed well
inside its 7 days under a controlled clock."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from pipedesk_common.auth import Role
from pipedesk_common.clock import ManualClock
from pipedesk_testkit.identities import Users
from pipedesk_testkit.waiting import eventually

from .conftest import PUSH_ACCOUNT

pytestmark = pytest.mark.asyncio
CUSTOMER = "buyer@customer.example"


def envelope(address: str, history_id: int = 1) -> dict[str, Any]:
    data = json.dumps({"emailAddress": address, "historyId": history_id}).encode()
    return {
        "message": {"data": base64.b64encode(data).decode(), "messageId": "1"},
        "subscription": "projects/pipedesk-test/subscriptions/gmail-push",
    }


async def test_a_push_with_googles_token_syncs_the_mailbox(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    address = rep.principal.email
    async with stack.start() as service:
        await stack.mailbox(service, rep)
        assert (await stack.google.admin("GET", f"/gmail/{address}/watch")).json()["watching"]
        sent = await stack.deliver(CUSTOMER, [address], subject="Pushed")
        # The emulator publishes the change; Pub/Sub pushes it, signed, to the webhook.
        await eventually(lambda: stack.mirror(rep), until=lambda m: sent[address]["id"] in m)
        deliveries = (await stack.google.admin("GET", "/pubsub/deliveries")).json()
        assert any(d["status_code"] == 204 for d in deliveries)


async def test_forged_expired_and_misdirected_tokens_are_refused_and_queue_nothing(
    stack: Any, users: Users
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    address = rep.principal.email
    async with stack.start(pubsub_topic=None) as service:
        await stack.mailbox(service, rep)
        settings = service.runtime.settings
        now = int(time.time())
        good = {
            "iss": "https://accounts.google.com",
            "aud": settings.audience,
            "email": PUSH_ACCOUNT,
            "email_verified": True,
            "sub": "1234",
            "iat": now,
            "exp": now + 600,
        }

        async def signed(**claims: Any) -> str:
            answer = await stack.google.admin(
                "POST", "/pubsub/sign", json={"claims": {**good, **claims}}
            )
            token: str = answer.json()["token"]
            return token

        forger = RSAKey.generate_key(2048)
        forged = jwt.encode({"alg": "RS256", "kid": "forged"}, good, forger)
        refused = {
            "forged": forged,
            "expired": await signed(iat=now - 7200, exp=now - 3600),
            "wrong audience": await signed(aud="https://elsewhere.example/push"),
            "wrong account": await signed(email="someone@evil.example"),
            "not Google's issuer": await signed(iss="https://evil.example"),
            "unverified email": await signed(email_verified=False),
            "garbage": "not-a-token",
        }
        before = await stack.calls(rep, "gmail.users.history.list")
        for why, token in refused.items():
            answer = await service.client.post(
                settings.webhook_path,
                json=envelope(address),
                headers={"Authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 401, why
            assert answer.headers["content-type"].startswith("application/problem+json")
        missing = await service.client.post(settings.webhook_path, json=envelope(address))
        assert missing.status_code == 401
        queued = await stack.rows("SELECT key FROM gmail.work_requests WHERE pending")
        assert queued == []
        assert await stack.calls(rep, "gmail.users.history.list") == before

        # The same envelope with Google's own token is accepted and asks for one sync.
        accepted = await service.client.post(
            settings.webhook_path,
            json=envelope(address),
            headers={"Authorization": f"Bearer {await signed()}"},
        )
        assert accepted.status_code == 204
        for _burst in range(4):  # a burst of notifications: still one sync asked for
            again = await service.client.post(
                settings.webhook_path,
                json=envelope(address),
                headers={"Authorization": f"Bearer {await signed()}"},
            )
            assert again.status_code == 204
        queued = await stack.rows("SELECT key FROM gmail.work_requests WHERE pending")
        assert len(queued) <= 1  # one key per mailbox (none once a run has taken it)
        assert all(row["key"].endswith(rep.principal.sub) for row in queued)
        bad_body = await service.client.post(
            settings.webhook_path,
            json={"message": {"data": "%%%"}},
            headers={"Authorization": f"Bearer {await signed()}"},
        )
        assert bad_body.status_code == 422


async def test_the_watch_is_renewed_well_inside_its_seven_days(stack: Any, users: Users) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    clock = ManualClock(datetime.now(UTC))
    async with stack.start(clock, watch_renew_interval_seconds=24 * 3600) as service:
        await stack.mailbox(service, rep)
        assert len(await stack.calls(rep, "gmail.users.watch")) == 1
        clock.advance(timedelta(hours=23))
        await service.run_job("gmail.renew-watches")
        assert len(await stack.calls(rep, "gmail.users.watch")) == 1
        clock.advance(timedelta(hours=2))
        await service.run_job("gmail.renew-watches")
        assert len(await stack.calls(rep, "gmail.users.watch")) == 2
        for _day in range(6):
            clock.advance(timedelta(days=1, minutes=1))
            await service.run_job("gmail.renew-watches")
        # A renewal a day: never within six days of the last one, so never past Gmail's seven.
        assert len(await stack.calls(rep, "gmail.users.watch")) == 8
