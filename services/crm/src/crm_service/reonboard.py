"""``python -m crm_service.reonboard ORG_ID``: onboard an offboarded org again.

An org's offboarding (``POST /api/org/offboard``) refuses every user of the org in every service
(``403 org-offboarded``) from the moment its job starts, so a token still valid afterwards never
recreates a row of it. Only an operator ends that, deliberately, with this command, once the
customer signs up again: the offboarding's job row (the record that it happened, with its
counts) is kept and marked ``reonboarded_at``. The org then starts empty: its users' next
requests make their directory entries again. Every service stops refusing the org at its next
read of the CRM's list (``AUTH_REFUSALS_REFRESH_SECONDS``); the CRM at once.

An offboarding still running cannot be ended this way (exit status 1): its admin finishes it
first by repeating the request. An org that was never offboarded is reported (exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from crm_service.directory import offboarding_status
from crm_service.models import GoogleDataDeletionJob
from crm_service.settings import CrmSettings
from pipedesk_common.clock import Clock, SystemClock
from pipedesk_common.db import create_engine, create_sessionmaker


class NotOffboarded(Exception):
    """The org is not offboarded (never was, or was onboarded again)."""


class OffboardingRunning(Exception):
    """The org's offboarding is not finished: its admin resumes it first."""


async def reonboard(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, org_id: str
) -> datetime:
    """Mark the org's finished offboarding onboarded again; when."""
    async with sessionmaker.begin() as session:
        status = await offboarding_status(session, org_id)
        if status is None:
            raise NotOffboarded(org_id)
        if status == "running":
            raise OffboardingRunning(org_id)
        now = clock.now()
        await session.execute(
            update(GoogleDataDeletionJob)
            .where(
                col(GoogleDataDeletionJob.org_id) == org_id,
                col(GoogleDataDeletionJob.scope) == "org",
                col(GoogleDataDeletionJob.reonboarded_at).is_(None),
            )
            .values(reonboarded_at=now)
        )
        return now


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crm_service.reonboard", description=__doc__.splitlines()[0]
    )
    parser.add_argument("org_id", help="The offboarded org's id")
    org_id: str = parser.parse_args(argv).org_id
    engine = create_engine(CrmSettings())
    try:
        await reonboard(create_sessionmaker(engine), SystemClock(), org_id)
    except NotOffboarded:
        print(f"{org_id!r} is not an offboarded org", file=sys.stderr)
        return 1
    except OffboardingRunning:
        print(
            f"the offboarding of {org_id!r} is not finished: its admin repeats "
            "POST /api/org/offboard to finish it first",
            file=sys.stderr,
        )
        return 1
    finally:
        await engine.dispose()
    print(f"{org_id!r} may sign in again; its users start with an empty org")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
