"""Clocks for tests besides ``ManualClock``."""

from __future__ import annotations

from pipedesk_common.clock import SystemClock


class ObservedClock(SystemClock):
    """Real time, noting the waits asked of it in ``slept`` (as ``ManualClock`` does)."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await super().sleep(seconds)
