"""`python -m gateway.migrate`: bring the database schema to the newest revision, once per release.

In a cluster a Helm hook Job runs this before the gateway's replicas roll (two replicas migrating
at start would race); the replicas run with `GATEWAY_MIGRATE_ON_START=false` and only wait until
the schema is at the newest revision. On one machine the gateway migrates at start itself.
"""

from __future__ import annotations

import asyncio
import logging

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import alembic_config, migrate, open_engine
from gateway.settings import GatewaySettings
from genai_common.logging import configure_logging

log = logging.getLogger(__name__)

# How often a waiting replica looks at the schema again.
POLL_SECONDS = 1.0


class SchemaNotReady(RuntimeError):
    """The database schema is not at the newest revision (the migration Job has not run)."""


def newest_revisions(url: str) -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(url)).get_heads())


async def applied_revisions(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_heads()))


async def wait_for_schema(url: str, wait_seconds: float) -> None:
    """Return once every migration is applied; SchemaNotReady after `wait_seconds`."""
    wanted = newest_revisions(url)
    engine = open_engine(url)
    applied: set[str] = set()
    try:
        async with asyncio.timeout(wait_seconds):
            while True:
                try:
                    applied = await applied_revisions(engine)
                except OSError:  # the database is not reachable yet: keep waiting
                    log.warning("database not reachable while waiting for the schema", exc_info=True)
                if applied == wanted:
                    return
                await asyncio.sleep(POLL_SECONDS)
    except TimeoutError:
        raise SchemaNotReady(
            f"database schema is at {sorted(applied) or 'no revision'}, wanted {sorted(wanted)} "
            f"after {wait_seconds:g}s: "
            "run `python -m gateway.migrate` (the chart's migration Job) or set GATEWAY_MIGRATE_ON_START=true"
        ) from None
    finally:
        await engine.dispose()


async def ensure_schema(settings: GatewaySettings) -> None:
    """At start: migrate (one machine) or wait for the release's migration Job (cluster)."""
    if settings.gateway_migrate_on_start:
        await migrate(settings.database_url)
    else:
        await wait_for_schema(settings.database_url, settings.gateway_schema_wait_seconds)


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway-migrate", settings.log_level)
    asyncio.run(migrate(settings.database_url))
    log.info("database schema at the newest revision")


if __name__ == "__main__":
    main()
