"""Readiness for an orchestrator (/readyz): can this process serve?

Liveness (/healthz) asks nothing of the database: a process that answers HTTP is alive, and
restarting it because PostgreSQL is slow or its pool is busy would only add to a burst.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from app.db import MIGRATIONS_DIR

# The migrations this code knows that the database has not recorded as applied.
MISSING_MIGRATIONS = """
SELECT coalesce(array_agg(v ORDER BY v), '{}')
FROM unnest($1::text[]) AS v
WHERE NOT EXISTS (SELECT 1 FROM schema_migrations m WHERE m.version = v)
"""


class Readiness:
    """Ready when the database answers within `timeout` and every migration in db/migrations is
    applied. It asks on a connection of its own, never one of the request pool: a pool busy with
    requests is no reason to take the process out of service."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self.url = url
        self.timeout = timeout
        self.migrations = sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql"))
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one check at a time on the one connection

    async def problem(self) -> str | None:
        """None when ready, else why not (never a detail of the database's own)."""
        try:
            async with asyncio.timeout(self.timeout):
                async with self._lock:
                    if self._conn is None or self._conn.is_closed():
                        self._conn = await asyncpg.connect(
                            self.url,
                            timeout=self.timeout,
                            server_settings={"application_name": "incident-graph readyz"},
                        )
                    missing = await self._conn.fetchval(MISSING_MIGRATIONS, self.migrations)
        except TimeoutError:
            self._drop()
            return f"the database did not answer within {self.timeout:g} s"
        except asyncpg.UndefinedTableError:
            return "migrations not applied: no schema_migrations table"
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._drop()
            return f"the database is unavailable ({type(exc).__name__})"
        if missing:
            return f"migrations not applied: {', '.join(missing)}"
        return None

    def _drop(self) -> None:
        # A connection whose statement was cut short is in no state to be asked again.
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.terminate()
            self._conn = None

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._conn.close(), self.timeout)
                self._conn = None
