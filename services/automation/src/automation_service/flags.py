"""Feature flags, evaluated through OpenFeature with a provider backed by ``feature_flags``.

A flag is set globally (by operators), for an org or for one of its teams (by the org's
admins). An evaluation names its org and team in the evaluation context (``org_id``,
``team_id``); the narrowest setting that matches wins (team, then org, then global), and a flag
set nowhere is the caller's default. Every evaluation reads the table, so a flag turned off
takes effect at the next evaluation, in every process, without a restart.
"""

from __future__ import annotations

from typing import Final, TypeVar
from uuid import uuid4

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider import AbstractProvider, Metadata
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from automation_service.sla_models import FeatureFlag

T = TypeVar("T")

# The flags the service knows; a setting of another key is refused.
SLA_WORKER: Final = "sla.worker"
FLAGS: Final = {
    SLA_WORKER: "The SLA worker raises warnings and breaches (events, notifications, "
    "escalation) for the org's or team's leads",
}
SCOPE_RANK: Final = {"team": 0, "org": 1, "global": 2}


def context_for(org_id: str, team_id: str | None = None) -> EvaluationContext:
    attributes: dict[str, str] = {"org_id": org_id}
    if team_id:
        attributes["team_id"] = team_id
    return EvaluationContext(targeting_key=org_id, attributes=attributes)


async def setting_for(
    session: AsyncSession, key: str, org_id: str | None, team_id: str | None
) -> FeatureFlag | None:
    """The narrowest setting of ``key`` that applies to the org and team."""
    matches = [and_(col(FeatureFlag.scope) == "global")]
    if org_id:
        matches.append(and_(col(FeatureFlag.scope) == "org", col(FeatureFlag.org_id) == org_id))
        if team_id:
            matches.append(
                and_(
                    col(FeatureFlag.scope) == "team",
                    col(FeatureFlag.org_id) == org_id,
                    col(FeatureFlag.team_id) == team_id,
                )
            )
    rows = list(
        await session.scalars(select(FeatureFlag).where(col(FeatureFlag.key) == key, or_(*matches)))
    )
    return min(rows, key=lambda row: SCOPE_RANK[row.scope], default=None)


class DatabaseFlagProvider(AbstractProvider):
    """An OpenFeature provider reading the ``feature_flags`` table (asynchronously: evaluate
    with the client's ``*_async`` methods)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        super().__init__()
        self.sessionmaker = sessionmaker

    def get_metadata(self) -> Metadata:
        return Metadata(name="pipedesk-automation-database")

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return FlagResolutionDetails(
            value=default_value,
            reason=Reason.ERROR,
            error_code=ErrorCode.GENERAL,
            error_message="flags are read from the database: evaluate them asynchronously",
        )

    async def resolve_boolean_details_async(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        attributes = evaluation_context.attributes if evaluation_context else {}
        org_id = attributes.get("org_id")
        team_id = attributes.get("team_id")
        async with self.sessionmaker() as session:
            found = await setting_for(
                session,
                flag_key,
                org_id if isinstance(org_id, str) else None,
                team_id if isinstance(team_id, str) else None,
            )
        if found is None:
            return FlagResolutionDetails(value=default_value, reason=Reason.DEFAULT)
        return FlagResolutionDetails(
            value=found.enabled,
            reason=Reason.TARGETING_MATCH if found.scope != "global" else Reason.STATIC,
            variant="on" if found.enabled else "off",
            flag_metadata={"scope": found.scope},
        )

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._unsupported(default_value)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._unsupported(default_value)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._unsupported(default_value)

    def resolve_object_details(  # type: ignore[override]
        self,
        flag_key: str,
        default_value: object,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[object]:
        return self._unsupported(default_value)

    @staticmethod
    def _unsupported(default_value: T) -> FlagResolutionDetails[T]:
        return FlagResolutionDetails(
            value=default_value,
            reason=Reason.ERROR,
            error_code=ErrorCode.TYPE_MISMATCH,
            error_message="the automation service's flags are booleans",
        )


class Flags:
    """The service's OpenFeature client, on its own provider domain (one per app)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.domain = f"pipedesk-automation-{uuid4()}"
        self.provider = DatabaseFlagProvider(sessionmaker)
        api.set_provider(self.provider, self.domain)
        self.client: OpenFeatureClient = api.get_client(self.domain)

    async def enabled(self, key: str, org_id: str, team_id: str | None = None) -> bool:
        return await self.client.get_boolean_value_async(key, False, context_for(org_id, team_id))
