"""The Google service kit's own pieces: sync keys, how a failure is judged and when the next
attempt is due, work started only once its transaction commits, a user's requests dropped."""

from datetime import timedelta
from typing import ClassVar
from uuid import uuid4

import pytest
from joserfc.jwk import ECKey
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pipedesk_common.clock import ManualClock
from pipedesk_common.coalesce import Coalescer
from pipedesk_common.errors import Forbidden, InvalidInput, ServiceUnavailable
from pipedesk_common.events.sync import SyncState
from pipedesk_common.events.timeline import Link, RecordType
from pipedesk_common.google.calls import GoogleQuotaExhausted
from pipedesk_common.google.credentials import GoogleNotConnected, GoogleReconnectRequired
from pipedesk_common.mirror.health import FAILING_AFTER, RETRY_CAP, judged, retry_delay
from pipedesk_common.mirror.keys import SyncKey
from pipedesk_common.mirror.links import record_filter
from pipedesk_common.mirror.settings import PushServiceSettings
from pipedesk_common.uow import on_commit


def away(status: int, retry_after: str = "30") -> GoogleQuotaExhausted:
    error = GoogleQuotaExhausted(f"Google answered {status}", headers={"Retry-After": retry_after})
    error.google_status = status
    return error


@pytest.mark.parametrize(
    "key",
    [
        SyncKey("tasks", "org-1", "u-1"),
        SyncKey("calendar", "acme:eu", "ada%40", "c0ffee"),
        SyncKey("drive", "o/1", "ü:ser", "a:b:c"),
    ],
)
def test_a_sync_key_reads_back_whatever_its_ids_hold(key: SyncKey) -> None:
    assert SyncKey.parse(str(key)) == key
    assert str(key).startswith(f"{key.account}")
    assert key.account.resource is None


@pytest.mark.parametrize("text", ["tasks", "tasks:org", "a:b:c:d:e", "tasks::u"])
def test_anything_else_is_not_a_sync_key(text: str) -> None:
    with pytest.raises(ValueError, match="not a sync key"):
        SyncKey.parse(text)


def test_a_failure_is_judged_by_what_it_was_and_how_often() -> None:
    assert judged(GoogleReconnectRequired(), 1) is SyncState.NEEDS_RECONNECT
    assert judged(GoogleNotConnected(), 9) is SyncState.NEEDS_RECONNECT
    for failures in (1, FAILING_AFTER, FAILING_AFTER * 5):
        assert judged(away(429), failures) is SyncState.BACKING_OFF  # asked to slow down
    assert judged(away(500), FAILING_AFTER - 1) is SyncState.BACKING_OFF
    assert judged(away(500), FAILING_AFTER) is SyncState.FAILING
    assert judged(ServiceUnavailable("accounts away"), 1) is SyncState.BACKING_OFF
    assert judged(Forbidden("Google answered 403 (forbidden)"), 1) is SyncState.FAILING
    assert judged(RuntimeError("a bug"), 1) is SyncState.FAILING


def test_the_next_attempt_waits_longer_after_each_failure_up_to_a_cap() -> None:
    bounds = [
        max(retry_delay(away(500, "1"), failures) for _ in range(50)) for failures in (1, 2, 3)
    ]
    assert bounds[0] < bounds[1] < bounds[2]
    assert all(retry_delay(away(500, "1"), 40) <= RETRY_CAP for _ in range(50))
    assert retry_delay(away(429, "7200"), 1) == timedelta(hours=2)  # Google's Retry-After rules


@pytest.mark.asyncio
async def test_work_requested_in_a_transaction_starts_only_once_it_commits(
    sessions: async_sessionmaker[AsyncSession], work_requests: Table
) -> None:
    coalescer = Coalescer(work_requests, sessions, ManualClock())
    started: list[str] = []
    key = f"test:{uuid4()}"

    async def failing_request() -> None:
        async with sessions.begin() as session:
            await coalescer.request(session, key)
            on_commit(session, lambda: started.append("rolled back"))
            raise RuntimeError("the request fails")

    with pytest.raises(RuntimeError):
        await failing_request()
    async with sessions.begin() as session:
        await coalescer.request(session, key)
        on_commit(session, lambda: started.append("committed"))
        assert started == []
    assert started == ["committed"]


@pytest.mark.asyncio
async def test_forgetting_a_users_requests_leaves_every_other_users(
    sessions: async_sessionmaker[AsyncSession], work_requests: Table
) -> None:
    coalescer = Coalescer(work_requests, sessions, ManualClock())
    org = f"org-{uuid4().hex[:8]}"
    mine = [SyncKey("calendar", org, "u"), SyncKey("calendar", org, "u", "c1")]
    others = [SyncKey("calendar", org, "u2"), SyncKey("calendar", org, "u2", "c1")]
    async with sessions.begin() as session:
        for key in (*mine, *others):
            await coalescer.request(session, str(key))
    async with sessions.begin() as session:
        await coalescer.forget(session, str(SyncKey("calendar", org, "u")))
    pending = set(await coalescer.pending_keys())
    assert not {str(key) for key in mine} & pending
    assert {str(key) for key in others} <= pending


def test_a_record_filter_takes_its_type_and_id_together() -> None:
    record = uuid4()
    assert record_filter() is None
    assert record_filter("deal", record) == Link(type=RecordType.DEAL, id=str(record))
    for half in ({"record_type": "lead"}, {"record_id": record}):
        with pytest.raises(InvalidInput, match="go together"):
            record_filter(**half)


class WatchedSettings(PushServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WATCHED_", extra="ignore")

    service_name: ClassVar[str] = "watched"
    webhook_path: ClassVar[str] = "/webhooks/google/watched"
    dev_channel_secret: ClassVar[str] = "dev-only-watched-channel-secret-0123456789"


def test_push_channels_are_signed_with_a_real_secret_and_address_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    development = WatchedSettings()
    assert development.channel_secrets == [WatchedSettings.dev_channel_secret.encode()]
    assert development.webhook_address.endswith("/webhooks/google/watched")

    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("CURSOR_SECRET", "s" * 48)
    monkeypatch.setenv("AUTH_JWKS_URL", "https://idp.example.com/jwks")
    monkeypatch.setenv("SERVICE_JWKS_URL", "https://keys.example.com/services.json")
    monkeypatch.setenv(
        "WATCHED_SERVICE_KEY", ECKey.generate_key("P-256").as_pem(private=True).decode()
    )
    with pytest.raises(ValidationError, match="WATCHED_CHANNEL_SECRET is required"):
        WatchedSettings()
    monkeypatch.setenv("WATCHED_CHANNEL_SECRET", WatchedSettings.dev_channel_secret)
    with pytest.raises(ValidationError, match="WATCHED_CHANNEL_SECRET is the development value"):
        WatchedSettings()
    monkeypatch.setenv("WATCHED_CHANNEL_SECRET", "r" * 40)
    with pytest.raises(ValidationError, match="WATCHED_WEBHOOK_URL must name"):
        WatchedSettings()
    monkeypatch.setenv("WATCHED_WEBHOOK_URL", "http://hooks.example.com/google/watched")
    with pytest.raises(ValidationError, match="WATCHED_WEBHOOK_URL must be an https:// address"):
        WatchedSettings()
    monkeypatch.setenv("WATCHED_WEBHOOK_URL", "https://hooks.example.com/google/watched")
    monkeypatch.setenv("WATCHED_CHANNEL_PREVIOUS_SECRET", "p" * 40)
    settings = WatchedSettings()
    assert settings.channel_secrets == [b"r" * 40, b"p" * 40]
    assert settings.webhook_address == "https://hooks.example.com/google/watched"
