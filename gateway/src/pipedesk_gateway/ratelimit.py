"""Token buckets per org, user and route class: in Redis (shared by every gateway process) or,
when ``REDIS_URL`` is unset, in this process's memory."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    capacity: int
    period_seconds: int

    @classmethod
    def parse(cls, text: str) -> Limit:
        """``"600/60"``: 600 requests per 60 seconds, in a burst or spread out."""
        count, seconds = (int(part) for part in text.split("/"))
        if count < 1 or seconds < 1:
            raise ValueError(f"a rate limit needs positive numbers, not {text!r}")
        return cls(count, seconds)

    @property
    def per_second(self) -> float:
        return self.capacity / self.period_seconds

    def scaled(self, factor: int) -> Limit:
        return Limit(self.capacity * factor, self.period_seconds)


@dataclass(frozen=True)
class Bucket:
    key: str
    limit: Limit


class RateLimiter(Protocol):
    async def take(self, buckets: list[Bucket]) -> float:
        """Take one token from every bucket, or none; returns 0, or seconds until allowed."""
        ...


# All buckets are checked and charged together, atomically, on the Redis server's clock.
_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local states = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[2 * i - 1])
  local rate = tonumber(ARGV[2 * i])
  local saved = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(saved[1]) or capacity
  local at = tonumber(saved[2]) or now
  tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
  if tokens < 1 then
    wait = math.max(wait, math.ceil((1 - tokens) / rate))
  end
  states[i] = {tokens, capacity, rate}
end
for i, key in ipairs(KEYS) do
  local tokens = states[i][1]
  if wait == 0 then tokens = tokens - 1 end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(states[i][2] / states[i][3]) + 1000)
end
return wait
"""


class RedisRateLimiter:
    """Shared buckets; while Redis is unreachable, this process's own buckets stand in."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_TAKE)
        self._fallback = MemoryRateLimiter()

    async def take(self, buckets: list[Bucket]) -> float:
        arguments: list[float] = []
        for bucket in buckets:
            arguments += [bucket.limit.capacity, bucket.limit.per_second / 1000]
        try:
            wait_ms = await self._script(keys=[bucket.key for bucket in buckets], args=arguments)
        except RedisError:
            log.warning("rate limits fall back to this process while Redis is unreachable")
            return await self._fallback.take(buckets)
        return float(wait_ms) / 1000


class MemoryRateLimiter:
    """This process's buckets. A bucket that has refilled to capacity is the same as no bucket,
    so such buckets are swept out now and then: memory stays bounded by the active callers."""

    def __init__(
        self, *, sweep_every: float = 60.0, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._buckets: dict[str, tuple[float, float, float]] = {}  # key → tokens, at, full at
        self._now = now
        self._sweep_every = sweep_every
        self._next_sweep = now() + sweep_every

    def __len__(self) -> int:
        return len(self._buckets)

    async def take(self, buckets: list[Bucket]) -> float:
        # No await within: each take runs whole before another starts, as the event loop's
        # single thread runs one task at a time.
        now = self._now()
        if now >= self._next_sweep:
            self._sweep(now)
        refilled = []
        wait = 0.0
        for bucket in buckets:
            capacity, rate = float(bucket.limit.capacity), bucket.limit.per_second
            tokens, at, _ = self._buckets.get(bucket.key, (capacity, now, now))
            tokens = min(capacity, tokens + (now - at) * rate)
            if tokens < 1:
                wait = max(wait, (1 - tokens) / rate)
            refilled.append((bucket.key, tokens, capacity, rate))
        for key, tokens, capacity, rate in refilled:
            left = tokens - 1 if wait == 0 else tokens
            self._buckets[key] = (left, now, now + (capacity - left) / rate)
        return wait

    def _sweep(self, now: float) -> None:
        self._buckets = {key: state for key, state in self._buckets.items() if state[2] > now}
        self._next_sweep = now + self._sweep_every


def retry_after(wait_seconds: float) -> str:
    return str(max(1, math.ceil(wait_seconds)))
