"""Where a service's own signing key comes from."""

from __future__ import annotations

from pathlib import Path

from joserfc.jwk import ECKey

from pipedesk_common.settings import BaseServiceSettings, Environment


def dev_service_key_path(key_dir: Path, service: str) -> Path:
    return key_dir / f"svc-{service}.pem"


def load_service_key(settings: BaseServiceSettings) -> ECKey | None:
    """This service's private ES256 key: ``<PREFIX>SERVICE_KEY``, or in development the dev key."""
    if settings.service_key is not None:
        return ECKey.import_key(settings.service_key.get_secret_value())
    if settings.environment is Environment.PRODUCTION:
        return None
    path = dev_service_key_path(settings.dev_key_dir, settings.service_name)
    return ECKey.import_key(path.read_bytes()) if path.exists() else None
