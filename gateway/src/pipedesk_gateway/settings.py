import re
from ipaddress import ip_network
from typing import Annotated, Any, ClassVar

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from pipedesk_common.settings import BaseServiceSettings, Environment
from pipedesk_common.uploads import DEFAULT_DRIVE_MAX_UPLOAD_BYTES, DEFAULT_GMAIL_MAX_SEND_BYTES

# A browser origin as the Origin header spells it: scheme, host, optional port; nothing more.
_ORIGIN = re.compile(
    r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$|^https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?$"
)


class GatewaySettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "gateway"

    ready_services: list[str] = Field(
        default_factory=lambda: ["crm", "timeline"],
        description="Services /readyz requires (GATEWAY_READY_SERVICES, a JSON list): the ones "
        "deployed; a route to another answers 502 until its service runs",
    )
    frontend_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("FRONTEND_ORIGINS", "FRONTEND_ORIGIN", "frontend_origins"),
        description="The browser origins allowed by CORS, comma-separated, e.g. "
        "https://app.pipedesk.example,http://localhost:3000 (empty: no CORS)",
    )
    console: bool | None = Field(
        None,
        description="Serve the console at /app, which signs in through the development identity "
        "provider (default: on, except in production, which refuses it)",
    )
    drive_max_upload_bytes: int = Field(
        DEFAULT_DRIVE_MAX_UPLOAD_BYTES,
        ge=1024,
        validation_alias=AliasChoices("DRIVE_MAX_UPLOAD_BYTES", "drive_max_upload_bytes"),
        description="The largest file Drive's upload routes accept (the same setting as the "
        "drive service's); every other route keeps MAX_BODY_BYTES",
    )
    gmail_max_send_bytes: int = Field(
        DEFAULT_GMAIL_MAX_SEND_BYTES,
        ge=1024,
        validation_alias=AliasChoices("GMAIL_MAX_SEND_BYTES", "gmail_max_send_bytes"),
        description="The largest body Gmail's send and reply routes accept (the same setting "
        "as the gmail service's); every other route keeps MAX_BODY_BYTES",
    )
    connect_timeout: float = Field(2.0, gt=0, le=30)
    read_timeout: float = Field(15.0, gt=0, le=300)
    max_connections: int = Field(200, ge=1, le=10_000)
    max_streams: int = Field(1000, ge=1, le=100_000)
    sse_heartbeat_seconds: float = Field(15.0, gt=0, le=300)
    rate_limit_default: str = Field(
        "600/60",
        pattern=r"^\d+/\d+$",
        validation_alias=AliasChoices("RATE_LIMIT_DEFAULT", "rate_limit_default"),
        description="Requests per seconds, per user and route class",
    )
    rate_limit_sensitive: str = Field(
        "30/60",
        pattern=r"^\d+/\d+$",
        validation_alias=AliasChoices("RATE_LIMIT_SENSITIVE", "rate_limit_sensitive"),
    )
    rate_limit_org_multiplier: int = Field(
        20,
        ge=1,
        validation_alias=AliasChoices("RATE_LIMIT_ORG_MULTIPLIER", "rate_limit_org_multiplier"),
        description="An org's bucket holds this many users' worth of requests",
    )
    rate_limit_public: str = Field(
        "120/60",
        pattern=r"^\d+/\d+$",
        validation_alias=AliasChoices("RATE_LIMIT_PUBLIC", "rate_limit_public"),
        description="Per client address, for the routes that carry no token",
    )

    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="The proxies (addresses or CIDR networks, comma-separated, e.g. "
        "10.0.0.0/8,fd00::/8) whose X-Forwarded-For and X-Forwarded-Proto the gateway believes; "
        "empty: none, the client is the address the gateway was reached from",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies_comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is neither an IP address nor a CIDR network") from None
        return proxies

    @field_validator("frontend_origins", mode="before")
    @classmethod
    def _origins_comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("frontend_origins")
    @classmethod
    def _plain_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} is not a browser origin: scheme://host[:port] in lower case, "
                    "without a path or a trailing slash ('*' is not accepted: list the origins)"
                )
        return list(dict.fromkeys(origins))

    @model_validator(mode="after")
    def _console_only_in_development(self) -> "GatewaySettings":
        production = self.environment is Environment.PRODUCTION
        if self.console is None:
            self.console = not production
        elif self.console and production:
            raise ValueError(
                "GATEWAY_CONSOLE is refused in production: the console signs in through the "
                "development identity provider"
            )
        return self

    @property
    def console_enabled(self) -> bool:
        return bool(self.console)
