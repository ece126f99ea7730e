"""Reading another service's ``/internal/…`` routes, with a service token for that service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from pipedesk_common.auth import ServiceTokenIssuer
from pipedesk_common.errors import ServiceUnavailable


async def read_internal(
    http: httpx.AsyncClient,
    issuer: ServiceTokenIssuer,
    service: str,
    url: str,
    *,
    what: str,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any | None:
    """``GET`` of another service's internal route (with a service token for ``service``): its
    JSON, or None when it has no such thing (``404``, ``422``). ``503`` naming ``what`` when it
    cannot be reached or answers anything else."""
    try:
        response = await http.get(
            url,
            params=params,
            headers={**(headers or {}), "Authorization": f"Bearer {issuer.token_for(service)}"},
        )
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"the {service} service cannot be reached for {what}") from exc
    if response.status_code in {404, 422}:
        return None
    if response.status_code != 200:
        raise ServiceUnavailable(
            f"the {service} service answered {response.status_code} for {what}"
        )
    try:
        return response.json()
    except ValueError as exc:
        raise ServiceUnavailable(f"the {service} service answered unreadable {what}") from exc
