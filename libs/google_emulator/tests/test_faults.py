"""Injected faults: a latency holds a call until it has passed or the faults are cleared."""

import asyncio

import pytest

from google_emulator.core import Emulator, Fault, GoogleError
from pipedesk_testkit.waiting import eventually

pytestmark = pytest.mark.asyncio


async def test_clearing_the_faults_releases_a_call_held_by_a_latency() -> None:
    emulator = Emulator()
    emulator.inject("tasks.tasks.list", Fault(status=503, latency_seconds=3600))
    held = asyncio.create_task(emulator.apply_faults("tasks.tasks.list"))
    # The call has taken the fault and waits out its hour.
    await eventually(
        lambda: asyncio.sleep(0, emulator.faults["tasks.tasks.list"]), until=lambda queue: not queue
    )
    assert not held.done()
    emulator.clear_faults()
    async with asyncio.timeout(30):  # a guard against hanging, far below the fault's hour
        with pytest.raises(GoogleError) as raised:
            await held
    assert raised.value.code == 503
    # A later call meets no fault and no wait.
    await emulator.apply_faults("tasks.tasks.list")
