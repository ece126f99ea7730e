"""The drive service under test, with helpers to set the org's root and see what Google holds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from drive_service.app import build_app
from drive_service.models import TABLES
from drive_service.settings import WEBHOOK_PATH, DriveSettings
from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.service import RunningService, ServiceUnderTest, World

FOLDER = "application/vnd.google-apps.folder"


class DriveStack(ServiceUnderTest):
    async def admin_with_root(self, service: RunningService, users: Users) -> ActingUser:
        """An admin of ``users``' org whose Google account holds the org's folders."""
        admin = users.make(Role.ADMIN)
        await self.connect(admin)
        answer = await service.client.put("/api/drive/root", json={}, headers=admin.headers)
        assert answer.status_code == 200, answer.text
        return admin

    async def google_files(self) -> list[dict[str, Any]]:
        """Every file Google holds (whoever owns it)."""
        found: list[dict[str, Any]] = (await self.google.admin("GET", "/drive/files")).json()
        return found

    async def record_folders(self, record_id: str) -> list[dict[str, Any]]:
        """The folders in Google naming this record in their ``appProperties``."""
        return [
            f
            for f in await self.google_files()
            if f["mimeType"] == FOLDER
            and record_id in f["appProperties"].values()
            and "pipedesk_subfolder" not in f["appProperties"]
        ]

    async def folder(
        self, service: RunningService, user: ActingUser, record_type: str, record_id: str
    ) -> httpx.Response:
        return await service.client.get(
            f"/api/drive/records/{record_type}/{record_id}/folder", headers=user.headers
        )

    async def upload(
        self,
        client: httpx.AsyncClient,
        user: ActingUser,
        record_type: str,
        record_id: str,
        name: str,
        content: Any,
        media_type: str = "text/plain",
        **params: str,
    ) -> httpx.Response:
        return await client.post(
            f"/api/drive/records/{record_type}/{record_id}/files",
            params={"name": name, **params},
            content=content,
            headers={**user.headers, "Content-Type": media_type},
        )

    async def fidelity_violations(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await self.google.admin("GET", "/fidelity")).json()
        return found


@pytest.fixture
def stack(world: World) -> DriveStack:
    return DriveStack(
        world,
        build_app=build_app,
        settings_class=DriveSettings,
        product="drive",
        outbox=TABLES.outbox,
        at_url=lambda url: {"webhook_url": url + WEBHOOK_PATH},
    )
