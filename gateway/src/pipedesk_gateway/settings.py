from typing import ClassVar

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from pipedesk_common.settings import BaseServiceSettings


class GatewaySettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "gateway"

    ready_services: list[str] = Field(
        default_factory=lambda: ["crm", "timeline"],
        description="Services /readyz requires (GATEWAY_READY_SERVICES, a JSON list): the ones "
        "deployed; a route to another answers 502 until its service runs",
    )
    frontend_origin: str | None = Field(
        None,
        validation_alias=AliasChoices("FRONTEND_ORIGIN", "frontend_origin"),
        description="The browser origin allowed by CORS, e.g. https://app.pipedesk.example",
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
