"""What every Google-facing service publishes about its sync of a user's account.

Each Google service keeps, per connected user, the state of its sync (``SyncState``) and publishes
``<service>.sync.state_changed`` with the whole state whenever it changes; the accounts service
keeps the replica users and admins read. The contract of each product is declared beside the
product's other contracts (``events/calendar.py``, ``events/tasks.py``), on this one shape.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from pipedesk_common.events.envelope import VersionedData


class SyncState(StrEnum):
    IDLE = "idle"
    SYNCING = "syncing"
    BACKING_OFF = "backing_off"
    FAILING = "failing"
    NEEDS_RECONNECT = "needs_reconnect"


class SyncProblem(BaseModel):
    """The last error of a sync: its problem type and what it said."""

    model_config = ConfigDict(frozen=True)

    type: str = Field(
        description="The problem type URI, e.g. `urn:pipedesk:problem:google-unavailable`"
    )
    message: str


class SyncStateChanged(VersionedData):
    """One user's sync of one Google product after a change (``id``, ``version`` identify it)."""

    org_id: str
    user_id: str
    product: str = Field(description="calendar, tasks, drive or gmail")
    state: SyncState
    last_success_at: AwareDatetime | None = Field(description="When a sync last completed")
    last_error: SyncProblem | None = Field(description="The last failure, until a sync succeeds")
    consecutive_failures: int = Field(ge=0)
    next_attempt_at: AwareDatetime | None = Field(
        description="When the next sync is due after failures; none while it needs a reconnect"
    )
    changed_at: AwareDatetime
