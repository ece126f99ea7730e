"""The shared pieces the Google-facing services run on (coalescer, periodic jobs, idempotency
keys), on the real database with libs/common's test schema: two instances stand for two
processes."""

import asyncio
from datetime import timedelta
from uuid import uuid4

import pytest
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pipedesk_common.clock import ManualClock
from pipedesk_common.coalesce import Coalescer
from pipedesk_common.idempotency import (
    BASE32HEX,
    IdempotencyKeyReused,
    IdempotencyKeys,
    fingerprint,
    remote_id,
)
from pipedesk_common.periodic import JobRunner, PeriodicJob


@pytest.mark.asyncio
async def test_requests_during_a_run_cause_one_follow_up_whichever_process_gets_them(
    sessions: async_sessionmaker[AsyncSession], work_requests: Table
) -> None:
    clock = ManualClock()
    first, second = (Coalescer(work_requests, sessions, clock) for _ in range(2))
    key = f"test:{uuid4()}"
    started, release = asyncio.Event(), asyncio.Event()
    runs: list[str] = []

    async def work(_key: str) -> None:
        runs.append("run")
        started.set()
        await release.wait()

    async with sessions.begin() as session:
        await first.request(session, key)
    running = asyncio.create_task(first.drain(key, work))
    await started.wait()
    for coalescer in (first, second, first, second):
        async with sessions.begin() as session:
            await coalescer.request(session, key)
        assert await coalescer.drain(key, work) == 0  # the holder will see the request
    release.set()
    assert await running == 2
    assert runs == ["run", "run"]
    assert await first.is_idle(key)


@pytest.mark.asyncio
async def test_a_dead_holders_lease_expires_and_failed_work_is_asked_for_again(
    sessions: async_sessionmaker[AsyncSession], work_requests: Table
) -> None:
    clock = ManualClock()
    dying = Coalescer(work_requests, sessions, clock, lease=timedelta(minutes=5))
    survivor = Coalescer(work_requests, sessions, clock, lease=timedelta(minutes=5))
    key = f"test:{uuid4()}"
    async with sessions.begin() as session:
        await dying.request(session, key)
    assert await dying._claim(key)  # claims, then "dies" without releasing
    async with sessions.begin() as session:
        await survivor.request(session, key)
    assert key not in await survivor.pending_keys()  # the lease is held
    clock.advance(timedelta(minutes=6))
    assert key in await survivor.pending_keys()

    async def failing(_key: str) -> None:
        raise RuntimeError("Google is away")

    with pytest.raises(RuntimeError):
        await survivor.drain(key, failing)
    assert key in await survivor.pending_keys()

    async def succeeding(_key: str) -> None:
        return None

    assert await survivor.drain(key, succeeding) == 1
    assert await survivor.is_idle(key)


@pytest.mark.asyncio
async def test_a_periodic_job_runs_once_per_interval_across_processes(
    sessions: async_sessionmaker[AsyncSession], job_schedule: Table
) -> None:
    clock = ManualClock()
    runs: list[int] = []

    async def count() -> int:
        runs.append(1)
        return len(runs)

    job = PeriodicJob(f"test-{uuid4()}", timedelta(minutes=10), count)
    first, second = (JobRunner(job_schedule, sessions, clock, [job]) for _ in range(2))
    assert await first.run_if_due(job) is True
    assert await second.run_if_due(job) is False
    clock.advance(timedelta(minutes=9))
    assert await second.run_if_due(job) is False
    clock.advance(timedelta(minutes=1))
    assert (await second.run_if_due(job), await first.run_if_due(job)) == (True, False)
    assert len(runs) == 2
    # A process whose interval is shorter (the setting was lowered) does not wait out the turn
    # the longer one set: it runs now, then keeps its own interval.
    shorter = PeriodicJob(job.name, timedelta(minutes=1), count)
    lowered = JobRunner(job_schedule, sessions, clock, [shorter])
    assert await lowered.run_if_due(shorter) is True
    assert await lowered.run_if_due(shorter) is False
    clock.advance(timedelta(minutes=1))
    assert await lowered.run_if_due(shorter) is True
    assert len(runs) == 4


@pytest.mark.asyncio
async def test_idempotency_keys_replay_and_refuse_reuse_for_other_input(
    sessions: async_sessionmaker[AsyncSession], idempotency_keys: Table
) -> None:
    clock = ManualClock()
    keys = IdempotencyKeys(idempotency_keys, clock, retention=timedelta(hours=24))
    scope, key = f"test:{uuid4()}", "k-1"
    digest = fingerprint({"summary": "a"})
    async with sessions.begin() as session:
        assert await keys.replay(session, scope, key, digest) is None
        await keys.remember(session, scope, key, digest, status=201, body={"id": "x"})
    async with sessions.begin() as session:
        answered = await keys.replay(session, scope, key, digest)
        assert answered is not None
        assert (answered.status, answered.body) == (201, {"id": "x"})
        with pytest.raises(IdempotencyKeyReused):
            await keys.replay(session, scope, key, fingerprint({"summary": "b"}))
    clock.advance(timedelta(hours=25))
    async with sessions.begin() as session:
        assert await keys.replay(session, scope, key, digest) is None
        assert await keys.prune(session) >= 1


def test_remote_ids_are_stable_per_scope_and_key_and_fit_calendars_alphabet() -> None:
    chosen = remote_id("scope", "key")
    assert chosen == remote_id("scope", "key")
    assert chosen != remote_id("scope", "other key")
    assert chosen != remote_id("other scope", "key")
    assert len(chosen) == 32
    assert set(chosen) <= set(BASE32HEX)
