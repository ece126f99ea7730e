"""Who may do what: the role table and the one decision function, ``can``.

CRM decides with it on its own records, and every service that keeps a replica of CRM's access
lists decides with the same function, so the rules cannot drift apart.

- admin: the whole org;
- manager: the records of their teams, and records they own or are a member of;
- rep: records they own or are a member of;
- viewer: reads their teams' records and records they are a member of; never writes.

Record members are ``collaborator`` (read and edit) or ``follower`` (read).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from pipedesk_common.auth import Principal, Role


class Action(StrEnum):
    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    RESTORE = "restore"
    CHANGE_OWNER = "change_owner"
    MANAGE_MEMBERS = "manage_members"


class MemberRole(StrEnum):
    COLLABORATOR = "collaborator"
    FOLLOWER = "follower"


ROLE_ACTIONS: Final[Mapping[Role, frozenset[Action]]] = {
    Role.ADMIN: frozenset(Action),
    Role.MANAGER: frozenset(Action),
    Role.REP: frozenset(
        {
            Action.READ,
            Action.CREATE,
            Action.UPDATE,
            Action.DELETE,
            Action.RESTORE,
            Action.CHANGE_OWNER,  # of records they own only: no member role grants it
            Action.MANAGE_MEMBERS,
        }
    ),
    Role.VIEWER: frozenset({Action.READ}),
}

MEMBER_ACTIONS: Final[Mapping[MemberRole, frozenset[Action]]] = {
    MemberRole.COLLABORATOR: frozenset({Action.READ, Action.UPDATE}),
    MemberRole.FOLLOWER: frozenset({Action.READ}),
}


@dataclass(frozen=True, slots=True)
class AccessList:
    """What decides access to one record: its org, owner, team and members."""

    org_id: str
    owner_id: str | None
    team_id: str | None
    members: Mapping[str, MemberRole] = field(default_factory=dict)


def can(principal: Principal, action: Action, access: AccessList) -> bool:
    """The one access decision of the system."""
    if access.org_id != principal.org_id:
        return False
    if action not in ROLE_ACTIONS[principal.role]:
        return False
    if principal.role is Role.ADMIN:
        return True
    if access.owner_id == principal.sub and principal.role is not Role.VIEWER:
        return True
    member_role = access.members.get(principal.sub)
    if member_role is not None and action in MEMBER_ACTIONS[member_role]:
        return True
    in_team = access.team_id is not None and access.team_id in principal.team_ids
    if principal.role is Role.MANAGER:
        return in_team
    if principal.role is Role.VIEWER:
        return in_team or access.owner_id == principal.sub
    return False


@dataclass(frozen=True, slots=True)
class ReadScope:
    """``can(principal, READ, …)`` as data, for repositories that filter lists in SQL.

    A record is readable when it is in ``org_id`` and: ``whole_org``, or its team is in
    ``team_ids``, or it is owned by ``user_id``, or ``user_id`` is one of its members.
    """

    org_id: str
    user_id: str
    whole_org: bool
    team_ids: frozenset[str]

    def admits(self, access: AccessList) -> bool:
        if access.org_id != self.org_id:
            return False
        return (
            self.whole_org
            or (access.team_id is not None and access.team_id in self.team_ids)
            or access.owner_id == self.user_id
            or self.user_id in access.members
        )


def read_scope(principal: Principal) -> ReadScope:
    team_scoped = principal.role in {Role.MANAGER, Role.VIEWER}
    return ReadScope(
        org_id=principal.org_id,
        user_id=principal.sub,
        whole_org=principal.role is Role.ADMIN,
        team_ids=principal.team_ids if team_scoped else frozenset(),
    )
