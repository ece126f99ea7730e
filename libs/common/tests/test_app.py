"""What ``create_app`` gives every service, seen from a minimal app."""

from typing import Annotated, Any, ClassVar

import pytest
from fastapi import APIRouter, Depends

from pipedesk_common.app import ServiceCallerDep, create_app
from pipedesk_common.auth import ServiceCaller
from pipedesk_common.internal import callers
from pipedesk_common.settings import BaseServiceSettings
from pipedesk_testkit.clients import app_client

pytestmark = pytest.mark.asyncio


class ProbeSettings(BaseServiceSettings):
    service_name: ClassVar[str] = "probe"


async def test_an_unexpected_error_is_a_500_problem_that_keeps_the_request_id(
    service_env: dict[str, Any],
) -> None:
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    app = create_app(ProbeSettings(**service_env), title="probe", routers=[router])
    async with app_client(app) as client:
        response = await client.get("/boom", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-500"
    assert "secret" not in response.text
    assert response.json()["type"] == "urn:pipedesk:problem:internal-error"


async def test_an_internal_route_that_names_no_callers_is_refused_at_build(
    service_env: dict[str, Any],
) -> None:
    open_to_all = APIRouter(prefix="/internal")

    @open_to_all.get("/things")
    async def things(caller: ServiceCallerDep) -> list[str]:
        return []

    with pytest.raises(ValueError, match=r"declare their callers: GET /internal/things"):
        create_app(ProbeSettings(**service_env), title="probe", routers=[open_to_all])

    declared = APIRouter(prefix="/internal")

    @declared.get("/things")
    async def named_things(
        caller: Annotated[ServiceCaller, Depends(callers("crm"))],
    ) -> list[str]:
        return []

    app = create_app(ProbeSettings(**service_env), title="probe", routers=[declared])
    assert "/internal/things" in app.openapi()["paths"]


async def test_a_method_a_resource_does_not_serve_is_a_405_naming_every_method_it_does(
    service_env: dict[str, Any],
) -> None:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def read(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @router.patch("/things/{thing_id}")
    async def change(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @router.delete("/things/{thing_id}")
    async def remove(thing_id: str) -> None:
        return None

    @router.post("/things")
    async def create() -> dict[str, str]:
        return {}

    app = create_app(ProbeSettings(**service_env), title="probe", routers=[router])
    async with app_client(app) as client:
        refused = await client.put("/things/t1")
        options = await client.options("/things/t1")
        collection = await client.options("/things")
        missing = await client.options("/nothing-here")
        served = await client.get("/things/t1")
    assert refused.status_code == 405
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["allow"] == "DELETE, GET, OPTIONS, PATCH"
    assert options.status_code == 204
    assert options.headers["allow"] == "DELETE, GET, OPTIONS, PATCH"
    assert options.content == b""
    assert collection.status_code == 204
    assert collection.headers["allow"] == "OPTIONS, POST"
    assert missing.status_code == 404
    assert served.status_code == 200


async def test_the_methods_allowed_are_those_of_the_most_specific_path_that_matches(
    service_env: dict[str, Any],
) -> None:
    """Ids may hold a ``/`` (``{person_id:path}``): an action below the id is its own resource."""
    router = APIRouter()

    @router.get("/people/{person_id:path}")
    async def read(person_id: str) -> dict[str, str]:
        return {"id": person_id}

    @router.post("/people/{person_id:path}/retire")
    async def retire(person_id: str) -> dict[str, str]:
        return {"id": person_id}

    app = create_app(ProbeSettings(**service_env), title="probe", routers=[router])
    async with app_client(app) as client:
        action = await client.options("/people/p1/retire")
        person = await client.options("/people/team/p1")
    assert action.headers["allow"] == "OPTIONS, POST"
    assert person.headers["allow"] == "GET, OPTIONS"
