from typing import ClassVar, Final

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from pipedesk_common.google.media import CHUNK_UNIT
from pipedesk_common.mirror.settings import PushServiceSettings
from pipedesk_common.uploads import DEFAULT_DRIVE_MAX_UPLOAD_BYTES

# The development value, refused in production.
DEV_CHANNEL_SECRET: Final = "dev-only-drive-channel-secret-0123456789abcdef0123"  # noqa: S105
WEBHOOK_PATH: Final = "/webhooks/google/drive"


class DriveSettings(PushServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DRIVE_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "drive"
    webhook_path: ClassVar[str] = WEBHOOK_PATH
    dev_channel_secret: ClassVar[str] = DEV_CHANNEL_SECRET

    max_upload_bytes: int = Field(
        DEFAULT_DRIVE_MAX_UPLOAD_BYTES,
        ge=1024,
        description="The largest file an upload accepts (413 above it, before Google is asked)",
    )
    resumable_threshold_bytes: int = Field(
        5 * 1024 * 1024,
        ge=0,
        le=5 * 1024 * 1024,
        description="Files up to this size go in one multipart request; larger ones resumable",
    )
    upload_chunk_bytes: int = Field(
        2 * 1024 * 1024,
        ge=CHUNK_UNIT,
        description="A resumable upload's chunk (a multiple of 256 KiB): the most held at once",
    )
    download_chunk_bytes: int = Field(
        1024 * 1024, ge=64 * 1024, description="A download is read from Google in such pieces"
    )
    subfolders: list[str] = Field(
        default_factory=lambda: ["Documents", "Email attachments"],
        min_length=1,
        description="The subfolders of every record's folder (a JSON list of names)",
    )
    folder_wait_seconds: float = Field(
        10.0, gt=0, le=60, description="How long a request waits for another creating a folder"
    )
    create_lease_seconds: int = Field(
        120, ge=10, description="How long a folder's creation holds it before another may retry"
    )
    resync_interval_seconds: int = Field(
        900, ge=60, description="How often folders whose Google state may lag are synced again"
    )
    # Drive keeps a changes channel at most a week (a file's, a day): a week is asked for, and
    # each channel is renewed before the expiration Google answered.
    channel_ttl_seconds: int = Field(7 * 24 * 3600, ge=300, le=7 * 24 * 3600)
    changes_interval_seconds: int = Field(
        300, ge=10, description="How often Drive's change log is read without a notification"
    )

    @field_validator("upload_chunk_bytes")
    @classmethod
    def _whole_units(cls, value: int) -> int:
        if value % CHUNK_UNIT:
            raise ValueError(f"must be a multiple of {CHUNK_UNIT} bytes")
        return value

    @field_validator("subfolders")
    @classmethod
    def _distinct_names(cls, names: list[str]) -> list[str]:
        cleaned = [name.strip() for name in names]
        if any(not name or "/" in name for name in cleaned) or len(set(cleaned)) != len(cleaned):
            raise ValueError("subfolder names must be distinct, non-empty and without '/'")
        return cleaned
