"""The org's rule for a disconnected account's tasks.

When a user disconnects Google Tasks (or Google revokes their access) the org's
``on_disconnect`` rule applies (``pipedesk_common.mirror.disconnect``): ``keep_metadata`` keeps
their tasks as last seen; ``remove`` removes every task of their lists from PipeDesk, each copy
announced ``tasks.task.deleted`` with its timeline status ``removed``, so a task no other copy
holds leaves every timeline (the kit's ``pipedesk_common.mirror.removal``). Their lists stay
(what the poll reads when they reconnect).
"""

from __future__ import annotations

from sqlalchemy import Table

from pipedesk_common.events.tasks import TaskDeleted
from pipedesk_common.mirror.disconnect import rule_on_disconnect
from pipedesk_common.mirror.removal import user_mirror_removal
from tasks_service.mirror import task_writer
from tasks_service.models import OrgTasksSettings, TaskList

SETTINGS_TABLE: Table = OrgTasksSettings.__table__  # type: ignore[attr-defined]

access_ended = rule_on_disconnect(
    SETTINGS_TABLE, user_mirror_removal(task_writer, TaskList, TaskDeleted)
)
