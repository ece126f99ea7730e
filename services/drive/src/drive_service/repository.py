"""Every query of the drive service, on one session (the caller's unit of work)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from drive_service.models import (
    ChangeCursor,
    DriveFile,
    DriveRoot,
    ExplicitShare,
    GoogleAccount,
    RecordFolder,
    RecordName,
)


class DriveRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- the org's root and the records' names ----------------------------------------------

    async def root(self, org_id: str) -> DriveRoot | None:
        return await self.session.get(DriveRoot, org_id)

    async def roots(self) -> list[DriveRoot]:
        return list((await self.session.scalars(select(DriveRoot))).all())

    async def save_root(self, values: dict[str, Any]) -> None:
        statement = insert(DriveRoot).values(**values)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["org_id"],
                set_={k: statement.excluded[k] for k in values if k != "created_at"},
            )
        )

    async def record(self, record_type: str, record_id: str) -> RecordName | None:
        return await self.session.get(RecordName, (record_type, record_id))

    async def store_record(
        self,
        record_type: str,
        record_id: str,
        *,
        org_id: str,
        name: str,
        deleted: bool,
        version: int,
        lead_id: str | None = None,
    ) -> bool:
        """Keep a record's name and state if newer than what is held; whether it was."""
        statement = insert(RecordName).values(
            record_type=record_type,
            record_id=record_id,
            org_id=org_id,
            name=name,
            deleted=deleted,
            version=version,
            lead_id=lead_id,
        )
        stored = await self.session.scalar(
            statement.on_conflict_do_update(
                index_elements=["record_type", "record_id"],
                set_={
                    "name": statement.excluded.name,
                    "deleted": statement.excluded.deleted,
                    "version": statement.excluded.version,
                    "lead_id": statement.excluded.lead_id,
                },
                where=col(RecordName.version) < statement.excluded.version,
            ).returning(col(RecordName.version))
        )
        return stored is not None

    # --- record folders ----------------------------------------------------------------------

    async def folder(self, folder_id: UUID, *, lock: bool = False) -> RecordFolder | None:
        return await self.session.get(RecordFolder, folder_id, with_for_update=lock)

    async def folder_of(self, org_id: str, record_type: str, record_id: str) -> RecordFolder | None:
        """A record's folder row; a lead converted to a deal finds the deal's folder."""
        query = select(RecordFolder).where(col(RecordFolder.org_id) == org_id)
        if record_type == "lead":
            query = query.where(
                or_(
                    (col(RecordFolder.record_type) == "lead")
                    & (col(RecordFolder.record_id) == record_id),
                    col(RecordFolder.lead_id) == record_id,
                )
            )
        else:
            query = query.where(
                col(RecordFolder.record_type) == record_type,
                col(RecordFolder.record_id) == record_id,
            )
        found: RecordFolder | None = await self.session.scalar(query)
        return found

    async def made_folder_of(
        self, org_id: str, record_type: str, record_id: str
    ) -> RecordFolder | None:
        """The record's own folder (not an alias), once it exists in Google."""
        found: RecordFolder | None = await self.session.scalar(
            select(RecordFolder).where(
                col(RecordFolder.org_id) == org_id,
                col(RecordFolder.record_type) == record_type,
                col(RecordFolder.record_id) == record_id,
                col(RecordFolder.google_id).is_not(None),
            )
        )
        return found

    async def claim_new_folder(self, values: dict[str, Any]) -> bool:
        """Insert a folder row being created; False when another request inserted it first."""
        inserted = await self.session.scalar(
            insert(RecordFolder)
            .values(**values)
            .on_conflict_do_nothing()
            .returning(col(RecordFolder.id))
        )
        return inserted is not None

    async def take_over_folder(self, folder_id: UUID, now: datetime, lease: datetime) -> bool:
        """Hold a folder's creation when nobody does (or their lease ran out)."""
        taken = await self.session.scalar(
            update(RecordFolder)
            .where(
                col(RecordFolder.id) == folder_id,
                or_(
                    col(RecordFolder.creating_until).is_(None),
                    col(RecordFolder.creating_until) < now,
                ),
            )
            .values(creating_until=lease)
            .returning(col(RecordFolder.id))
        )
        return taken is not None

    async def release_folder(self, folder_id: UUID) -> None:
        await self.session.execute(
            update(RecordFolder)
            .where(col(RecordFolder.id) == folder_id)
            .values(creating_until=None)
        )

    async def adopt_lead_folder(self, org_id: str, deal_id: str, lead_id: str) -> None:
        """A converted lead's folder becomes its deal's (unless the deal has one already)."""
        if await self.folder_of(org_id, "deal", deal_id) is not None:
            return
        await self.session.execute(
            update(RecordFolder)
            .where(
                col(RecordFolder.org_id) == org_id,
                col(RecordFolder.record_type) == "lead",
                col(RecordFolder.record_id) == lead_id,
            )
            .values(record_type="deal", record_id=deal_id, lead_id=lead_id)
        )

    async def made_folders(self, org_id: str | None = None) -> list[tuple[RecordFolder, DriveRoot]]:
        """Every folder that exists in Google (of one org), with its org's root."""
        query = select(RecordFolder, DriveRoot).join(
            DriveRoot, col(DriveRoot.org_id) == col(RecordFolder.org_id)
        )
        query = query.where(col(RecordFolder.google_id).is_not(None))
        if org_id is not None:
            query = query.where(col(RecordFolder.org_id) == org_id)
        return [(folder, root) for folder, root in (await self.session.execute(query)).all()]

    # --- files -------------------------------------------------------------------------------

    async def file(self, file_id: UUID, *, lock: bool = False) -> DriveFile | None:
        return await self.session.get(DriveFile, file_id, with_for_update=lock)

    async def files(
        self, folder_id: UUID, *, trashed: bool, after: tuple[Any, UUID] | None, limit: int
    ) -> list[DriveFile]:
        """A folder's stored files (not uploads under way), oldest first, keyset paged."""
        query = select(DriveFile).where(
            col(DriveFile.folder_id) == folder_id,
            col(DriveFile.trashed).is_(trashed),
            col(DriveFile.size).is_not(None),
        )
        if after is not None:
            query = query.where(
                tuple_(col(DriveFile.created_at), col(DriveFile.id)) > tuple_(*after)
            )
        query = query.order_by(col(DriveFile.created_at), col(DriveFile.id)).limit(limit)
        return list((await self.session.scalars(query)).all())

    async def files_in(self, folder_id: UUID) -> list[DriveFile]:
        """Every row of a folder, locked (for the folder sync)."""
        query = select(DriveFile).where(col(DriveFile.folder_id) == folder_id).with_for_update()
        return list((await self.session.scalars(query)).all())

    async def files_with_md5(self, folder_id: UUID, subfolder: str, md5: str) -> list[DriveFile]:
        query = (
            select(DriveFile)
            .where(
                col(DriveFile.folder_id) == folder_id,
                col(DriveFile.subfolder) == subfolder,
                col(DriveFile.md5) == md5,
                col(DriveFile.trashed).is_(False),
                col(DriveFile.size).is_not(None),
            )
            .order_by(col(DriveFile.created_at), col(DriveFile.id))
        )
        return list((await self.session.scalars(query)).all())

    async def keyed_file(self, org_id: str, caller_key: str) -> DriveFile | None:
        found: DriveFile | None = await self.session.scalar(
            select(DriveFile).where(
                col(DriveFile.org_id) == org_id, col(DriveFile.caller_key) == caller_key
            )
        )
        return found

    async def add_pending_file(self, values: dict[str, Any]) -> bool:
        """An upload's row before Google is asked; False when its caller key is taken."""
        inserted = await self.session.scalar(
            insert(DriveFile).values(**values).on_conflict_do_nothing().returning(col(DriveFile.id))
        )
        return inserted is not None

    async def delete_file(self, file_id: UUID) -> None:
        await self.session.execute(delete(DriveFile).where(col(DriveFile.id) == file_id))

    async def file_by_google_id(self, google_id: str) -> DriveFile | None:
        found: DriveFile | None = await self.session.scalar(
            select(DriveFile).where(col(DriveFile.google_id) == google_id)
        )
        return found

    async def folder_by_google_id(self, org_id: str, google_id: str) -> RecordFolder | None:
        found: RecordFolder | None = await self.session.scalar(
            select(RecordFolder).where(
                col(RecordFolder.org_id) == org_id, col(RecordFolder.google_id) == google_id
            )
        )
        return found

    # --- explicit shares ---------------------------------------------------------------------

    async def shares(self, folder_id: UUID) -> list[ExplicitShare]:
        found = await self.session.scalars(
            select(ExplicitShare)
            .where(col(ExplicitShare.folder_id) == folder_id)
            .order_by(col(ExplicitShare.email))
        )
        return list(found.all())

    async def share(self, folder_id: UUID, email: str) -> ExplicitShare | None:
        found: ExplicitShare | None = await self.session.scalar(
            select(ExplicitShare).where(
                col(ExplicitShare.folder_id) == folder_id, col(ExplicitShare.email) == email
            )
        )
        return found

    async def save_share(self, values: dict[str, Any]) -> None:
        """Add the share, or change the role and notification choice of the one there."""
        statement = insert(ExplicitShare).values(**values)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["folder_id", "email"],
                set_={"role": statement.excluded.role, "notify": statement.excluded.notify},
            )
        )

    async def remove_share(self, share_id: UUID) -> None:
        await self.session.execute(delete(ExplicitShare).where(col(ExplicitShare.id) == share_id))

    # --- Drive's change log ------------------------------------------------------------------

    async def change_cursor(self, org_id: str, *, lock: bool = False) -> ChangeCursor | None:
        return await self.session.get(ChangeCursor, org_id, with_for_update=lock)

    async def save_change_cursor(self, org_id: str, page_token: str, now: datetime) -> None:
        statement = insert(ChangeCursor).values(
            org_id=org_id, page_token=page_token, updated_at=now
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["org_id"],
                set_={"page_token": page_token, "updated_at": now},
            )
        )

    async def found_file(self, values: dict[str, Any]) -> DriveFile:
        """The mirror's row of a file found in Google, inserted unless another sync (or an
        upload) holds one for it already; locked."""
        await self.session.execute(
            insert(DriveFile).values(**values).on_conflict_do_nothing(index_elements=["google_id"])
        )
        found: DriveFile | None = await self.session.scalar(
            select(DriveFile)
            .where(col(DriveFile.google_id) == values["google_id"])
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert found is not None
        return found

    # --- users' Google accounts --------------------------------------------------------------

    async def google_emails(self, org_id: str, user_ids: list[str]) -> dict[str, str]:
        """The connected Google e-mail of each of ``user_ids`` that has one."""
        rows = await self.session.execute(
            select(col(GoogleAccount.user_id), col(GoogleAccount.email)).where(
                col(GoogleAccount.org_id) == org_id, col(GoogleAccount.user_id).in_(user_ids)
            )
        )
        return {str(user_id): str(email) for user_id, email in rows.all()}

    async def save_google_email(
        self, org_id: str, user_id: str, email: str | None, now: datetime
    ) -> bool:
        """Keep (or, with None, forget) the user's Google e-mail; whether it changed."""
        found = await self.session.get(GoogleAccount, (org_id, user_id), with_for_update=True)
        if email is None:
            if found is None:
                return False
            await self.session.delete(found)
            return True
        if found is not None:
            if found.email == email:
                return False
            found.email, found.updated_at = email, now
            return True
        await self.session.execute(
            insert(GoogleAccount)
            .values(org_id=org_id, user_id=user_id, email=email, updated_at=now)
            .on_conflict_do_update(
                index_elements=["org_id", "user_id"], set_={"email": email, "updated_at": now}
            )
        )
        return True

    async def folders_naming(self, replica: Any, org_id: str, user_id: str) -> list[RecordFolder]:
        """The org's made folders of the leads and deals whose access list (``replica``: its
        table) names the user as owner or member."""
        named = select(replica.c.record_type, replica.c.record_id).where(
            replica.c.org_id == org_id,
            or_(replica.c.owner_id == user_id, replica.c.members.has_key(user_id)),
        )
        found = await self.session.scalars(
            select(RecordFolder).where(
                col(RecordFolder.org_id) == org_id,
                col(RecordFolder.google_id).is_not(None),
                tuple_(col(RecordFolder.record_type), col(RecordFolder.record_id)).in_(named),
            )
        )
        return list(found.all())
