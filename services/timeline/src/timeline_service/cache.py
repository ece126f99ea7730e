"""The server-side page cache (Redis, when configured). Its key is the page's ETag, which names
the record's version, the org's access-list version, the viewer's visibility class and the
query: a changed timeline or changed access makes a new key, so a cached page is never stale."""

import logging
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

PAGE_TTL_SECONDS: Final = 300


class PageCache:
    def __init__(self, redis: Redis | None, prefix: str = "timeline:page:") -> None:
        self.redis = redis
        self.prefix = prefix

    async def get(self, tag: str) -> bytes | None:
        if self.redis is None:
            return None
        try:
            found = await self.redis.get(self.prefix + tag)
        except RedisError:
            log.warning("page cache unavailable", exc_info=True)
            return None
        return found.encode() if isinstance(found, str) else found

    async def put(self, tag: str, body: bytes) -> None:
        if self.redis is None:
            return
        try:
            await self.redis.set(self.prefix + tag, body, ex=PAGE_TTL_SECONDS)
        except RedisError:
            log.warning("page cache unavailable", exc_info=True)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
