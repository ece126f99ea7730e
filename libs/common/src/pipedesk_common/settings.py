"""Settings every service shares: the Wiring of the design, auth, database, broker.

Shared names (``DATABASE_URL``, ``AUTH_JWKS_URL``, ``CRM_URL``, ``PORT_BASE``…) are read without a
prefix; a service's own settings carry its prefix (``CRM_PORT``), and ``<PREFIX>DATABASE_URL``,
``<PREFIX>AMQP_URL`` and ``<PREFIX>REDIS_URL`` override the shared value for that service alone.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy import make_url

DEFAULT_PORT_BASE: Final = 8000

# Offsets from PORT_BASE, so a second stack (tests, bench) shifts every port together.
PORT_OFFSETS: Final[dict[str, int]] = {
    "gateway": 0,
    "crm": 101,
    "timeline": 102,
    "accounts": 103,
    "calendar": 104,
    "tasks": 105,
    "drive": 106,
    "gmail": 107,
    "automation": 108,
    "google_emulator": 90,
    "identity": 91,
}

DEFAULT_DATABASE_URL: Final = "postgresql+asyncpg://postgres@127.0.0.1:5432/pipedesk"
DEFAULT_AMQP_URL: Final = "amqp://guest:guest@127.0.0.1:5672/"
# Where the tests and the preflight look for Redis; a service uses Redis only when REDIS_URL is set.
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
# The development value, refused in production.
DEV_CURSOR_SECRET: Final = "dev-only-cursor-secret-0123456789abcdef0123456789abcdef"  # noqa: S105
DEV_KEY_DIR: Final = ".dev/keys"
JWKS_PATH: Final = "/.well-known/jwks.json"
SERVICE_JWKS_PATH: Final = "/.well-known/service-jwks.json"

_OVERRIDABLE_PER_SERVICE: Final = ("DATABASE_URL", "AMQP_URL", "REDIS_URL")


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


def database_name(database_url: str) -> str:
    return make_url(database_url).database or ""


def derived_broker_prefix(database_url: str) -> str:
    """The broker namespace of a stack whose ``BROKER_PREFIX`` is unset: none for the default
    database (``pipedesk``), else the database's name and a dot, so a second stack with a
    database of its own never shares queues with the first."""
    name = database_name(database_url)
    if name in ("", database_name(DEFAULT_DATABASE_URL)):
        return ""
    return re.sub(r"[^a-z0-9_.-]", "-", name.lower()) + "."


def port_for(process: str, port_base: int = DEFAULT_PORT_BASE) -> int:
    """The Wiring port of a process, shifted by ``PORT_BASE``."""
    return port_base + PORT_OFFSETS[process]


class _PerServiceOverrides(PydanticBaseSettingsSource):
    """``<PREFIX>DATABASE_URL`` beats ``DATABASE_URL`` for the service with that prefix."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        prefix = self.config.get("env_prefix", "")
        found: dict[str, Any] = {}
        for shared_name in _OVERRIDABLE_PER_SERVICE:
            value = os.environ.get(f"{prefix}{shared_name}")
            if prefix and value:
                found[shared_name] = value
        return found


class BaseServiceSettings(BaseSettings):
    """Base class of every service's settings; subclasses set ``service_name`` and a prefix."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: ClassVar[str]

    environment: Environment = Field(
        Environment.DEVELOPMENT, validation_alias=AliasChoices("ENVIRONMENT", "environment")
    )
    port_base: int = Field(
        DEFAULT_PORT_BASE,
        ge=1024,
        le=64000,
        validation_alias=AliasChoices("PORT_BASE", "port_base"),
    )
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535)

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
    )
    # The service's database budget, shared by its WORKERS processes (see process_pool_size).
    database_pool_size: int = Field(5, ge=1, le=50)
    database_max_overflow: int = Field(5, ge=0, le=50)
    workers: int = Field(
        1,
        ge=1,
        le=32,
        validation_alias=AliasChoices("WORKERS", "workers"),
        description="Processes serving the service (python -m <service>)",
    )
    amqp_url: str = Field(
        DEFAULT_AMQP_URL,
        validation_alias=AliasChoices("AMQP_URL", "amqp_url"),
    )
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL", "redis_url"))

    auth_jwks_url: str | None = Field(
        None, validation_alias=AliasChoices("AUTH_JWKS_URL", "auth_jwks_url")
    )
    auth_issuer: str = Field(
        "pipedesk-dev-identity", validation_alias=AliasChoices("AUTH_ISSUER", "auth_issuer")
    )
    auth_audience: str = Field(
        "pipedesk-api", validation_alias=AliasChoices("AUTH_AUDIENCE", "auth_audience")
    )
    auth_leeway_seconds: int = Field(
        30,
        ge=0,
        le=120,
        validation_alias=AliasChoices("AUTH_LEEWAY_SECONDS", "auth_leeway_seconds"),
    )
    auth_refusals_refresh_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        validation_alias=AliasChoices(
            "AUTH_REFUSALS_REFRESH_SECONDS", "auth_refusals_refresh_seconds"
        ),
        description="How often the CRM's list of deactivated users is read again: a deactivated "
        "user's token is refused at the latest this long after the deactivation",
    )
    service_jwks_url: str | None = Field(
        None, validation_alias=AliasChoices("SERVICE_JWKS_URL", "service_jwks_url")
    )
    # This service's own ES256 signing key for service tokens (PEM), a per-service secret.
    service_key: SecretStr | None = None
    dev_key_dir: Path = Field(
        Path(DEV_KEY_DIR), validation_alias=AliasChoices("DEV_KEY_DIR", "dev_key_dir")
    )

    cursor_secret: SecretStr = Field(
        SecretStr(DEV_CURSOR_SECRET),
        min_length=32,
        validation_alias=AliasChoices("CURSOR_SECRET", "cursor_secret"),
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, validation_alias=AliasChoices("MAX_BODY_BYTES", "max_body_bytes")
    )
    log_level: str = Field("INFO", validation_alias=AliasChoices("LOG_LEVEL", "log_level"))

    google_root_url: str | None = Field(
        None,
        validation_alias=AliasChoices("GOOGLE_ROOT_URL", "google_root_url"),
        description="Where Google's APIs are reached; unset means Google itself. Refused in "
        "production unless GOOGLE_ALLOW_NON_GOOGLE_ROOT is set",
    )
    google_allow_non_google_root: bool = Field(
        False,
        validation_alias=AliasChoices(
            "GOOGLE_ALLOW_NON_GOOGLE_ROOT", "google_allow_non_google_root"
        ),
        description="In production, let GOOGLE_ROOT_URL send Google calls, and the tokens they "
        "carry, to an endpoint that is not Google (an egress proxy); it must still be https",
    )

    broker_prefix: str = Field(
        "",
        pattern=r"^[a-z0-9_.-]*$",
        validation_alias=AliasChoices("BROKER_PREFIX", "broker_prefix"),
        description="Prefix of every exchange, queue and Redis key: the stack's namespace. "
        "Unset, it is derived from the database's name (see derived_broker_prefix)",
    )
    broker_queue_expires_ms: int | None = Field(
        None,
        ge=60_000,
        validation_alias=AliasChoices("BROKER_QUEUE_EXPIRES_MS", "broker_queue_expires_ms"),
        description="For ephemeral stacks: queues unused this long are deleted by the broker",
    )
    broker_queue_ledger: Path | None = Field(
        None,
        validation_alias=AliasChoices("BROKER_QUEUE_LEDGER", "broker_queue_ledger"),
        description="For ephemeral stacks: a file listing every queue declared, for teardown",
    )
    amqp_heartbeat: int = Field(
        10, ge=1, le=600, validation_alias=AliasChoices("AMQP_HEARTBEAT", "amqp_heartbeat")
    )
    reconnect_initial_seconds: float = Field(
        0.5,
        gt=0,
        le=60,
        validation_alias=AliasChoices("RECONNECT_INITIAL_SECONDS", "reconnect_initial_seconds"),
        description="The first wait before re-establishing a lost broker or database link",
    )
    reconnect_max_seconds: float = Field(
        30.0,
        gt=0,
        le=600,
        validation_alias=AliasChoices("RECONNECT_MAX_SECONDS", "reconnect_max_seconds"),
        description="The longest wait between attempts to re-establish a link",
    )
    relay_enabled: bool = Field(
        True, validation_alias=AliasChoices("RELAY_ENABLED", "relay_enabled")
    )
    outbox_poll_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        validation_alias=AliasChoices("OUTBOX_POLL_SECONDS", "outbox_poll_seconds"),
    )
    consumers_enabled: bool = Field(
        True, validation_alias=AliasChoices("CONSUMERS_ENABLED", "consumers_enabled")
    )
    consumer_prefetch: int = Field(
        100, ge=1, le=5000, validation_alias=AliasChoices("CONSUMER_PREFETCH", "consumer_prefetch")
    )
    consumer_concurrency: int | None = Field(
        None,
        ge=1,
        le=500,
        validation_alias=AliasChoices("CONSUMER_CONCURRENCY", "consumer_concurrency"),
        description="Events a process handles at once, across its consumers (default: the"
        " database pool size, so requests and the relay keep the overflow connections)",
    )
    consumer_batch_size: int | None = Field(
        None,
        ge=1,
        le=5000,
        validation_alias=AliasChoices("CONSUMER_BATCH_SIZE", "consumer_batch_size"),
        description="Events applied in one transaction at most, when a consumer falls behind,"
        " for every consumer of the process (default: each consumer's own batch size)",
    )
    consumer_max_attempts: int = Field(
        5,
        ge=1,
        le=50,
        validation_alias=AliasChoices("CONSUMER_MAX_ATTEMPTS", "consumer_max_attempts"),
    )
    consumer_delivery_limit: int = Field(
        10,
        ge=1,
        le=1000,
        validation_alias=AliasChoices("CONSUMER_DELIVERY_LIMIT", "consumer_delivery_limit"),
    )
    consumer_retry_delays_ms: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [1_000, 5_000, 30_000, 120_000],
        min_length=1,
        validation_alias=AliasChoices("CONSUMER_RETRY_DELAYS_MS", "consumer_retry_delays_ms"),
    )

    @field_validator("consumer_retry_delays_ms", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [int(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("consumer_retry_delays_ms")
    @classmethod
    def _positive_delays(cls, value: list[int]) -> list[int]:
        if any(delay <= 0 for delay in value):
            raise ValueError("retry delays must be positive milliseconds")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            _PerServiceOverrides(settings_cls),
            env_settings,
            dotenv_settings,
            file_secret_settings,
        )

    @model_validator(mode="after")
    def _reconnect_waits_in_order(self) -> BaseServiceSettings:
        if self.reconnect_initial_seconds > self.reconnect_max_seconds:
            raise ValueError("RECONNECT_INITIAL_SECONDS must not exceed RECONNECT_MAX_SECONDS")
        return self

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> BaseServiceSettings:
        if self.environment is not Environment.PRODUCTION:
            return self
        problems = []
        if self.cursor_secret.get_secret_value() == DEV_CURSOR_SECRET:
            problems.append("CURSOR_SECRET is the development value")
        if self.auth_jwks_url is None:
            problems.append("AUTH_JWKS_URL must name the identity provider's JWKS")
        if self.service_jwks_url is None:
            problems.append("SERVICE_JWKS_URL must name the service keys' JWKS")
        if self.service_key is None:
            problems.append(f"{self.env_prefix()}SERVICE_KEY must hold this service's signing key")
        if problems:
            raise ValueError("refusing development secrets in production: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _refuse_a_non_google_root_in_production(self) -> BaseServiceSettings:
        if self.environment is not Environment.PRODUCTION or self.google_root_url is None:
            return self
        if not self.google_allow_non_google_root:
            raise ValueError(
                f"GOOGLE_ROOT_URL ({self.google_root_url}) would send Google calls and their "
                "tokens to an endpoint that is not Google; unset it in production, or set "
                "GOOGLE_ALLOW_NON_GOOGLE_ROOT=true if that endpoint is yours on purpose"
            )
        if not self.google_root_url.startswith("https://"):
            raise ValueError("GOOGLE_ROOT_URL must be an https:// URL in production")
        return self

    @model_validator(mode="after")
    def _derive_broker_prefix(self) -> BaseServiceSettings:
        if "broker_prefix" not in self.model_fields_set:
            self.broker_prefix = derived_broker_prefix(self.database_url)
        return self

    @property
    def stack(self) -> str:
        """The stack this process belongs to: its database's name. The queues it consumes carry
        it, and a queue of another stack is refused (``messaging.StackMismatch``)."""
        return database_name(self.database_url)

    @classmethod
    def env_prefix(cls) -> str:
        return str(cls.model_config.get("env_prefix", ""))

    @property
    def process_pool_size(self) -> int:
        """One process's pooled connections: the budget divided among the WORKERS processes."""
        return max(1, self.database_pool_size // self.workers)

    @property
    def process_max_overflow(self) -> int:
        return self.database_max_overflow // self.workers

    @property
    def listen_port(self) -> int:
        return self.port or port_for(self.service_name, self.port_base)

    def url_of(self, process: str) -> str:
        """Where another process of the system listens (``<NAME>_URL`` or the Wiring default)."""
        configured = os.environ.get(f"{process.upper()}_URL")
        return configured or f"http://127.0.0.1:{port_for(process, self.port_base)}"

    @property
    def crm_base_url(self) -> str:
        """Where the CRM listens (its directory, its access lists)."""
        return self.url_of("crm")

    @property
    def jwks_url(self) -> str:
        return self.auth_jwks_url or self.url_of("identity") + JWKS_PATH

    @property
    def service_keys_url(self) -> str:
        return self.service_jwks_url or self.url_of("identity") + SERVICE_JWKS_PATH
