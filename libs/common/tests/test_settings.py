from typing import ClassVar

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from pipedesk_common.settings import BaseServiceSettings, port_for


class DemoSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore", populate_by_name=True)
    service_name: ClassVar[str] = "crm"


def test_port_base_shifts_every_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT_BASE", "9000")
    settings = DemoSettings()
    assert settings.listen_port == 9101
    assert settings.url_of("timeline") == "http://127.0.0.1:9102"
    assert settings.jwks_url == "http://127.0.0.1:9091/.well-known/jwks.json"
    assert port_for("gateway", 9000) == 9000


def test_a_service_prefixed_database_url_overrides_the_shared_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://shared/db")
    assert DemoSettings().database_url == "postgresql+asyncpg://shared/db"
    monkeypatch.setenv("CRM_DATABASE_URL", "postgresql+asyncpg://own/crm")
    assert DemoSettings().database_url == "postgresql+asyncpg://own/crm"
    monkeypatch.setenv("CRM_PORT", "7001")
    assert DemoSettings().listen_port == 7001


def test_production_refuses_development_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ValidationError) as error:
        DemoSettings()
    message = str(error.value)
    for name in ("CURSOR_SECRET", "AUTH_JWKS_URL", "SERVICE_JWKS_URL", "CRM_SERVICE_KEY"):
        assert name in message


def test_production_starts_with_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from joserfc.jwk import ECKey

    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("CURSOR_SECRET", "s" * 48)
    monkeypatch.setenv("AUTH_JWKS_URL", "https://idp.example.com/jwks")
    monkeypatch.setenv("SERVICE_JWKS_URL", "https://keys.example.com/services.json")
    monkeypatch.setenv("CRM_SERVICE_KEY", ECKey.generate_key("P-256").as_pem(private=True).decode())
    settings = DemoSettings()
    assert settings.jwks_url == "https://idp.example.com/jwks"


def test_short_cursor_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURSOR_SECRET", "short")
    with pytest.raises(ValidationError, match=r"cursor_secret|CURSOR_SECRET"):
        DemoSettings()


def _production(monkeypatch: pytest.MonkeyPatch) -> None:
    from joserfc.jwk import ECKey

    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("CURSOR_SECRET", "s" * 48)
    monkeypatch.setenv("AUTH_JWKS_URL", "https://idp.example.com/jwks")
    monkeypatch.setenv("SERVICE_JWKS_URL", "https://keys.example.com/services.json")
    monkeypatch.setenv("CRM_SERVICE_KEY", ECKey.generate_key("P-256").as_pem(private=True).decode())


def test_production_refuses_a_google_root_that_is_not_google_unless_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOOGLE_ROOT_URL", "http://127.0.0.1:8090/")
    assert DemoSettings().google_root_url == "http://127.0.0.1:8090/"  # development: the emulator
    _production(monkeypatch)
    with pytest.raises(ValidationError, match=r"GOOGLE_ROOT_URL .* GOOGLE_ALLOW_NON_GOOGLE_ROOT"):
        DemoSettings()
    monkeypatch.setenv("GOOGLE_ALLOW_NON_GOOGLE_ROOT", "true")
    with pytest.raises(ValidationError, match="GOOGLE_ROOT_URL must be an https:// URL"):
        DemoSettings()
    monkeypatch.setenv("GOOGLE_ROOT_URL", "https://google-egress.example.com/")
    assert DemoSettings().google_root_url == "https://google-egress.example.com/"
    monkeypatch.delenv("GOOGLE_ROOT_URL")
    monkeypatch.delenv("GOOGLE_ALLOW_NON_GOOGLE_ROOT")
    assert DemoSettings().google_root_url is None
