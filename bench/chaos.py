"""The chaos suite: the system on a private RabbitMQ node and PostgreSQL cluster, crashed for real.

``python -m bench.chaos`` (``make chaos``) starts its own servers (``bench.servers``), migrates a
database on them, starts the Procfile's processes against them (``bench.stack``, as the benchmarks
do, without the gateway: the driver calls the services as the gateway would), connects its users'
Google accounts (the emulator's) and drives events through CRM, Calendar and Tasks: lead creates,
and meetings and tasks linked to a lead — each ends as one timeline item. (Drive's files reach no
timeline yet; Gmail's messages do, but are not in the mix yet.) Every request is retried, with
its own ``Idempotency-Key``, until it succeeds, as a client of the API does.

The events go in slices; while each slice runs, one fault is injected and repaired as an operator
(or supervisord, or Kubernetes) would: the broker stopped and started again, or SIGKILLed and
started again; PostgreSQL crashed (``pg_ctl stop -m immediate``: every backend quits at once,
open transactions and LISTEN connections with them) and started again; a consumer SIGKILLed with
deliveries in hand and started again; the CRM SIGKILLed while its outbox relay holds a claimed
batch (its transaction open, publishes under way) and started again. After each fault the driver
creates a lead and prints how long after the fault it appeared on the lead's timeline: the time the
system took to work end to end again (printed, never asserted).

Then it checks, and exits 1 unless all hold: exactly as many timeline items as events, each from
one source, per kind as driven, no title twice (no lead, meeting or task created twice by a
retry); nothing in any dead-letter queue (``rabbitmqctl``'s own
list of the node's queues); every service's outbox drained.

``--short`` is the version ``make test`` runs: 500 events, one broker SIGKILL, one PostgreSQL
restart, two consumer kills. ``--json PATH`` writes the outcome; ``--save`` writes it with a
Markdown summary to ``bench/results/<date>-chaos.{json,md}`` (``-chaos-short`` for the short one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.servers import PrivateServers
from bench.stack import REPO, Stack, free_port_base, inherited_env
from dev_identity.keystore import KeyStore, TokenMinter
from pipedesk_common import migrations
from pipedesk_common.auth import Role
from pipedesk_testkit.google import CALLBACK_PATH, GoogleStack
from pipedesk_testkit.identities import ActingUser, Users

# Drive's files reach no timeline yet and no Gmail message is sent, so the drive and gmail
# services (and the gateway: the driver calls the services as it would) are left out.
PROCESSES = ("identity", "emulator", "crm", "timeline", "accounts", "calendar", "tasks")
STARTUP_SECONDS = 300.0
GOOGLE_PRODUCTS = ("calendar", "tasks")
REPS = 4
WORKERS = 12
# One event of each kind of operation the driver makes; each is one timeline item of this kind.
KINDS = {"lead": "audit", "meeting": "meeting", "task": "task"}
MIX = ("lead", "meeting", "lead", "task")
OP_DEADLINE_SECONDS = 600.0
SETTLE_SECONDS = 600.0
RESULTS = REPO / "bench" / "results"


# --- the faults -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    kind: str  # broker-stop | broker-kill | postgres-restart | consumer-kill | relay-kill
    target: str = ""

    @property
    def label(self) -> str:
        return {
            "broker-stop": "broker stopped (SIGTERM) and started",
            "broker-kill": "broker SIGKILLed and started",
            "postgres-restart": "PostgreSQL crashed (immediate stop) and started",
            "consumer-kill": f"consumer {self.target} SIGKILLed and started",
            "relay-kill": f"{self.target} SIGKILLed mid-batch of its outbox relay and started",
        }[self.kind]


FULL_FAULTS = (
    Fault("consumer-kill", "timeline"),
    Fault("broker-stop"),
    Fault("consumer-kill", "calendar"),
    Fault("relay-kill", "crm"),
    Fault("postgres-restart"),
    Fault("consumer-kill", "timeline"),
    Fault("broker-kill"),
    Fault("consumer-kill", "tasks"),
    Fault("consumer-kill", "timeline"),
)
SHORT_FAULTS = (
    Fault("consumer-kill", "timeline"),
    Fault("broker-kill"),
    Fault("postgres-restart"),
    Fault("consumer-kill", "calendar"),
)


@dataclass
class Recovery:
    fault: Fault
    at_events: int
    repaired_after: float = 0.0  # the component answers again (process ready, server listening)
    end_to_end_after: float = 0.0  # a lead created after the fault is on its timeline
    detail: str = ""

    def line(self) -> str:
        detail = f"; {self.detail}" if self.detail else ""
        return (
            f"fault after {self.at_events:,} events: {self.fault.label}: back after "
            f"{self.repaired_after:.1f} s, a new lead on its timeline after "
            f"{self.end_to_end_after:.1f} s{detail}"
        )


# --- the system -------------------------------------------------------------------------------


def stack_env(servers: PrivateServers, database_url: str, port_base: int) -> dict[str, str]:
    accounts = f"http://127.0.0.1:{port_base + 103}"
    return {
        **inherited_env(),
        "PORT_BASE": str(port_base),
        "DATABASE_URL": database_url,
        "AMQP_URL": servers.amqp_url,
        "BROKER_PREFIX": "chaos.",
        "BROKER_QUEUE_LEDGER": str(servers.root / "queues"),
        "GOOGLE_ROOT_URL": f"http://127.0.0.1:{port_base + 90}/",
        "ACCOUNTS_GOOGLE_REDIRECT_URI": accounts + CALLBACK_PATH,
        "ACCOUNTS_FRONTEND_URL": f"http://127.0.0.1:{port_base}/app/",
        "DEV_KEY_DIR": str(servers.root / "keys"),
        "LOG_LEVEL": "WARNING",
        "WORKERS": "1",
        "NO_GCE_CHECK": "True",
    }


async def create_database(servers: PrivateServers) -> str:
    connection = await asyncpg.connect(
        host="127.0.0.1", port=servers.pg_port, user="postgres", database="postgres"
    )
    try:
        await connection.execute("CREATE DATABASE pipedesk")
    finally:
        await connection.close()
    url = servers.database_server_url.rsplit("/", 1)[0] + "/pipedesk"
    await asyncio.to_thread(migrations.upgrade, url)
    return url


async def database(servers: PrivateServers) -> asyncpg.Connection:
    return await asyncpg.connect(
        host="127.0.0.1", port=servers.pg_port, user="postgres", database="pipedesk"
    )


# --- the workload -----------------------------------------------------------------------------


@dataclass
class Workload:
    stack: Stack
    reps: list[ActingUser]
    http: httpx.AsyncClient
    leads: dict[str, list[str]] = field(default_factory=dict)  # rep sub → their lead ids
    done: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    lead_ready: dict[str, asyncio.Event] = field(default_factory=dict)
    milestones: list[tuple[int, asyncio.Event]] = field(default_factory=list)

    def reaching(self, total: int) -> asyncio.Event:
        """Set once ``total`` events are done."""
        reached = asyncio.Event()
        self.milestones.append((total, reached))
        self._progress()
        return reached

    def _progress(self) -> None:
        for total, reached in self.milestones:
            if self.total >= total:
                reached.set()

    async def request(
        self, method: str, url: str, user: ActingUser, what: str, **kwargs: Any
    ) -> dict[str, Any]:
        """One create, retried with its own Idempotency-Key until it succeeds; a 4xx other than
        429 (and 409, an earlier attempt still in flight) is a defect and stops the run."""
        headers = {
            **user.headers,
            "Idempotency-Key": str(uuid.uuid4()),
            **kwargs.pop("headers", {}),
        }
        deadline = time.monotonic() + OP_DEADLINE_SECONDS
        wait = 0.2
        while True:
            try:
                answer = await self.http.request(method, url, headers=headers, **kwargs)
                if answer.status_code in (200, 201):
                    body: dict[str, Any] = answer.json()
                    return body
                reason = f"{answer.status_code}"
                if 400 <= answer.status_code < 500 and answer.status_code not in (409, 429):
                    raise RuntimeError(f"{what}: {answer.status_code} {answer.text[:300]}")
            except httpx.HTTPError as error:
                reason = type(error).__name__
            self.retries += 1
            self.failures[f"{what} {reason}"] += 1
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not succeed within {OP_DEADLINE_SECONDS:.0f} s")
            await asyncio.sleep(wait * random.uniform(0.5, 1.5))
            wait = min(wait * 2, 2.0)

    async def create_lead(self, rep: ActingUser, title: str) -> str:
        lead = await self.request(
            "POST", self.stack.url("crm") + "/api/leads", rep, "lead", json={"title": title}
        )
        self.leads.setdefault(rep.sub, []).append(str(lead["id"]))
        self.lead_ready.setdefault(rep.sub, asyncio.Event()).set()
        return str(lead["id"])

    async def a_lead_of(self, rep: ActingUser) -> str:
        await self.lead_ready.setdefault(rep.sub, asyncio.Event()).wait()
        return random.choice(self.leads[rep.sub])

    async def run_op(self, index: int, kind: str) -> None:
        # A rep's block of the mix starts with a lead: its meeting and task link to one of theirs.
        rep = self.reps[index // len(MIX) % len(self.reps)]
        name = f"chaos {kind} {index}"
        if kind == "lead":
            await self.create_lead(rep, name)
        elif kind == "meeting":
            start = datetime(2031, 1, 1, 9, tzinfo=UTC) + timedelta(hours=index)
            await self.request(
                "POST",
                self.stack.url("calendar") + "/api/calendar/events",
                rep,
                kind,
                json={
                    "title": name,
                    "start": start.isoformat(),
                    "end": (start + timedelta(minutes=30)).isoformat(),
                    "links": [{"type": "lead", "id": await self.a_lead_of(rep)}],
                },
            )
        else:
            await self.request(
                "POST",
                self.stack.url("tasks") + "/api/tasks",
                rep,
                kind,
                json={"title": name, "links": [{"type": "lead", "id": await self.a_lead_of(rep)}]},
            )
        self.done[kind] += 1
        self._progress()

    async def run_slice(self, ops: list[tuple[int, str]]) -> None:
        queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        for op in ops:
            queue.put_nowait(op)

        async def worker() -> None:
            while not queue.empty():
                index, kind = queue.get_nowait()
                await self.run_op(index, kind)

        await asyncio.gather(*(worker() for _ in range(WORKERS)))

    @property
    def total(self) -> int:
        return sum(self.done.values())

    async def on_timeline(self, rep: ActingUser, lead_id: str) -> bool:
        try:
            answer = await self.http.get(
                self.stack.url("timeline") + f"/api/timeline/lead/{lead_id}", headers=rep.headers
            )
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and bool(answer.json().get("items"))


# --- injecting and repairing faults -----------------------------------------------------------


async def wait_until(probe: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await probe():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not within {within:.0f} s")
        await asyncio.sleep(0.1)


async def relay_mid_batch(servers: PrivateServers, service: str, within: float = 60) -> bool:
    """Wait until ``service``'s relay holds a claimed batch: its transaction is open, the rows
    locked, the publishes under way (the relay marks them sent in that same transaction)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            connection = await database(servers)
            try:
                while time.monotonic() < deadline:
                    claimed = await connection.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'"
                        " AND query LIKE $1 AND query LIKE '%SKIP LOCKED%'",
                        f"%FROM {service}.outbox%",
                    )
                    if claimed:
                        return True
                    await asyncio.sleep(0.002)
            finally:
                await connection.close()
    return False


async def inject(fault: Fault, servers: PrivateServers, stack: Stack) -> str:
    """Break something, then repair it as an operator would; returns what was seen."""
    if fault.kind in ("broker-stop", "broker-kill"):
        signum = signal.SIGKILL if fault.kind == "broker-kill" else signal.SIGTERM
        await asyncio.to_thread(servers.kill_rabbitmq, signum)
        await asyncio.to_thread(servers.start_rabbitmq)
        return ""
    if fault.kind == "postgres-restart":
        await asyncio.to_thread(servers.stop_postgres, "immediate")
        await asyncio.to_thread(servers.start_postgres)
        return ""
    detail = ""
    if fault.kind == "relay-kill":
        caught = await relay_mid_batch(servers, fault.target)
        detail = "its relay held a claimed batch" if caught else "no batch caught in flight"
    await asyncio.to_thread(stack.kill, fault.target, signal.SIGKILL)
    stack.launch(fault.target)
    await asyncio.to_thread(stack.wait_ready, fault.target, STARTUP_SECONDS)
    return detail


async def fault_during(
    fault: Fault,
    ops: list[tuple[int, str]],
    workload: Workload,
    servers: PrivateServers,
    stack: Stack,
    canary: ActingUser,
) -> Recovery:
    """Run a slice of events and, a third of the way through it, the fault."""
    slice_run = asyncio.create_task(workload.run_slice(ops))
    third = asyncio.create_task(workload.reaching(workload.total + len(ops) // 3).wait())
    await asyncio.wait([slice_run, third], return_when=asyncio.FIRST_COMPLETED)
    third.cancel()
    recovery = Recovery(fault, workload.total)
    started = time.monotonic()
    recovery.detail = await inject(fault, servers, stack)
    recovery.repaired_after = time.monotonic() - started
    lead_id = await workload.create_lead(
        canary, f"chaos canary {uuid.uuid4().hex[:8]} after {fault.kind}"
    )
    workload.done["lead"] += 1
    await wait_until(
        lambda: workload.on_timeline(canary, lead_id), SETTLE_SECONDS, "the canary lead"
    )
    recovery.end_to_end_after = time.monotonic() - started
    await slice_run
    print(recovery.line(), flush=True)
    return recovery


# --- the checks -------------------------------------------------------------------------------


@dataclass
class Outcome:
    events: int
    driven: dict[str, int]
    items: int = 0
    distinct_items: int = 0
    items_by_kind: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    outbox_pending: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    recoveries: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    machine: str = ""

    def expected_by_kind(self) -> dict[str, int]:
        expected: Counter[str] = Counter()
        for op, count in self.driven.items():
            expected[KINDS[op]] += count
        return dict(expected)


@dataclass(frozen=True)
class Counts:
    items: int  # timeline items of the org
    holders: int  # their sources (a source key is unique per org: a redelivery adds none)
    by_kind: dict[str, int]
    titles: int  # distinct titles of meetings, tasks and files (each driven once, by name)
    named: int  # meetings, tasks and files
    leads: int  # the org's leads in the CRM
    lead_titles: int  # and their distinct titles (a create that landed twice shows here)


async def count_items(servers: PrivateServers, org_id: str) -> Counts:
    connection = await database(servers)
    try:
        row = await connection.fetchrow(
            """
            SELECT (SELECT count(*) FROM timeline.items WHERE org_id = $1) AS items,
                   (SELECT count(*) FROM timeline.holders WHERE org_id = $1) AS holders,
                   (SELECT count(DISTINCT title) FROM timeline.holders
                     WHERE org_id = $1 AND kind <> 'audit') AS titles,
                   (SELECT count(*) FROM timeline.holders
                     WHERE org_id = $1 AND kind <> 'audit') AS named,
                   (SELECT count(*) FROM crm.leads WHERE org_id = $1) AS leads,
                   (SELECT count(DISTINCT title) FROM crm.leads WHERE org_id = $1) AS lead_titles
            """,
            org_id,
        )
        kinds = await connection.fetch(
            "SELECT kind, count(*) AS n FROM timeline.holders WHERE org_id = $1 GROUP BY kind",
            org_id,
        )
    finally:
        await connection.close()
    assert row is not None
    return Counts(
        int(row["items"]),
        int(row["holders"]),
        {kind["kind"]: int(kind["n"]) for kind in kinds},
        int(row["titles"]),
        int(row["named"]),
        int(row["leads"]),
        int(row["lead_titles"]),
    )


async def outbox_backlog(servers: PrivateServers) -> dict[str, int]:
    connection = await database(servers)
    try:
        schemas = await connection.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'"
        )
        return {
            row["table_schema"]: int(
                await connection.fetchval(
                    f'SELECT count(*) FROM "{row["table_schema"]}".outbox WHERE status = 0'
                )
            )
            for row in schemas
        }
    finally:
        await connection.close()


async def settle_and_check(outcome: Outcome, servers: PrivateServers, org_id: str) -> None:
    expected = outcome.events
    deadline = time.monotonic() + SETTLE_SECONDS
    previous, still = -1, time.monotonic()
    while True:  # until every item is in and every outbox empty, or nothing moved for a minute
        counts = await count_items(servers, org_id)
        backlog = await outbox_backlog(servers)
        if counts.items >= expected and not any(backlog.values()):
            break
        if counts.items != previous:
            previous, still = counts.items, time.monotonic()
        if time.monotonic() - still > 60 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    counts = await count_items(servers, org_id)
    outcome.items, outcome.distinct_items = counts.items, counts.holders
    outcome.items_by_kind = counts.by_kind
    outcome.outbox_pending = await outbox_backlog(servers)
    outcome.dead_letters = {
        name: count
        for name, count in (await asyncio.to_thread(servers.queue_messages)).items()
        if name.endswith(".dlq")
    }
    if counts.items != expected:
        outcome.problems.append(f"{counts.items:,} timeline items, not {expected:,}")
    if counts.holders != counts.items:
        outcome.problems.append(f"{counts.items:,} items from {counts.holders:,} sources")
    if counts.titles != counts.named or counts.lead_titles != counts.leads:
        outcome.problems.append(
            f"duplicates: {counts.named - counts.titles} items, "
            f"{counts.leads - counts.lead_titles} leads"
        )
    if counts.by_kind != outcome.expected_by_kind():
        outcome.problems.append(f"items by kind {counts.by_kind}, not {outcome.expected_by_kind()}")
    if any(outcome.dead_letters.values()):
        outcome.problems.append(f"dead letters: {outcome.dead_letters}")
    if any(outcome.outbox_pending.values()):
        outcome.problems.append(f"outboxes not drained: {outcome.outbox_pending}")


# --- the run ----------------------------------------------------------------------------------


def plan(events: int, faults: tuple[Fault, ...]) -> list[list[tuple[int, str]]]:
    """The events in slices, one per fault and a last one after them; the canary leads (one
    per fault) are events too, taken from the lead creates."""
    kinds = [MIX[index % len(MIX)] for index in range(events - len(faults))]
    ops = list(enumerate(kinds))
    size = len(ops) // (len(faults) + 1)
    slices = [ops[i * size : (i + 1) * size] for i in range(len(faults))]
    return [*slices, ops[len(faults) * size :]]


def print_logs(stack: Stack, tail: int = 2000) -> None:
    """The end of every process's log, before the run's directory goes."""
    for log in sorted(stack.log_dir.glob("*.log")):
        print(f"--- {log.name}\n{log.read_text(errors='replace')[-tail:]}", file=sys.stderr)


async def connect_users(stack: Stack, reps: list[ActingUser]) -> None:
    google = GoogleStack(
        stack.url("emulator"), stack.url("accounts"), Path(stack.env["DEV_KEY_DIR"])
    )
    for user in reps:
        await google.connect(user, GOOGLE_PRODUCTS)


async def run(events: int, faults: tuple[Fault, ...]) -> Outcome:
    started = time.monotonic()
    with PrivateServers() as servers:
        print(
            f"private servers in {servers.root}: PostgreSQL on {servers.pg_port}, RabbitMQ "
            f"{servers.node} on {servers.amqp_port}"
            + (f", as {servers.user}" if servers.user else ""),
            flush=True,
        )
        database_url = await create_database(servers)
        keys = KeyStore(servers.root / "keys")  # the run's own signing keys, gone with it
        keys.ensure()
        token_minter = TokenMinter(keys.identity_key(), lifetime_seconds=6 * 3600)
        port_base = free_port_base(40000)
        stack = Stack(
            port_base,
            database_url,
            "chaos.",
            servers.amqp_url,
            stack_env(servers, database_url, port_base),
            log_dir=servers.root / "logs",
            names=PROCESSES,
        )
        stack.log_dir.mkdir()
        try:
            await asyncio.to_thread(stack.start, STARTUP_SECONDS)
            users = Users(token_minter, org_id=f"chaos-{uuid.uuid4().hex[:8]}")
            reps = [users.make(Role.REP, teams=["chaos"]) for _ in range(REPS)]
            await connect_users(stack, reps)
            print(f"system up on PORT_BASE {port_base}; driving {events:,} events", flush=True)
            slices = plan(events, faults)
            async with httpx.AsyncClient(timeout=30) as http:
                workload = Workload(stack, reps, http)
                recoveries = [
                    await fault_during(fault, ops, workload, servers, stack, reps[0])
                    for fault, ops in zip(faults, slices, strict=False)
                ]
                await workload.run_slice(slices[-1])
            outcome = Outcome(
                events,
                dict(workload.done),
                retries=workload.retries,
                failures=dict(workload.failures),
                recoveries=[
                    {
                        "fault": recovery.fault.label,
                        "at_events": recovery.at_events,
                        "repaired_after_s": round(recovery.repaired_after, 1),
                        "end_to_end_after_s": round(recovery.end_to_end_after, 1),
                        "detail": recovery.detail,
                    }
                    for recovery in recoveries
                ],
            )
            await settle_and_check(outcome, servers, users.org_id)
        except BaseException:
            print_logs(stack)
            raise
        finally:
            stack.stop()
    outcome.seconds = time.monotonic() - started
    outcome.machine = f"{os.cpu_count()} cores, load average {os.getloadavg()[1]:.1f} at the end"
    return outcome


# --- reporting --------------------------------------------------------------------------------


def summary(outcome: Outcome) -> str:
    lines = [
        f"# Chaos run ({outcome.events:,} events), {datetime.now(UTC):%Y-%m-%d}",
        "",
        f"{outcome.events:,} events ({', '.join(f'{n:,} {k}s' for k, n in outcome.driven.items())})"
        f" in {outcome.seconds / 60:.1f} min on a private RabbitMQ node and PostgreSQL cluster;"
        f" {outcome.retries:,} requests retried during the faults. Machine: {outcome.machine}.",
        "",
        "| fault | after events | back after | a new lead on its timeline after |",
        "|---|---:|---:|---:|",
    ]
    for recovery in outcome.recoveries:
        detail = f" ({recovery['detail']})" if recovery["detail"] else ""
        lines.append(
            f"| {recovery['fault']}{detail} | {recovery['at_events']:,} | "
            f"{recovery['repaired_after_s']:.1f} s | {recovery['end_to_end_after_s']:.1f} s |"
        )
    lines += [
        "",
        f"- timeline items: {outcome.items:,} ({outcome.distinct_items:,} distinct source keys);"
        f" by kind {outcome.items_by_kind}",
        f"- messages in dead-letter queues: {sum(outcome.dead_letters.values())}"
        f" ({len(outcome.dead_letters)} queues)",
        f"- outbox rows not yet published: {outcome.outbox_pending}",
        f"- checks: {'all hold' if not outcome.problems else '; '.join(outcome.problems)}",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="make test's version: 500 events")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the outcome here")
    parser.add_argument("--save", action="store_true", help="write it to bench/results/ too")
    arguments = parser.parse_args()
    faults = SHORT_FAULTS if arguments.short else FULL_FAULTS
    events = arguments.events or (500 if arguments.short else 10_000)
    outcome = asyncio.run(run(events, faults))
    report = summary(outcome)
    print(report, flush=True)
    document = json.dumps(outcome.__dict__, indent=2, default=str)
    if arguments.json is not None:
        arguments.json.write_text(document)
    if arguments.save:
        stem = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-chaos{'-short' if arguments.short else ''}"
        stem.with_suffix(".json").write_text(document + "\n")
        stem.with_suffix(".md").write_text(report)
    return 1 if outcome.problems else 0


if __name__ == "__main__":
    sys.exit(main())
