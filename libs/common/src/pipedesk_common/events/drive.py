"""Events the drive service publishes (routing keys ``drive.*``)."""

from __future__ import annotations

from pipedesk_common.events.envelope import contract
from pipedesk_common.events.sync import SyncStateChanged


@contract("drive", "sync", "state_changed")
class DriveSyncStateChanged(SyncStateChanged):
    """The drive service's sync of the org's Drive account changed state (its record folders
    could not be brought in line with CRM, or could again)."""
