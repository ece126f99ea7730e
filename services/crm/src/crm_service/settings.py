from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from pipedesk_common.settings import BaseServiceSettings


class CrmSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "crm"
