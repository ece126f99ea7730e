"""The bench's own measurement helpers: percentiles, spreads, the open-loop schedule, HTTP
responses and wrk's summary."""

import asyncio

import pytest

from bench.measure import (
    Spread,
    intended_times,
    open_loop,
    parse_wrk,
    percentile,
    read_response,
    sample_process,
)


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0, 5.0]
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 1.0) == 5.0
    assert percentile(values, 0.25) == 2.0
    assert percentile([10.0, 20.0], 0.99) == pytest.approx(19.9)
    assert percentile(list(range(1, 101)), 0.99) == pytest.approx(99.01)


def test_percentile_refuses_nothing_and_out_of_range_fractions() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="fraction"):
        percentile([1.0], 1.5)


def test_spread_is_the_median_and_range_of_the_rounds() -> None:
    spread = Spread.of([10.0, 12.0, 8.0, 11.0, 9.0])
    assert (spread.median, spread.low, spread.high) == (10.0, 8.0, 12.0)
    assert spread.relative == pytest.approx(0.4)
    assert spread.as_dict()["rounds"] == [10.0, 12.0, 8.0, 11.0, 9.0]


def test_fixed_rate_schedule_spaces_sends_evenly_over_the_duration() -> None:
    times = intended_times(100.0, rate=200, duration=3)
    assert len(times) == 600
    assert times[0] == 100.0
    assert times[1] - times[0] == pytest.approx(0.005)
    assert times[-1] == pytest.approx(100.0 + 599 / 200)
    with pytest.raises(ValueError, match="positive"):
        intended_times(0.0, rate=0, duration=1)


@pytest.mark.asyncio
async def test_open_loop_keeps_sending_while_earlier_answers_are_outstanding() -> None:
    """A closed loop would wait for the first answer and never reach the tenth send."""
    started = 0
    all_sent = asyncio.Event()

    async def send() -> int:
        nonlocal started
        started += 1
        if started == 10:
            all_sent.set()
        await all_sent.wait()  # no answer until every request of the schedule has gone out
        return 200

    result = await asyncio.wait_for(open_loop(send, rate=400, duration=0.025), timeout=5)
    assert result.sent == 10
    assert len(result.latencies) == 10
    # Measured from each intended send time: the first request waited for the last to be sent.
    assert max(result.latencies) >= 9 / 400
    assert result.errors == 0


@pytest.mark.asyncio
async def test_open_loop_counts_failures_apart_from_latencies() -> None:
    answers = iter([200, 503, 200, 200])

    async def send() -> int:
        return next(answers)

    result = await open_loop(send, rate=400, duration=0.01)
    assert result.sent == 4
    assert result.errors == 1
    assert len(result.latencies) == 3
    assert result.statuses == {200: 3, 503: 1}


@pytest.mark.asyncio
async def test_open_loop_gives_up_on_answers_after_the_grace_period() -> None:
    never = asyncio.Event()

    async def send() -> int:
        await never.wait()
        return 200

    result = await open_loop(send, rate=400, duration=0.01, grace=0.05)
    assert (result.sent, result.unanswered, result.errors) == (4, 4, 4)
    assert len(result.latencies) == 4
    assert min(result.latencies) >= 0.05  # a lower bound: at least the grace period


def reader_of(raw: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    return reader


@pytest.mark.asyncio
async def test_read_response_reads_content_length_and_chunked_bodies() -> None:
    plain = reader_of(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloNEXT")
    assert await read_response(plain) == (200, b"hello", True)
    assert await plain.read() == b"NEXT"
    chunked = reader_of(
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"
    )
    assert await read_response(chunked) == (404, b"abcde", False)


WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8102/api/timeline/lead/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    20.10ms    5.02ms  60.00ms   80.00%
    Req/Sec   800.00    100.00     1.00k    70.00%
  1600 requests in 2.00s, 10.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:    799.50
Transfer/sec:      5.00MB
"""


def test_parse_wrk_reads_rate_totals_and_failures() -> None:
    assert parse_wrk(WRK_OUTPUT) == (799.5, 1600, 4, 3)
    with pytest.raises(ValueError, match="unexpected wrk output"):
        parse_wrk("wrk: command failed")


def test_sample_process_reads_this_process() -> None:
    sample = sample_process(__import__("os").getpid())
    assert sample is not None
    assert sample.cpu_seconds > 0
    assert sample.rss_bytes > 10 * 2**20
    assert sample_process(2**22 + 12345) is None
