"""Keeping a link to a server (the broker, a database LISTEN connection) up: one helper for the
outbox relay, the consumers and the timeline's change listener.

``reconnecting`` runs one connection's life at a time and starts another whenever it ends. The
waits between attempts back off exponentially from ``Backoff.initial`` to ``Backoff.cap`` with
"equal jitter" (half of each wait fixed, half random), so processes that lost the same server do
not come back in step; once a connection is up again, the backoff starts over. The waits are
asked of the injected ``Clock``, so a test controls them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from prometheus_client import Counter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from pipedesk_common.clock import Clock
from pipedesk_common.messaging import raise_if_cancelling

log = logging.getLogger(__name__)

RECONNECTS = Counter(
    "pipedesk_reconnects_total", "Waits before another attempt to establish a link", ["link"]
)

Connected = Callable[[], None]
"""Called by a connection's run once the link is up and set up: the backoff starts over."""


class LinkLost(Exception):
    """A connection's run ended although nobody asked it to stop."""


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts: exponential from ``initial`` to ``cap`` seconds, equal jitter."""

    initial: float = 0.5
    cap: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.cap:
            raise ValueError("a backoff needs 0 < initial <= cap")

    def wait(self) -> wait_base:
        """The tenacity wait: the n-th wait lies in [c/2, c], c = min(cap, initial * 2^(n-1))."""
        half, half_cap = self.initial / 2, self.cap / 2
        return wait_exponential(multiplier=half, max=half_cap) + wait_random_exponential(
            multiplier=half, max=half_cap
        )


async def reconnecting(
    link: str,
    run_connected: Callable[[Connected], Awaitable[None]],
    *,
    clock: Clock,
    stopping: asyncio.Event,
    backoff: Backoff,
    quiet: tuple[type[BaseException], ...] = (OSError, ConnectionError, TimeoutError),
) -> None:
    """Run ``run_connected(connected)`` until ``stopping`` is set. Whenever it ends otherwise,
    by an error or by returning, wait (through ``clock``, cut short by ``stopping``) and run it
    again. It calls ``connected()`` once its link is up, which restarts the backoff. Errors of a
    ``quiet`` type are logged without a traceback: they are what a lost link looks like."""
    retrying = AsyncRetrying(
        retry=retry_if_exception(partial(_worth_retrying, stopping)),
        wait=backoff.wait(),
        sleep=partial(_sleep_unless_stopping, clock, stopping),
        before_sleep=partial(_log_wait, link, quiet),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                if stopping.is_set():
                    return
                await run_connected(partial(_restart_backoff, attempt.retry_state))
                if not stopping.is_set():
                    raise LinkLost(f"{link} closed")
    except Exception:
        raise_if_cancelling()
        if not stopping.is_set():
            raise
        log.info("%s failed while stopping", link, exc_info=True)


def _worth_retrying(stopping: asyncio.Event, error: BaseException) -> bool:
    task = asyncio.current_task()
    cancelling = task is not None and task.cancelling() > 0
    return isinstance(error, Exception) and not cancelling and not stopping.is_set()


def _restart_backoff(state: RetryCallState) -> None:
    # The wait after this attempt fails is computed from its number: the first wait again.
    state.attempt_number = 1


def _log_wait(link: str, quiet: tuple[type[BaseException], ...], state: RetryCallState) -> None:
    RECONNECTS.labels(link).inc()
    error = state.outcome.exception() if state.outcome is not None else None
    log.warning(
        "%s is down; trying again in %.2f s",
        link,
        state.upcoming_sleep,
        extra={"link": link, "error": repr(error)},
        exc_info=None if error is None or isinstance(error, (*quiet, LinkLost)) else error,
    )


async def _sleep_unless_stopping(clock: Clock, stopping: asyncio.Event, seconds: float) -> None:
    await first_of(clock.sleep(seconds), stopping.wait())


async def first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of ``waits`` is done; the others are cancelled."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
