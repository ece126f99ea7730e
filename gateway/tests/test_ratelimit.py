"""The in-process token buckets: limits hold, and idle buckets do not pile up in memory."""

import pytest

from pipedesk_gateway.ratelimit import Bucket, Limit, MemoryRateLimiter


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
