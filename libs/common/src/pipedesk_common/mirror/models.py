"""Columns every Google service's tables share."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from pipedesk_common.google.credentials import GoogleUser


class UserCollection(SQLModel):
    """A Google collection one user holds (a calendar, a task list): whose it is. Its calls act
    for ``owner``."""

    id: UUID = Field(primary_key=True)
    org_id: str = Field(sa_type=String(255))
    user_id: str = Field(sa_type=String(255))
    user_email: str | None = Field(
        default=None, sa_type=String(320), description="For domain-wide delegation"
    )

    @property
    def owner(self) -> GoogleUser:
        return GoogleUser(org_id=self.org_id, user_id=self.user_id, email=self.user_email)
