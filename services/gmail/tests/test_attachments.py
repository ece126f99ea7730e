"""Gmail's attachment answer read without parsing it as JSON: its ``data`` found in the bytes
and decoded a piece at a time, padded or not, every piece boundary included."""

import base64
import json

import pytest

from gmail_service.attachments import (
    PIECE_CHARACTERS,
    decoded_pieces,
    decoded_size,
    encoded_data,
)
from pipedesk_common.google.calls import GoogleCallError


def answer(data: bytes, *, padded: bool) -> bytes:
    text = base64.urlsafe_b64encode(data).decode()
    if not padded:
        text = text.rstrip("=")
    return json.dumps({"attachmentId": "ANGj", "size": len(data), "data": text}).encode()


@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize(
    "size", [0, 1, 2, 3, PIECE_CHARACTERS // 4 * 3, PIECE_CHARACTERS // 4 * 3 + 1, 1_000_001]
)
def test_the_file_is_decoded_whole_a_piece_at_a_time(size: int, padded: bool) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    encoded = encoded_data(answer(data, padded=padded))
    assert decoded_size(encoded) == size
    pieces = list(decoded_pieces(encoded))
    assert b"".join(pieces) == data
    assert all(len(piece) <= PIECE_CHARACTERS // 4 * 3 for piece in pieces)


def test_the_data_field_is_found_wherever_it_is() -> None:
    found = encoded_data(b'{"data" : "aGk", "attachmentId": "x", "size": 2}')
    assert b"".join(decoded_pieces(found)) == b"hi"


@pytest.mark.parametrize(
    "unreadable",
    [b'{"attachmentId": "x"}', b'{"data": "aGk', b'{"data": "a*b!"}', b'{"data": "a*bc"}'],
)
def test_an_answer_without_readable_data_is_googles_error(unreadable: bytes) -> None:
    with pytest.raises(GoogleCallError):
        list(decoded_pieces(encoded_data(unreadable)))
