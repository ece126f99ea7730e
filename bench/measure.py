"""Measurement helpers: percentiles, round summaries, the open-loop schedule, a lean HTTP/1.1
client, per-process CPU and RSS from /proc, and wrk.

Latency at a fixed rate is measured from each request's *intended* send time, so a slow answer
that delays the requests behind it is counted against all of them (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (0..1) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be within 0..1")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Spread:
    """The rounds of one measurement: their median, and how far the rounds stray from it."""

    median: float
    low: float
    high: float
    rounds: tuple[float, ...]

    @classmethod
    def of(cls, rounds: Iterable[float]) -> Spread:
        values = tuple(rounds)
        if not values:
            raise ValueError("no rounds")
        return cls(statistics.median(values), min(values), max(values), values)

    @property
    def relative(self) -> float:
        """(max - min) / median: 0.1 means the rounds lie within 10% of each other."""
        return (self.high - self.low) / self.median if self.median else math.inf

    def as_dict(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "spread": self.relative,
            "rounds": list(self.rounds),
        }


def intended_times(start: float, rate: float, duration: float) -> list[float]:
    """The send times of a fixed-rate schedule: ``start + i / rate`` for the whole duration."""
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    count = math.floor(rate * duration + 1e-9)
    return [start + index / rate for index in range(count)]


@dataclass
class OpenLoopResult:
    rate: float
    sent: int
    latencies: list[float]  # seconds, from the intended send time to the full answer
    errors: int
    elapsed: float
    statuses: dict[int, int] = field(default_factory=dict)
    unanswered: int = 0  # still open ``grace`` seconds after the last send: counted as errors

    def p(self, fraction: float) -> float:
        return percentile(self.latencies, fraction) if self.latencies else math.nan


async def open_loop(
    send: Callable[[], Awaitable[int]], *, rate: float, duration: float, grace: float = 1.0
) -> OpenLoopResult:
    """Call ``send`` (returns a status code) at ``rate`` per second, never waiting for answers.

    Requests still unanswered ``grace`` seconds after the last send are given up (so an
    overloaded system cannot stretch the phase without end); their time waited so far enters
    the latencies as a lower bound, and they count as errors.
    """
    # perf_counter, not loop.time(): uvloop's clock is cached per iteration in whole milliseconds.
    start = time.perf_counter() + 0.05
    schedule = intended_times(start, rate, duration)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0

    async def one(intended: float) -> None:
        nonlocal errors
        try:
            status = await send()
        except (OSError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            errors += 1
            return
        statuses[status] = statuses.get(status, 0) + 1
        if 200 <= status < 300:
            latencies.append(time.perf_counter() - intended)
        else:
            errors += 1

    tasks: dict[asyncio.Task[None], float] = {}
    for intended in schedule:
        # Timers may fire a little early; the send must never precede its intended time.
        while (delay := intended - time.perf_counter()) > 0:  # noqa: ASYNC110 - a moment, not an event
            await asyncio.sleep(delay)
        tasks[asyncio.create_task(one(intended))] = intended
    _done, pending = await asyncio.wait(tasks, timeout=grace)
    given_up = time.perf_counter()
    for task in pending:
        task.cancel()
        latencies.append(given_up - tasks[task])
    await asyncio.gather(*pending, return_exceptions=True)
    return OpenLoopResult(
        rate=rate,
        sent=len(schedule),
        latencies=latencies,
        errors=errors + len(pending),
        elapsed=time.perf_counter() - start,
        statuses=statuses,
        unanswered=len(pending),
    )


async def closed_loop(send: Callable[[], Awaitable[int]], *, workers: int, duration: float) -> int:
    """``workers`` callers back to back for ``duration`` seconds; returns the 2xx answers."""
    deadline = time.perf_counter() + duration
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            status = await send()
            if 200 <= status < 300:
                done += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return done


# uvicorn closes a keep-alive connection idle for 5 s; older idle connections are not reused.
IDLE_REUSE_SECONDS = 3.0


class HttpPool:
    """Keep-alive HTTP/1.1 connections to one origin, cheap enough to be a load generator."""

    def __init__(self, base_url: str, *, headers: dict[str, str] | None = None, size: int = 64):
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.headers = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self._slots = asyncio.Semaphore(size)
        self._open: set[asyncio.StreamWriter] = set()

    def request_bytes(self, method: str, path: str, body: bytes = b"") -> bytes:
        lines = [f"{method} {path} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        if body or method in {"POST", "PUT", "PATCH"}:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def send(self, raw_request: bytes) -> tuple[int, bytes]:
        async with self._slots:
            reader, writer = await self._connection()
            try:
                writer.write(raw_request)
                status, body, keep = await read_response(reader)
            except BaseException:
                self._open.discard(writer)
                writer.close()
                raise
            if keep:
                self._idle.append((reader, writer, time.monotonic()))
            else:
                self._open.discard(writer)
                writer.close()
            return status, body

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self._idle:
            reader, writer, since = self._idle.pop()
            if time.monotonic() - since < IDLE_REUSE_SECONDS and not reader.at_eof():
                return reader, writer
            self._open.discard(writer)
            writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self._open.add(writer)
        return reader, writer

    async def call(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        return await self.send(self.request_bytes(method, path, body))

    async def close(self) -> None:
        for writer in list(self._open):
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
        self._open.clear()
        self._idle.clear()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: status, body (Content-Length or chunked), keep-alive."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in header_lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(chunks)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() != "close"


@dataclass(frozen=True)
class ProcessSample:
    cpu_seconds: float
    rss_bytes: int


def sample_process(pid: int) -> ProcessSample | None:
    """User + system CPU of a process so far, and its resident memory now (None once gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # After the command name: state is field 3, utime 14, stime 15, rss 24 (1-based, man 5 proc).
    utime, stime, rss_pages = int(fields[11]), int(fields[12]), int(fields[21])
    return ProcessSample((utime + stime) / CLOCK_TICKS, rss_pages * PAGE_BYTES)


def pids_named(executable: str) -> list[int]:
    """Processes whose command is ``executable`` (for the shared servers' total CPU)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm", encoding="utf-8") as comm:
                    if comm.read().strip() == executable:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
    return found


class ProcessMeter:
    """CPU seconds and peak RSS of named processes between ``start`` and ``stop``."""

    def __init__(self, processes: dict[str, int], groups: dict[str, str] | None = None) -> None:
        self.processes = processes
        self.groups = groups or {}  # name -> executable: the sum over every such process
        self._start: dict[str, float] = {}
        self._peak: dict[str, int] = {}
        self._started_at = 0.0
        self._self_start = 0.0

    def _now(self) -> dict[str, ProcessSample]:
        samples = {}
        for name, pid in self.processes.items():
            sample = sample_process(pid)
            if sample is not None:
                samples[name] = sample
        for name, executable in self.groups.items():
            parts = [s for s in map(sample_process, pids_named(executable)) if s is not None]
            samples[name] = ProcessSample(
                sum(s.cpu_seconds for s in parts), sum(s.rss_bytes for s in parts)
            )
        return samples

    def start(self) -> None:
        now = self._now()
        self._start = {name: sample.cpu_seconds for name, sample in now.items()}
        self._peak = {name: sample.rss_bytes for name, sample in now.items()}
        self._started_at = time.monotonic()
        self._self_start = _own_cpu()

    def peek(self) -> None:
        """Note the current RSS (call now and then during a phase to catch the peak)."""
        for name, sample in self._now().items():
            self._peak[name] = max(self._peak.get(name, 0), sample.rss_bytes)

    def stop(self) -> dict[str, dict[str, float]]:
        now = self._now()
        wall = time.monotonic() - self._started_at
        usage = {
            name: {
                "cpu_s": sample.cpu_seconds - self._start.get(name, sample.cpu_seconds),
                "cpu_pct": 100
                * (sample.cpu_seconds - self._start.get(name, sample.cpu_seconds))
                / wall,
                "rss_mb": max(self._peak.get(name, 0), sample.rss_bytes) / 2**20,
            }
            for name, sample in now.items()
        }
        own = _own_cpu() - self._self_start
        usage["bench (generator)"] = {
            "cpu_s": own,
            "cpu_pct": 100 * own / wall,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        return usage


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    requests: int
    non_2xx: int
    errors: int
    cpu_seconds: float
    duration: float

    @property
    def ok_per_second(self) -> float:
        """Requests/s that got a 2xx or 3xx (wrk's rate counts the others too)."""
        return self.requests_per_second * (self.requests - self.non_2xx) / max(1, self.requests)


_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_TOTAL = re.compile(r"(\d+) requests in")
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def parse_wrk(output: str) -> tuple[float, int, int, int]:
    """Requests/s, requests, non-2xx answers and socket errors from wrk's summary."""
    rps = _WRK_RPS.search(output)
    total = _WRK_TOTAL.search(output)
    if rps is None or total is None:
        raise ValueError(f"unexpected wrk output: {output[-500:]}")
    non2xx = _WRK_NON2XX.search(output)
    errors = _WRK_ERRORS.search(output)
    return (
        float(rps.group(1)),
        int(total.group(1)),
        int(non2xx.group(1)) if non2xx else 0,
        sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run_wrk(
    url: str, *, headers: dict[str, str], duration: float, connections: int, threads: int = 1
) -> WrkResult:
    """Closed-loop maximum throughput with wrk; its own CPU comes from the kernel (wait4)."""
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    started = time.monotonic()
    process = subprocess.Popen(
        [*args, url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    output = process.stdout.read()
    process.stdout.close()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed: {output[-500:]}")
    rps, total, non2xx, errors = parse_wrk(output)
    return WrkResult(
        rps, total, non2xx, errors, usage.ru_utime + usage.ru_stime, time.monotonic() - started
    )
