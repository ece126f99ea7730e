from typing import ClassVar

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from pipedesk_common.settings import BaseServiceSettings


class TimelineSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TIMELINE_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "timeline"

    crm_url: str | None = Field(None, validation_alias=AliasChoices("CRM_URL", "crm_url"))

    @property
    def crm_base_url(self) -> str:
        return self.crm_url or self.url_of("crm")
