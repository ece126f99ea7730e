"""The change listener behind live streams, across a database outage simulated by the TCP
proxy: it reconnects by itself, wakes every stream (notifications may have been missed) and
delivers notifications again."""

import asyncio
import json

import pytest

from pipedesk_common.app import stop_task
from pipedesk_common.db import connect_raw
from pipedesk_common.reconnect import Backoff
from pipedesk_testkit.clocks import ObservedClock
from pipedesk_testkit.proxy import server_of, tcp_proxy, through
from pipedesk_testkit.waiting import eventually
from timeline_service.projection import CHANGES_CHANNEL
from timeline_service.streams import ChangeListener

pytestmark = pytest.mark.asyncio


async def notify(database_url: str, key: tuple[str, str, str]) -> None:
    connection = await connect_raw(database_url)
    try:
        payload = json.dumps([*key, 1])
        await connection.execute("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, payload)
    finally:
        await connection.close()


async def test_a_listener_cut_off_from_the_database_reconnects_and_wakes_its_streams(
    database_url: str,
) -> None:
    key = ("org-listener", "lead", "lead-1")
    clock = ObservedClock()
    with tcp_proxy(*server_of(database_url)) as proxy:
        listener = ChangeListener(
            through(proxy, database_url), clock=clock, backoff=Backoff(initial=0.05, cap=0.5)
        )
        running = asyncio.create_task(listener.run())
        try:
            with listener.subscribe(key) as wake:
                await asyncio.wait_for(listener.connected.wait(), timeout=15)
                wake.clear()
                await notify(database_url, key)
                await asyncio.wait_for(wake.wait(), timeout=15)

                wake.clear()
                proxy.cut()
                await eventually(lambda: asyncio.sleep(0, not listener.connected.is_set()))
                await eventually(lambda: asyncio.sleep(0, len(clock.slept) >= 2))
                assert not wake.is_set()
                proxy.restore()
                await asyncio.wait_for(listener.connected.wait(), timeout=15)
                await asyncio.wait_for(wake.wait(), timeout=15)  # woken: it may have missed some

                wake.clear()
                await notify(database_url, key)
                await asyncio.wait_for(wake.wait(), timeout=15)
        finally:
            listener.stop()
            await asyncio.wait({running}, timeout=10)
            await stop_task(running)
    assert running.exception() is None
