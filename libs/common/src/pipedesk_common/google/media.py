"""``StreamedMedia``: an upload's body read from an async stream (a request being received)
into a resumable Google upload, holding at most one chunk.

google-api-python-client asks a ``MediaUpload`` for ``getbytes(offset, chunksize)`` from a worker
thread, where ``offset`` is what Google has confirmed it holds (after a failed chunk, the offset
Google reported). Everything before that offset is dropped; what the chunk still needs is read
from the stream on the event loop. So a chunk cut midway is sent again from Google's offset,
never from the start, and the body never sits whole in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from googleapiclient.http import MediaUpload

from pipedesk_common.errors import InvalidInput

# Google's resumable uploads take chunks in multiples of 256 KiB.
CHUNK_UNIT = 256 * 1024


class IncompleteBody(InvalidInput):
    """The stream ended before the size it declared."""


class StreamedMedia(MediaUpload):  # type: ignore[misc]
    def __init__(
        self,
        source: AsyncIterator[bytes],
        *,
        size: int,
        mimetype: str,
        chunksize: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        if chunksize <= 0 or chunksize % CHUNK_UNIT:
            raise ValueError(f"chunksize must be a positive multiple of {CHUNK_UNIT}")
        self._source = source
        self._size = size
        self._mimetype = mimetype
        self._chunksize = chunksize
        self._loop = loop
        self._window = bytearray()
        self._start = 0  # the offset of the window's first byte
        self._ended = False
        self.peak_held = 0  # the most bytes the window ever held

    def chunksize(self) -> int:
        return self._chunksize

    def mimetype(self) -> str:
        return self._mimetype

    def size(self) -> int:
        return self._size

    def resumable(self) -> bool:
        return True

    def has_stream(self) -> bool:
        return False

    async def prefetch(self, begin: int) -> None:
        """Read the chunk from ``begin`` (what Google confirmed) before it is sent, on the event
        loop: the client's bytes are awaited here, not while a Google call holds its slot."""
        self._drop_before(begin)
        wanted = min(self._chunksize, self._size - begin)
        while len(self._window) < wanted and not self._ended:
            piece = await self._next()
            if piece is None:
                self._ended = True
            else:
                self._window += piece
                self.peak_held = max(self.peak_held, len(self._window))

    def _drop_before(self, begin: int) -> None:
        if begin < self._start:
            raise RuntimeError(f"bytes from {begin} were dropped; Google had confirmed them")
        if begin > self._start + len(self._window):
            raise RuntimeError(f"Google reported an offset ({begin}) beyond what was sent")
        del self._window[: begin - self._start]
        self._start = begin

    def getbytes(self, begin: int, length: int) -> bytes:
        """Bytes from ``begin`` (called in a worker thread, never on the event loop): from the
        prefetched chunk, or, after Google reported a later offset, read on from the stream."""
        self._drop_before(begin)
        wanted = min(length, self._size - begin)
        while len(self._window) < wanted and not self._ended:
            piece = asyncio.run_coroutine_threadsafe(self._next(), self._loop).result()
            if piece is None:
                self._ended = True
            else:
                self._window += piece
                self.peak_held = max(self.peak_held, len(self._window))
        if len(self._window) < wanted:
            raise IncompleteBody(f"the body ended after {begin + len(self._window)} bytes")
        view = memoryview(self._window)
        try:
            return bytes(view[:wanted])
        finally:
            view.release()

    async def _next(self) -> bytes | None:
        piece: bytes | None = b""
        while piece == b"":
            piece = await anext(self._source, None)
        return piece

    def to_json(self) -> str:
        raise TypeError("a streamed upload cannot be serialized")
