"""Media a chunk at a time through the real google-api-python-client, against the emulator: a
resumable upload cut midway resumes from Google's offset holding at most one chunk; a download
comes in ranged pieces."""

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from google.oauth2.credentials import Credentials

from google_emulator.app import create_emulator_app
from google_emulator.core import Emulator
from google_emulator.drive import UploadCut, drive_state
from pipedesk_common.google import GoogleApi, GoogleUser, RetryPolicy
from pipedesk_common.google.media import CHUNK_UNIT, IncompleteBody, StreamedMedia
from pipedesk_testkit.servers import serve_in_thread

pytestmark = pytest.mark.asyncio

USER = GoogleUser(org_id="org-m", user_id="u-m")
EMAIL = "ada@example.com"
DRIVE = ("https://www.googleapis.com/auth/drive",)
CHUNK = 4 * CHUNK_UNIT  # 1 MiB
PIECE = 64 * 1024  # what a request body arrives in


@dataclass
class EmulatorCredentials:
    emulator: Emulator

    async def credentials(self, user: GoogleUser, scopes: Sequence[str]) -> Credentials:
        return Credentials(self.emulator.issue_access_token(EMAIL, scopes).token)  # type: ignore[no-untyped-call]

    async def refreshed(self, user: GoogleUser, scopes: Sequence[str]) -> Credentials:
        return await self.credentials(user, scopes)


@pytest.fixture
def emulator() -> Iterator[tuple[Emulator, GoogleApi]]:
    app = create_emulator_app()
    emulator: Emulator = app.state.emulator
    with serve_in_thread(app) as url:

        async def no_wait(_seconds: float) -> None:
            return None

        api = GoogleApi(
            "drive",
            "v3",
            credentials=EmulatorCredentials(emulator),
            scopes=DRIVE,
            root_url=url,
            policy=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02),
            sleep=no_wait,
        )
        yield emulator, api
    assert emulator.fidelity_violations == []


def content(size: int) -> bytes:
    return hashlib.sha256(b"seed").digest() * (size // 32) + b"x" * (size % 32)


async def pieces(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), PIECE):
        await asyncio.sleep(0)
        yield data[start : start + PIECE]


def media_of(data: bytes, size: int | None = None) -> StreamedMedia:
    return StreamedMedia(
        pieces(data),
        size=len(data) if size is None else size,
        mimetype="application/pdf",
        chunksize=CHUNK,
        loop=asyncio.get_running_loop(),
    )


def create(media: StreamedMedia) -> Any:
    return lambda client: client.files().create(
        body={"name": "big.pdf"}, media_body=media, fields="id,size,md5Checksum"
    )


async def test_an_upload_cut_midway_resumes_from_googles_offset_holding_one_chunk(
    emulator: tuple[Emulator, GoogleApi],
) -> None:
    state, api = emulator
    data = content(5 * CHUNK + 12345)
    cut_at = 2 * CHUNK + 300_000  # inside the third chunk
    drive_state(state).cuts.append(UploadCut(user=EMAIL, after_bytes=cut_at))
    media = media_of(data)

    answer = await api.upload(USER, "files.create", create(media))

    assert answer["size"] == str(len(data))
    assert answer["md5Checksum"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert media.peak_held <= CHUNK + PIECE
    puts = [r for r in state.requests if r.method == "PUT"]
    # Two chunks, the cut third, the question of where Google is, then the three chunks from
    # Google's offset on (from the start again, it would take six).
    assert [r.status for r in puts] == [308, 308, 503, 308, 308, 308, 200]
    assert not drive_state(state).cuts


async def test_a_body_shorter_than_declared_is_refused_and_nothing_is_stored(
    emulator: tuple[Emulator, GoogleApi],
) -> None:
    state, api = emulator
    data = content(CHUNK + 10)
    with pytest.raises(IncompleteBody):
        await api.upload(USER, "files.create", create(media_of(data, size=3 * CHUNK)))
    assert [f for f in drive_state(state).files.values() if not f.is_root] == []


async def test_a_download_comes_in_ranged_pieces(emulator: tuple[Emulator, GoogleApi]) -> None:
    _state, api = emulator
    data = content(3 * CHUNK + 7)
    made = await api.upload(USER, "files.create", create(media_of(data)))
    got = [
        piece
        async for piece in api.download(
            USER,
            "files.get.media",
            lambda client: client.files().get_media(fileId=made["id"]),
            10,
            len(data) - 1,
            CHUNK,
        )
    ]
    assert b"".join(got) == data[10:]
    assert [len(piece) for piece in got] == [CHUNK, CHUNK, CHUNK - 3]
