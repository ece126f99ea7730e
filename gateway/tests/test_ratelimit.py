"""The token buckets, in this process and in Redis: limits hold, a refused request costs
nothing, and idle buckets do not pile up in memory."""

import logging
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from pipedesk_gateway.ratelimit import (
    Bucket,
    Limit,
    MemoryRateLimiter,
    RedisRateLimiter,
    retry_after,
)

REDIS_URL = "redis://127.0.0.1:6379/0"


class Ticking:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.asyncio
async def test_a_bucket_refuses_when_empty_and_says_how_long_to_wait() -> None:
    clock = Ticking()
    limiter = MemoryRateLimiter(now=clock)
    bucket = Bucket("org:acme", Limit(2, 10))
    assert await limiter.take([bucket]) == 0
    assert await limiter.take([bucket]) == 0
    assert await limiter.take([bucket]) == pytest.approx(5.0)
    clock.now += 5
    assert await limiter.take([bucket]) == 0


@pytest.mark.asyncio
async def test_buckets_that_refilled_are_swept_but_partly_used_ones_stay() -> None:
    clock = Ticking()
    limiter = MemoryRateLimiter(now=clock, sweep_every=60)
    for user in range(1000):
        await limiter.take([Bucket(f"user:{user}", Limit(10, 10))])
    slow = Bucket("user:slow", Limit(100, 1000))
    for _ in range(50):
        await limiter.take([slow])
    assert len(limiter) == 1001
    clock.now += 61  # the fast buckets refilled after 1 s; the slow one needs 500 s
    await limiter.take([Bucket("user:new", Limit(10, 10))])
    assert len(limiter) == 2
    # the surviving bucket kept its state: 50 tokens left plus 6.1 refilled, then a wait
    for _ in range(56):
        assert await limiter.take([slow]) == 0
    assert await limiter.take([slow]) > 0


@pytest.mark.asyncio
async def test_a_partly_refilled_bucket_waits_only_for_the_missing_part() -> None:
    clock = Ticking()
    limiter = MemoryRateLimiter(now=clock)
    bucket = Bucket("user:partial", Limit(2, 10))  # a token every 5 seconds
    assert [await limiter.take([bucket]) for _ in range(2)] == [0, 0]
    clock.now += 2.5  # half a token back
    assert await limiter.take([bucket]) == pytest.approx(2.5)


@pytest.mark.asyncio
async def test_a_refused_request_costs_none_of_its_buckets_anything() -> None:
    clock = Ticking()
    limiter = MemoryRateLimiter(now=clock)
    user, org = Bucket("user:u", Limit(1, 60)), Bucket("org:o", Limit(3, 60))
    assert await limiter.take([user, org]) == 0
    assert await limiter.take([user, org]) == pytest.approx(60)  # the user's bucket is empty
    # …so the org's still holds its other two tokens
    assert [await limiter.take([org]) for _ in range(3)] == [0, 0, pytest.approx(20)]


@pytest.mark.asyncio
async def test_sweeps_run_every_minute_from_the_start_and_drop_exactly_the_full_buckets() -> None:
    clock = Ticking()
    start = clock.now
    limiter = MemoryRateLimiter(now=clock)  # sweeps every 60 s by default
    clock.now = start + 30
    await limiter.take([Bucket("early", Limit(10, 10))])  # full again one second later
    clock.now = start + 59
    await limiter.take([Bucket("boundary", Limit(1, 1))])  # full again at start + 60
    await limiter.take([Bucket("slow", Limit(100, 100))])  # 99 left: full at start + 60
    assert len(limiter) == 3
    clock.now = start + 60  # the first sweep: a bucket full by now is the same as none
    await limiter.take([Bucket("late", Limit(10, 10))])  # full again at start + 61
    assert len(limiter) == 1
    clock.now = start + 61  # the next sweep is a minute later, not now
    await limiter.take([Bucket("later", Limit(10, 10))])
    assert len(limiter) == 2


def test_limits_are_parsed_from_count_and_seconds_and_must_be_positive() -> None:
    assert Limit.parse("600/60") == Limit(600, 60)
    assert Limit.parse("1/1") == Limit(1, 1)
    assert Limit.parse("600/60").per_second == 10
    for text in ("0/60", "5/0"):
        with pytest.raises(ValueError, match=f"a rate limit needs positive numbers, not '{text}'"):
            Limit.parse(text)
    assert Limit(30, 60).scaled(20) == Limit(600, 60)


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    assert [retry_after(wait) for wait in (0, 0.2, 1, 4.1)] == ["1", "1", "1", "5"]


@pytest.fixture
def redis_keys(broker_prefix: str) -> str:
    """A prefix of this test's own for its buckets in the shared Redis."""
    return f"{broker_prefix}ratelimit-test:{uuid4().hex[:8]}:"


@pytest.mark.asyncio
async def test_redis_buckets_refuse_when_empty_and_charge_all_or_none(redis_keys: str) -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        limiter = RedisRateLimiter(redis)
        user = Bucket(f"{redis_keys}user", Limit(2, 10))  # a token every 5 seconds
        org = Bucket(f"{redis_keys}org", Limit(5, 10))
        assert [await limiter.take([user, org]) for _ in range(2)] == [0, 0]
        wait = await limiter.take([user, org])
        assert 4 < wait <= 5  # the server's clock moved on a little since
        assert wait == round(wait, 3)  # Redis counts in whole milliseconds
        slow = Bucket(f"{redis_keys}slow", Limit(1, 1000))  # a token every 1000 seconds
        assert await limiter.take([slow]) == 0
        assert 999 < await limiter.take([slow]) <= 1000
        # the refused request took nothing from the org's bucket: three tokens are left
        assert [await limiter.take([org]) == 0 for _ in range(4)] == [True, True, True, False]
        assert await redis.exists(user.key, org.key) == 2
    finally:
        await redis.aclose()


@pytest.mark.asyncio
async def test_without_redis_the_limits_hold_in_this_process(
    redis_keys: str, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        limiter = RedisRateLimiter(unreachable)
        bucket = Bucket(f"{redis_keys}user", Limit(1, 60))
        with caplog.at_level(logging.WARNING, logger="pipedesk_gateway.ratelimit"):
            assert await limiter.take([bucket]) == 0
            assert 59 < await limiter.take([bucket]) <= 60
        assert [record.getMessage() for record in caplog.records] == [
            "rate limits fall back to this process while Redis is unreachable"
        ] * 2
    finally:
        await unreachable.aclose()
