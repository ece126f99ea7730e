"""Waiting for asynchronous effects (an event crossing the broker) without sleeping blindly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], *, until: Callable[[T], bool] = bool, within: float = 30.0
) -> T:
    """Call ``probe`` until ``until(result)`` holds; fail (never hang) after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached; last result: {result!r}")
        await asyncio.sleep(0.05)
