"""One OpenAPI document for the whole public API, merged from the services behind the gateway."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

import httpx

from pipedesk_common.errors import PROBLEM_JSON
from pipedesk_gateway.routing import ROUTES, is_public_operation, target_of

log = logging.getLogger(__name__)
CACHE_SECONDS = 30.0


# What the gateway itself may answer on any route it forwards (see docs/gateway.md).
GATEWAY_PROBLEMS: Final = {
    "400": "Bad request: a path holding control characters",
    "429": "Too many requests: a rate-limit bucket is empty (see Retry-After)",
    "502": "Bad gateway: the service behind the route is unreachable",
    "503": "Service unavailable: no connection to the service was free in time",
    "504": "Gateway timeout: the service did not answer in time",
}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


class MergedOpenApi:
    def __init__(self, http: httpx.AsyncClient, urls: dict[str, str], *, title: str) -> None:
        self._http = http
        self._urls = urls
        self._title = title
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def document(self) -> dict[str, Any]:
        async with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            services = sorted({service for _, service in ROUTES})
            documents = await asyncio.gather(*(self._fetch(service) for service in services))
            merged = self._merge(dict(zip(services, documents, strict=True)))
            self._cached = (time.monotonic(), merged)
            return merged

    async def _fetch(self, service: str) -> dict[str, Any] | None:
        try:
            response = await self._http.get(f"{self._urls[service]}/openapi.json", timeout=3.0)
            response.raise_for_status()
            document: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError):
            return None
        return document

    def merge(self, documents: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
        """The public API of the services' ``documents`` (None: that service is unavailable)."""
        return self._merge(documents)

    def _merge(self, documents: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        schemas: dict[str, Any] = {}
        unavailable = []
        for service, document in documents.items():
            if document is None:
                unavailable.append(service)
                continue
            for path, operations in document.get("paths", {}).items():
                target = target_of("GET", path.replace("{", "x").replace("}", "x"))
                if target is None or target.service != service:
                    continue  # internal and operational routes are not the public API
                for method, operation in operations.items():
                    if not isinstance(operation, dict):
                        continue
                    if not is_public_operation(method, path):
                        operation["security"] = [{"BearerToken": []}]
                    responses = operation.setdefault("responses", {})
                    for status, description in GATEWAY_PROBLEMS.items():
                        responses.setdefault(status, _problem(description))
                paths[path] = operations
            for name, schema in document.get("components", {}).get("schemas", {}).items():
                if name in schemas and schemas[name] != schema:
                    log.warning("schema %s differs between services; keeping the first", name)
                    continue
                schemas[name] = schema
        return {
            "openapi": "3.1.0",
            "info": {"title": self._title, "version": "0.1.0"},
            "paths": dict(sorted(paths.items())),
            "components": {
                "schemas": dict(sorted(schemas.items())),
                "securitySchemes": {"BearerToken": {"type": "http", "scheme": "bearer"}},
            },
            "x-unavailable-services": unavailable,
        }
