"""Who a record's folder is shared with in Google, kept in step with CRM access.

Derived shares: a lead's or deal's owner and collaborators write, its followers read; a contact's
or company's folder is readable by the whole org (its Workspace domain, the Drive account's).
They go to the Google account each user connected (the accounts service's
``accounts.google.connected``), else to their e-mail in the org directory, without a
notification e-mail. Explicit
shares (a client) are made by the record's writers and admins, to an address of the org's
allow-listed domains, as reader, commenter or writer, the notification e-mail their choice.

``sync_sharing`` compares what Google holds with what should be and changes only the
difference, so running it again (a redelivered event, the periodic sync, a repair) does nothing
more. Other managers, admins and viewers reach files through ``/api/drive``, not Google.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from drive_service.audit import record_action
from drive_service.google import DrivePermission
from drive_service.models import DriveRoot, RecordFolder
from drive_service.repository import DriveRepository
from drive_service.runtime import OWNED, DriveRuntime, drive_user
from pipedesk_common.auth import Principal, Role
from pipedesk_common.errors import Forbidden, InvalidInput, NotFound
from pipedesk_common.ids import new_id
from pipedesk_common.rbac import Action, MemberRole

if TYPE_CHECKING:
    from drive_service.service import DriveService

EXPLICIT_ROLES: Final = ("reader", "commenter", "writer")
RANK: Final = {"reader": 1, "commenter": 2, "writer": 3}
# Grants sync never takes away: the holder's own, and a shared drive's members'.
KEPT_ROLES: Final = frozenset({"owner", "organizer", "fileOrganizer"})

Grantee = tuple[str, str]  # ("user", email) or ("domain", name)


@dataclass
class WantedShare:
    grantee: Grantee
    role: str
    derived: bool = False
    explicit: bool = False
    notify: bool = False


@dataclass(frozen=True)
class ShareAction:
    """One difference between Google and what should be: ``before`` → ``after`` (a role, or
    None for no grant)."""

    grantee: Grantee
    before: str | None
    after: str | None
    permission_id: str | None = None
    notify: bool = False

    @property
    def kind(self) -> str:
        if self.before is None:
            return "share_added"
        return "share_removed" if self.after is None else "share_changed"

    def describe(self) -> str:
        who = self.grantee[1]
        if self.before is None:
            return f"share {who} as {self.after}"
        if self.after is None:
            return f"unshare {who} ({self.before})"
        return f"change {who} from {self.before} to {self.after}"


def org_domain(root: DriveRoot) -> str:
    """The org's Workspace domain: the Drive account's."""
    return root.user_email.rpartition("@")[2].lower()


async def wanted_shares(
    runtime: DriveRuntime, root: DriveRoot, folder: RecordFolder
) -> dict[Grantee, WantedShare]:
    """What the folder should be shared with, from CRM access and the explicit shares."""
    async with runtime.uow.write() as session:  # the replica may learn the record now
        access = (
            await runtime.replica.access_list(session, folder.record_type, folder.record_id)
            if folder.record_type in OWNED
            else None
        )
        repository = DriveRepository(session)
        explicit = await repository.shares(folder.id)
        google_emails = (
            await repository.google_emails(
                root.org_id, [*([access.owner_id] if access.owner_id else []), *access.members]
            )
            if access is not None
            else {}
        )
    wanted: dict[Grantee, WantedShare] = {}

    def want(grantee: Grantee, role: str, *, derived: bool, notify: bool = False) -> None:
        found = wanted.get(grantee)
        if found is None:
            found = wanted[grantee] = WantedShare(grantee, role)
        elif RANK[role] > RANK[found.role]:
            found.role = role
        found.derived |= derived
        found.explicit |= not derived
        found.notify |= notify and not derived

    holder = root.user_email.lower()
    if folder.record_type not in OWNED:
        want(("domain", org_domain(root)), "reader", derived=True)
    elif access is not None:
        roles: dict[str, str] = {}
        if access.owner_id:
            roles[access.owner_id] = "writer"
        for user_id, member_role in access.members.items():
            role = "writer" if member_role is MemberRole.COLLABORATOR else "reader"
            if RANK[role] > RANK.get(roles.get(user_id, ""), 0):
                roles[user_id] = role
        for user_id, role in sorted(roles.items()):
            email = await _share_email(runtime, root.org_id, user_id, google_emails)
            if email is not None and email != holder:
                want(("user", email), role, derived=True)
    for share in explicit:
        want(("user", share.email), share.role, derived=False, notify=share.notify)
    return wanted


async def _share_email(
    runtime: DriveRuntime, org_id: str, user_id: str, google_emails: dict[str, str]
) -> str | None:
    """Where a user's derived share goes: the Google account they connected, else their
    directory e-mail (None for a user no longer active in the org)."""
    user = await runtime.directory.user(org_id, user_id)
    if user is None:
        return None
    email = google_emails.get(user_id) or user.email
    return email.lower() if email else None


def sharing_actions(
    current: list[DrivePermission], wanted: dict[Grantee, WantedShare], holder: str
) -> list[ShareAction]:
    """What to change in Google so that ``current`` becomes ``wanted``."""
    actions: list[ShareAction] = []
    held: dict[Grantee, DrivePermission] = {}
    for permission in current:
        if permission.role in KEPT_ROLES or permission.grantee == ("user", holder):
            continue
        if permission.grantee in held:  # the same grantee twice (a group and a user…)
            actions.append(ShareAction(permission.grantee, permission.role, None, permission.id))
            continue
        held[permission.grantee] = permission
    for grantee, share in sorted(wanted.items()):
        found = held.pop(grantee, None)
        if found is None:
            actions.append(ShareAction(grantee, None, share.role, notify=share.notify))
        elif found.role != share.role:
            actions.append(ShareAction(grantee, found.role, share.role, found.id))
    for grantee, permission in sorted(held.items()):
        actions.append(ShareAction(grantee, permission.role, None, permission.id))
    return actions


async def sync_sharing(
    runtime: DriveRuntime,
    root: DriveRoot,
    folder: RecordFolder,
    *,
    apply: bool = True,
    audit: bool = False,
) -> list[ShareAction]:
    """Bring the folder's Google permissions in line with ``wanted_shares``; the differences
    found (and, with ``apply``, changed). With ``audit`` (the folder's sync, which follows CRM
    access), each change is audited under the CRM change that caused it."""
    if folder.google_id is None:
        return []
    user = drive_user(root)
    cause = await _pending_cause(runtime, folder) if audit and apply else None
    wanted = await wanted_shares(runtime, root, folder)
    current = await runtime.google.permissions(user, folder.google_id)
    actions = sharing_actions(current, wanted, root.user_email.lower())
    if not apply:
        return actions
    google = runtime.google
    for action in actions:
        if action.before is None:
            assert action.after is not None
            await google.share(
                user, folder.google_id, action.grantee, action.after, notify=action.notify
            )
        elif action.after is None:
            assert action.permission_id is not None
            await google.unshare(user, folder.google_id, action.permission_id)
        else:
            assert action.permission_id is not None
            await google.change_role(user, folder.google_id, action.permission_id, action.after)
    if audit:
        await _audit_derived(runtime, folder, actions, cause)
    return actions


async def _pending_cause(runtime: DriveRuntime, folder: RecordFolder) -> dict[str, Any] | None:
    """The CRM change the folder's access list last came with, read before the list is."""
    async with runtime.uow.read() as session:
        row = await DriveRepository(session).folder(folder.id)
        return row.sharing_cause if row is not None else None


async def _audit_derived(
    runtime: DriveRuntime,
    folder: RecordFolder,
    actions: list[ShareAction],
    cause: dict[str, Any] | None,
) -> None:
    """Audit what a sync changed under the CRM change the folder's access came with (then
    taken, unless a newer one came meanwhile: its own sync audits it), or as the drive
    service's own when nothing in CRM asked for it (drift)."""
    async with runtime.uow.write() as session:
        row = await DriveRepository(session).folder(folder.id, lock=True)
        if cause is not None and row is not None and row.sharing_cause == cause:
            row.sharing_cause = None
        cause = cause or {}
        for action in actions:
            await record_action(
                session,
                runtime.clock,
                org_id=folder.org_id,
                record=(folder.record_type, folder.record_id),
                actor_id=cause.get("actor_id") or "svc:drive",
                action=action.kind,
                file_id=folder.google_id,
                file_name=folder.name,
                changes={f"share:{action.grantee[1]}": (action.before, action.after)},
                audit_id=cause.get("audit_id"),
            )


# --- explicit shares through the API -----------------------------------------------------------


class OutsideAllowList(InvalidInput):
    slug, title = "share-domain-not-allowed", "Shares go only to the org's allowed domains"


async def list_shares(
    service: DriveService, principal: Principal, record_type: str, record_id: str
) -> tuple[RecordFolder, list[WantedShare]]:
    """The folder's shares as PipeDesk keeps them: derived, explicit, or both."""
    record = await service.authorize(principal, record_type, record_id, Action.READ)
    folder, root = await service.folder(record)
    wanted = await wanted_shares(service.runtime, root, folder)
    return folder, [wanted[grantee] for grantee in sorted(wanted)]


async def add_share(
    service: DriveService,
    principal: Principal,
    record_type: str,
    record_id: str,
    *,
    email: str,
    role: str,
    notify: bool,
) -> WantedShare:
    """Share the record's folder with ``email`` (its writers and admins); the allow-list first,
    then our row, then Google, then the audit."""
    record = await service.authorize(principal, record_type, record_id, Action.UPDATE)
    email = email.strip().lower()
    root = await service.root(principal.org_id)
    domain = email.rpartition("@")[2]
    if domain not in root.share_domains:
        allowed = ", ".join(root.share_domains) or "none yet"
        raise OutsideAllowList(f"email: {domain} is not an allowed domain ({allowed})")
    folder, root = await service.folder(record)
    async with service.uow.read() as session:
        before = await DriveRepository(session).share(folder.id, email)
    async with service.uow.write() as session:
        await DriveRepository(session).save_share(
            {
                "id": new_id(),
                "org_id": principal.org_id,
                "folder_id": folder.id,
                "email": email,
                "role": role,
                "notify": notify,
                "created_by": principal.sub,
                "created_at": service.clock.now(),
            }
        )
    await sync_sharing(service.runtime, root, folder)
    async with service.uow.write() as session:
        await record_action(
            session,
            service.clock,
            org_id=principal.org_id,
            record=(record_type, record_id),
            actor_id=principal.sub,
            action="share_added" if before is None else "share_changed",
            file_id=folder.google_id,
            file_name=folder.name,
            changes={
                f"share:{email}": (before.role if before else None, role),
                "notify": (before.notify if before else None, notify),
            },
        )
    wanted = await wanted_shares(service.runtime, root, folder)
    return wanted[("user", email)]


async def remove_share(
    service: DriveService, principal: Principal, record_type: str, record_id: str, email: str
) -> None:
    """Take an explicit share back (a derived one stays as CRM access says)."""
    record = await service.authorize(principal, record_type, record_id, Action.UPDATE)
    folder, root = await service.folder(record)
    email = email.strip().lower()
    async with service.uow.write() as session:
        repository = DriveRepository(session)
        found = await repository.share(folder.id, email)
        if found is None:
            raise NotFound("no such explicit share")
        await repository.remove_share(found.id)
        role = found.role
    await sync_sharing(service.runtime, root, folder)
    async with service.uow.write() as session:
        await record_action(
            session,
            service.clock,
            org_id=principal.org_id,
            record=(record_type, record_id),
            actor_id=principal.sub,
            action="share_removed",
            file_id=folder.google_id,
            file_name=folder.name,
            changes={f"share:{email}": (role, None)},
        )


async def set_share_domains(
    service: DriveService, principal: Principal, domains: list[str]
) -> DriveRoot:
    if principal.role is not Role.ADMIN:
        raise Forbidden("only an admin sets the domains shares may go to")
    root = await service.root(principal.org_id)
    async with service.uow.write() as session:
        row = await DriveRepository(session).root(root.org_id)
        assert row is not None
        row.share_domains = sorted({domain.strip().lower() for domain in domains})
        row.updated_at = service.clock.now()
    return await service.root(principal.org_id)
