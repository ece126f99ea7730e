"""``python -m accounts_service.rotate_keys``: re-seal every secret with the active vault key.

Run after adding a key to ``ACCOUNTS_VAULT_KEYS`` and making it ``ACCOUNTS_VAULT_ACTIVE_KEY``
(the running services already seal new values with it). Rows are re-sealed in batches, each in
its own transaction, under row locks, so it runs safely beside the live service and can be
interrupted and run again. A secret that does not open is reported and left as it is (exit
status 1). When a run reports no such secret, the old keys may be removed.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from accounts_service.models import SEALED_COLUMNS, seal_context
from accounts_service.settings import AccountsSettings
from accounts_service.vault import Vault, VaultError
from pipedesk_common.db import create_engine, create_sessionmaker

BATCH = 200


@dataclass
class RotationReport:
    resealed: dict[str, int] = field(default_factory=dict)
    # Cells that did not open (their key is not configured, or they were tampered with): left
    # as they are, named by table.column and row key, never by content.
    unopened: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.resealed.values())


async def rotate(engine: AsyncEngine, vault: Vault) -> RotationReport:
    """Re-seal with ``vault``'s active key every sealed cell that names another key."""
    report = RotationReport()
    sessionmaker = create_sessionmaker(engine)
    for model, column, key_column in SEALED_COLUMNS:
        name = f"{model.__tablename__}.{column}"
        report.resealed[name] = 0
        last_key: object = None
        while True:
            async with sessionmaker() as session, session.begin():
                key_attr = col(getattr(model, key_column))
                query = select(model).order_by(key_attr).limit(BATCH).with_for_update()
                if last_key is not None:
                    query = query.where(key_attr > last_key)
                rows = (await session.execute(query)).scalars().all()
                for row in rows:
                    sealed = getattr(row, column)
                    if sealed is None:
                        continue
                    context = seal_context(model, column, getattr(row, key_column))
                    try:
                        resealed = vault.reseal(sealed, context=context)
                    except VaultError:
                        report.unopened.append(context)
                        continue
                    if resealed is not None:
                        setattr(row, column, resealed)
                        report.resealed[name] += 1
            if len(rows) < BATCH:
                break
            last_key = getattr(rows[-1], key_column)
    return report


async def main() -> int:
    settings = AccountsSettings()
    vault = Vault.from_spec(settings.vault_keys.get_secret_value(), settings.vault_active_key)
    engine = create_engine(settings)
    try:
        report = await rotate(engine, vault)
    finally:
        await engine.dispose()
    for name, count in report.resealed.items():
        print(f"{name}: {count} re-sealed with key {vault.active_key_id!r}")
    if report.unopened:
        for context in report.unopened:
            print(f"could not open {context}", file=sys.stderr)
        print(
            f"{len(report.unopened)} secrets did not open and keep their old key: configure "
            "every key still in use and run again; keep the old keys until this reports none",
            file=sys.stderr,
        )
        return 1
    print(f"done: {report.total} re-sealed; every secret now uses {vault.active_key_id!r}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
