"""The drive service: a Google Drive folder per CRM record and its files, on the Google service
kit."""

import re
from datetime import timedelta
from typing import Any, Unpack

from fastapi import FastAPI

from drive_service import api, changes, consumers, disconnect, lifecycle, models, repair, sync
from drive_service.google import DriveGoogle
from drive_service.runtime import DriveRuntime
from drive_service.settings import DriveSettings
from pipedesk_common.clock import Clock
from pipedesk_common.mirror.assembly import AppOptions, GoogleProduct, ProductLifecycle
from pipedesk_common.observability import BodyLimit
from pipedesk_common.periodic import PeriodicJob
from pipedesk_common.uploads import drive_upload_limits


def drive_jobs(runtime: DriveRuntime) -> list[PeriodicJob]:
    """The syncs' jobs, and the periodic dry run of the repair (drift counts as metrics)."""
    interval = timedelta(seconds=runtime.settings.resync_interval_seconds)
    drift = PeriodicJob("drive.detect-drift", interval, lambda: repair.measure_drift(runtime))
    return [*sync.drive_jobs(runtime), drift]


def upload_limits(settings: DriveSettings) -> list[BodyLimit]:
    """Uploads (the public route and the automation service's) take up to
    ``DRIVE_MAX_UPLOAD_BYTES``; every other route keeps the 1 MiB default."""
    internal = BodyLimit("POST", re.compile(api.INTERNAL_UPLOAD.pattern), settings.max_upload_bytes)
    return [*drive_upload_limits(settings.max_upload_bytes), internal]


DRIVE = GoogleProduct(
    name="drive",
    api_version="v3",
    title="PipeDesk drive",
    description="A Google Drive folder per CRM record under the org's root, its files "
    "uploaded, listed, downloaded, exported, trashed and restored, following the record.",
    tables=models.TABLES,
    routers=[api.router, api.internal],
    google=DriveGoogle,
    sync=sync.folder_sync,
    resync=sync.resync_user,
    jobs=drive_jobs,
    example_job="drive.sync-folders",
    subscribe=consumers.follow_records,
    access_stored=consumers.follow_access,
    google_account=consumers.follow_google_account,
    access_ended=disconnect.access_ended,
    push=changes.key_of_channel,
    body_limits=upload_limits,
    lifecycle=ProductLifecycle(
        user_deactivated=lifecycle.user_deactivated,
        user_google_data_deleted=lifecycle.user_google_data_deleted,
        keep_tables=lifecycle.KEEP_TABLES,
    ),
)


def build_app(
    settings: DriveSettings, clock: Clock | None = None, **options: Unpack[AppOptions]
) -> FastAPI:
    """The drive app; its document names the configured subfolders (``DRIVE_SUBFOLDERS``)."""
    app = DRIVE.app(settings, clock, **options)
    documented = app.openapi

    def openapi() -> dict[str, Any]:
        return api.document_subfolders(documented(), settings.subfolders)

    app.openapi = openapi  # type: ignore[method-assign]
    return app
