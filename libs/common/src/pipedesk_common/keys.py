"""Services' signing keys: where a service's own comes from, and the JWKS of all of them.

``python -m pipedesk_common.keys jwks crm-service-key.pem timeline-service-key.pem …`` prints
the JWKS that ``SERVICE_JWKS_URL`` serves, from the services' private keys (PEM files named
``<service>-service-key.pem``, or given as ``<service>=<file>``; a service may have two while its
key rotates): each public key with the kid ``<service>.<thumbprint prefix>``. No private part is
printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from joserfc.jwk import ECKey

from pipedesk_common.auth import service_kid
from pipedesk_common.settings import BaseServiceSettings, Environment

KEY_FILE_SUFFIX: Final = "-service-key.pem"


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


def service_jwk(service: str, key: ECKey) -> dict[str, Any]:
    """The public JWK that verifies ``service``'s tokens."""
    if key.curve_name != "P-256":
        raise ValueError(f"{service}: a service key is a P-256 key, not {key.curve_name}")
    return {
        **key.as_dict(private=False),
        "kid": service_kid(service, key),
        "use": "sig",
        "alg": "ES256",
    }


def service_jwks(keys: Iterable[tuple[str, ECKey]]) -> dict[str, Any]:
    """The JWKS of ``(service, key)`` pairs; a service may have two keys while one rotates."""
    return {"keys": [service_jwk(service, key) for service, key in sorted(keys, key=_by_name)]}


def _by_name(pair: tuple[str, ECKey]) -> tuple[str, str]:
    return pair[0], service_kid(*pair)


def _named_key(argument: str) -> tuple[str, ECKey]:
    service, separator, path = argument.partition("=")
    if not separator:
        path = argument
        name = Path(path).name
        if not name.endswith(KEY_FILE_SUFFIX):
            raise SystemExit(
                f"{path}: name it <service>{KEY_FILE_SUFFIX}, or give <service>={path}"
            )
        service = name.removesuffix(KEY_FILE_SUFFIX)
    return service, ECKey.import_key(Path(path).read_bytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipedesk_common.keys", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    jwks = commands.add_parser("jwks", help="print the JWKS of the services' public keys")
    jwks.add_argument("keys", nargs="+", help="<service>-service-key.pem or <service>=<file>")
    args = parser.parse_args(argv)
    keys = [_named_key(argument) for argument in args.keys]
    try:
        published = service_jwks(keys)
    except ValueError as problem:
        raise SystemExit(str(problem)) from None
    sys.stdout.write(json.dumps(published, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
