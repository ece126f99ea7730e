"""The reconnect helper: the waits it asks the clock for, when the backoff starts over, and how it
stops. No server is involved: the links here fail as the tests tell them to."""

import asyncio

import pytest

from pipedesk_common.clock import ManualClock
from pipedesk_common.reconnect import Backoff, Connected, reconnecting
from pipedesk_testkit.waiting import eventually

BACKOFF = Backoff(initial=0.5, cap=30.0)


class StoppedClock(ManualClock):
    """A clock on which a wait never ends."""

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.Event().wait()


def ceiling(failures: int, backoff: Backoff = BACKOFF) -> float:
    """The longest wait after ``failures`` failures in a row."""
    return min(backoff.cap, backoff.initial * 2.0 ** (failures - 1))


@pytest.mark.asyncio
async def test_the_waits_it_asks_the_clock_for_grow_to_the_cap_with_jitter() -> None:
    clock, stopping = ManualClock(), asyncio.Event()
    attempts = 0

    async def refused(_connected: Connected) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 16:
            stopping.set()
        raise ConnectionRefusedError("the server is down")

    await reconnecting("test link", refused, clock=clock, stopping=stopping, backoff=BACKOFF)

    assert len(clock.slept) == 15  # one wait between each two attempts, none after stopping
    for failures, wait in enumerate(clock.slept, start=1):
        assert ceiling(failures) / 2 <= wait <= ceiling(failures)
    assert [ceiling(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 16, 30]
    assert all(BACKOFF.cap / 2 <= wait <= BACKOFF.cap for wait in clock.slept[6:])
    assert max(clock.slept) <= BACKOFF.cap
    # Jitter: the random half of each wait differs from wait to wait.
    random_parts = {
        round(wait / ceiling(failures) - 0.5, 9)
        for failures, wait in enumerate(clock.slept, start=1)
    }
    assert len(random_parts) > 10


@pytest.mark.asyncio
async def test_the_backoff_starts_over_once_the_link_was_up() -> None:
    clock, stopping = ManualClock(), asyncio.Event()
    attempts = 0

    async def flaky(connected: Connected) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 6:
            connected()  # up at last; lost again at once
        if attempts == 8:
            stopping.set()
        raise OSError("connection reset")

    await reconnecting("test link", flaky, clock=clock, stopping=stopping, backoff=BACKOFF)

    assert len(clock.slept) == 7
    assert clock.slept[4] >= ceiling(5) / 2  # five failures in a row: 8 s or so
    assert ceiling(1) / 2 <= clock.slept[5] <= ceiling(1)  # lost after being up: a first wait
    assert ceiling(2) / 2 <= clock.slept[6] <= ceiling(2)


@pytest.mark.asyncio
async def test_a_run_that_returns_without_being_asked_to_stop_counts_as_a_lost_link() -> None:
    clock, stopping = ManualClock(), asyncio.Event()
    runs = 0

    async def closes(connected: Connected) -> None:
        nonlocal runs
        runs += 1
        connected()
        if runs == 3:
            stopping.set()

    await reconnecting("test link", closes, clock=clock, stopping=stopping, backoff=BACKOFF)

    assert runs == 3
    assert len(clock.slept) == 2
    assert all(ceiling(1) / 2 <= wait <= ceiling(1) for wait in clock.slept)


@pytest.mark.asyncio
async def test_stopping_cuts_a_wait_short() -> None:
    clock, stopping = StoppedClock(), asyncio.Event()
    attempted = asyncio.Event()

    async def refused(_connected: Connected) -> None:
        attempted.set()
        raise ConnectionRefusedError("the server is down")

    running = asyncio.create_task(
        reconnecting("test link", refused, clock=clock, stopping=stopping, backoff=BACKOFF)
    )
    await attempted.wait()
    attempted.clear()
    await eventually(lambda: asyncio.sleep(0, clock.slept), until=bool)  # it is waiting
    stopping.set()
    await asyncio.wait_for(running, timeout=10)
    assert running.result() is None
    assert not attempted.is_set()  # no attempt after stopping


@pytest.mark.asyncio
async def test_a_cancelled_link_is_cancelled_not_retried() -> None:
    clock, stopping = ManualClock(), asyncio.Event()
    connected = asyncio.Event()

    async def serving(up: Connected) -> None:
        up()
        connected.set()
        await asyncio.Event().wait()

    running = asyncio.create_task(
        reconnecting("test link", serving, clock=clock, stopping=stopping, backoff=BACKOFF)
    )
    await connected.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


@pytest.mark.asyncio
async def test_a_manual_clock_notes_the_waits_asked_of_it_and_does_not_move() -> None:
    clock = ManualClock()
    before = clock.now()
    await clock.sleep(60)
    await clock.sleep(0.5)
    assert clock.slept == [60, 0.5]
    assert clock.now() == before


def test_a_backoff_needs_a_positive_start_below_its_cap() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial=0, cap=1)
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial=2, cap=1)
