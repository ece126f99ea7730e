"""The tables every Google service holds besides its mirror, in its own schema (so its own
migrations create them)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import MetaData, Table

from pipedesk_common.access import access_replica_table
from pipedesk_common.coalesce import coalescer_table
from pipedesk_common.google.push import channels_table
from pipedesk_common.idempotency import idempotency_table
from pipedesk_common.inbox import InboxTables, inbox_tables
from pipedesk_common.lifecycle_answers import lifecycle_answers_table
from pipedesk_common.mirror.health import sync_health_table
from pipedesk_common.outbox import outbox_table
from pipedesk_common.periodic import job_schedule_table


@dataclass(frozen=True)
class MirrorTables:
    outbox: Table
    inbox: InboxTables
    access_replica: Table
    idempotency_keys: Table
    work_requests: Table
    job_schedule: Table
    sync_health: Table
    lifecycle_answers: Table
    channels: Table | None

    @classmethod
    def of(cls, metadata: MetaData, *, push: bool = False) -> MirrorTables:
        """The tables on ``metadata`` (``push``: with the push channels table)."""
        return cls(
            outbox=outbox_table(metadata),
            inbox=inbox_tables(metadata),
            access_replica=access_replica_table(metadata),
            idempotency_keys=idempotency_table(metadata),
            work_requests=coalescer_table(metadata),
            job_schedule=job_schedule_table(metadata),
            sync_health=sync_health_table(metadata),
            lifecycle_answers=lifecycle_answers_table(metadata),
            channels=channels_table(metadata) if push else None,
        )
