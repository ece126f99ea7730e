"""The server-side page cache: this process's memory, then Redis when configured. Its key is the
page's ETag, which names the record's version, the org's access-list version, the viewer's
visibility class and the query: a changed timeline or changed access makes a new key, so a cached
page is never stale."""

import logging
from collections import OrderedDict
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

PAGE_TTL_SECONDS: Final = 300
MEMORY_BYTES: Final = 16 * 2**20  # pages kept in this process, least recently used out first


class PageCache:
    def __init__(
        self, redis: Redis | None, prefix: str = "timeline:page:", memory_bytes: int = MEMORY_BYTES
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.memory_bytes = memory_bytes
        self._local: OrderedDict[str, bytes] = OrderedDict()
        self._local_bytes = 0

    def _remember(self, tag: str, body: bytes) -> None:
        if len(body) > self.memory_bytes // 4:  # one page never crowds out the rest
            return
        previous = self._local.pop(tag, None)
        if previous is not None:
            self._local_bytes -= len(previous)
        self._local[tag] = body
        self._local_bytes += len(body)
        while self._local_bytes > self.memory_bytes:
            _, dropped = self._local.popitem(last=False)
            self._local_bytes -= len(dropped)

    async def get(self, tag: str) -> bytes | None:
        body = self._local.get(tag)
        if body is not None:
            self._local.move_to_end(tag)
            return body
        if self.redis is None:
            return None
        try:
            found = await self.redis.get(self.prefix + tag)
        except RedisError:
            log.warning("page cache unavailable", exc_info=True)
            return None
        if found is None:
            return None
        body = found.encode() if isinstance(found, str) else found
        self._remember(tag, body)
        return body

    async def put(self, tag: str, body: bytes) -> None:
        self._remember(tag, body)
        if self.redis is None:
            return
        try:
            await self.redis.set(self.prefix + tag, body, ex=PAGE_TTL_SECONDS)
        except RedisError:
            log.warning("page cache unavailable", exc_info=True)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
