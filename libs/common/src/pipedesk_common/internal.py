"""``/internal/…`` routes: service tokens only, and only from the services a route names.

Every internal route declares its callers with ``callers("accounts")``: a caller with a valid
service token of another service is refused (``403``, logged and counted in
``pipedesk_internal_calls_refused_total``), so each service reaches only what it needs.
``create_app`` refuses to build an app with an internal route that declares no callers.
``jobs_router`` serves ``POST /internal/jobs/{name}`` (run one of the service's periodic jobs
now) on that rule.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from prometheus_client import Counter
from pydantic import BaseModel, Field

from pipedesk_common.app import CALLERS_ATTRIBUTE, ServiceCallerDep, provided
from pipedesk_common.auth import ServiceCaller
from pipedesk_common.errors import Forbidden, NotFound, Unauthorized, problem_responses
from pipedesk_common.periodic import JobRunner

# Who runs jobs on demand: the automation service (its scheduler and the operators' console).
JOB_CALLERS = ("automation",)

log = logging.getLogger(__name__)

INTERNAL_CALLS_REFUSED = Counter(
    "pipedesk_internal_calls_refused_total",
    "Calls to internal routes refused: a service not allowed, or asking for more than its share",
    ["caller", "route", "reason"],
)


def refuse_internal_call(request: Request, caller: ServiceCaller, reason: str, detail: str) -> None:
    """Log and count a refused internal call, then refuse it (``403`` naming ``detail``)."""
    route = getattr(request.scope.get("route"), "path", request.url.path)
    INTERNAL_CALLS_REFUSED.labels(caller.name, route, reason).inc()
    log.warning(
        "internal call refused",
        extra={"caller": caller.name, "route": route, "reason": reason},
    )
    raise Forbidden(detail)


def callers(*services: str) -> Callable[[Request, ServiceCaller], Awaitable[ServiceCaller]]:
    """The dependency of a route only ``services`` may call."""
    if not services:
        raise ValueError("an internal route names at least one calling service")
    allowed = frozenset(services)

    async def allowed_caller(request: Request, caller: ServiceCallerDep) -> ServiceCaller:
        if caller.name not in allowed:
            refuse_internal_call(
                request, caller, "caller", f"the {caller.name} service may not call this route"
            )
        return caller

    allowed_caller.__doc__ = f"Service tokens of: {', '.join(sorted(allowed))}."
    setattr(allowed_caller, CALLERS_ATTRIBUTE, allowed)
    return allowed_caller


def internal_problems() -> dict[int | str, dict[str, object]]:
    """The problems every internal route may answer."""
    return problem_responses(Unauthorized, Forbidden)


class JobRunPublic(BaseModel):
    job: str
    result: int | None = Field(description="What the job counted (syncs run, keys pruned…)")


def jobs_router(example: str) -> APIRouter:
    """``POST /internal/jobs/{name}``: run one of the service's periodic jobs now (the app
    provides its ``JobRunner``)."""
    router = APIRouter(prefix="/internal", tags=["internal"])

    @router.post(
        "/jobs/{name}",
        summary=f"Run a periodic job now, e.g. `{example}` (callers: {', '.join(JOB_CALLERS)})",
        responses={**internal_problems(), **problem_responses(NotFound)},
    )
    async def run_job(
        name: str,
        caller: Annotated[ServiceCaller, Depends(callers(*JOB_CALLERS))],
        runner: Annotated[JobRunner, Depends(provided(JobRunner))],
    ) -> JobRunPublic:
        job = next((job for job in runner.jobs if job.name == name), None)
        if job is None:
            raise NotFound(f"no job named {name}")
        result = await job.run()
        return JobRunPublic(job=name, result=result if isinstance(result, int) else None)

    return router
