"""The token vault: secrets sealed with AES-256-GCM before they reach the database.

A sealed value is ``0x01 | len(key_id) | key_id | nonce (12 bytes) | ciphertext+tag``: a random
nonce per write, and associated data binding it to its row and column (``context``) and to its
key id, so a ciphertext copied into another row, column or key slot fails to open. Keys are named,
so they rotate: new values use the active key, old ones open with the key they name, and
``python -m accounts_service.rotate_keys`` re-seals every row with the active key.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION: Final = 1
NONCE_BYTES: Final = 12
KEY_BYTES: Final = 32


class VaultError(Exception):
    """A sealed value cannot be opened: wrong row, tampered, or its key is gone."""


def parse_keys(spec: str) -> dict[str, bytes]:
    """``kid:base64,kid2:base64`` → {kid: 32-byte key}; refuses anything else."""
    keys: dict[str, bytes] = {}
    for part in (item.strip() for item in spec.split(",")):
        if not part:
            continue
        key_id, _, encoded = part.partition(":")
        if not key_id or len(key_id) > 64 or not key_id.isascii():
            raise ValueError("every vault key needs an ASCII id of 1 to 64 characters")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"vault key {key_id!r} is not base64") from exc
        if len(key) != KEY_BYTES:
            raise ValueError(f"vault key {key_id!r} must be {KEY_BYTES} bytes")
        if key_id in keys:
            raise ValueError(f"vault key {key_id!r} appears twice")
        keys[key_id] = key
    return keys


class Vault:
    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise ValueError(f"the active vault key {active_key_id!r} is not among the keys")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active_key_id = active_key_id

    @classmethod
    def from_spec(cls, spec: str, active_key_id: str) -> Vault:
        return cls(parse_keys(spec), active_key_id)

    @staticmethod
    def _associated_data(context: str, key_id: str) -> bytes:
        return f"pipedesk.accounts|{context}|{key_id}".encode()

    def seal(self, plaintext: str, *, context: str) -> bytes:
        key_id = self.active_key_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(
            nonce, plaintext.encode(), self._associated_data(context, key_id)
        )
        encoded_id = key_id.encode()
        return bytes([FORMAT_VERSION, len(encoded_id)]) + encoded_id + nonce + sealed

    def open(self, sealed: bytes, *, context: str) -> str:
        key_id, nonce, ciphertext = self._split(sealed)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise VaultError(f"vault key {key_id!r} is not configured")
        try:
            plaintext = cipher.decrypt(nonce, ciphertext, self._associated_data(context, key_id))
        except InvalidTag:
            raise VaultError(f"a sealed value of {context} failed to open") from None
        return plaintext.decode()

    def key_id_of(self, sealed: bytes) -> str:
        return self._split(sealed)[0]

    def reseal(self, sealed: bytes, *, context: str) -> bytes | None:
        """The value sealed with the active key, or None if it already is."""
        if self.key_id_of(sealed) == self.active_key_id:
            return None
        return self.seal(self.open(sealed, context=context), context=context)

    @staticmethod
    def _split(sealed: bytes) -> tuple[str, bytes, bytes]:
        if len(sealed) < 2 or sealed[0] != FORMAT_VERSION:
            raise VaultError("not a sealed value")
        end = 2 + sealed[1]
        if len(sealed) < end + NONCE_BYTES + 16:
            raise VaultError("a sealed value is truncated")
        try:
            key_id = sealed[2:end].decode("ascii")
        except UnicodeDecodeError:
            raise VaultError("a sealed value names no readable key id") from None
        return key_id, sealed[end : end + NONCE_BYTES], sealed[end + NONCE_BYTES :]
