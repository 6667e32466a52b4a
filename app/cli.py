"""The `incidents` command: migrate, serve, user add/revoke, seed.

Every command reads DATABASE_URL, or starts the embedded PostgreSQL under .data/ when unset.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from urllib.parse import urlsplit

import asyncpg

from app import config, db
from app.config import DEMO_TOKEN_VARIABLE, ConfigError, Settings


def _url(settings: Settings) -> str:
    return db.resolve_database_url(settings)


class CliError(Exception):
    """A failure the operator can fix (bad configuration, database unreachable): one line, no traceback."""


def _where(url: str) -> str:
    """The database a URL names, for messages: never the password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


async def _connect(url: str) -> asyncpg.Connection:
    # A database that is down, unknown or refuses the credentials is an operator's problem, not
    # a bug: say which database and why in one line instead of a stack trace.
    try:
        return await asyncpg.connect(url, server_settings=db.SERVER_SETTINGS)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise CliError(f"cannot connect to the database at {_where(url)}: {exc}") from None


async def _migrate(url: str) -> list[str]:
    conn = await _connect(url)
    try:
        return await db.migrate(conn)
    finally:
        await conn.close()


def cmd_migrate(args, settings: Settings) -> None:
    applied = asyncio.run(_migrate(_url(settings)))
    print(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}")


def cmd_user_add(args, settings: Settings) -> None:
    from app.domain import users

    try:
        grants = [users.parse_grant(g) for g in args.grant]
    except ValueError as exc:
        sys.exit(f"incidents: {exc}")

    async def run() -> str:
        conn = await _connect(_url(settings))
        try:
            return await users.add_user(
                conn=conn, name=args.name, grants=grants,
                can_view_incidents=False if args.no_queue else None,
                can_ingest=True if args.ingest else None,
            )
        finally:
            await conn.close()

    try:
        token = asyncio.run(run())
    except ValueError as exc:
        sys.exit(f"incidents: {exc}")
    print(f"user {args.name}: token (shown once, keep it secret):")
    print(token)


def cmd_user_revoke(args, settings: Settings) -> None:
    from app.domain import users

    async def run() -> int | None:
        conn = await _connect(_url(settings))
        try:
            return await users.revoke_tokens(conn=conn, name=args.name)
        finally:
            await conn.close()

    revoked = asyncio.run(run())
    if revoked is None:  # a mistyped name in an emergency must not look like success
        raise CliError(f"no user named {args.name!r}; nothing was revoked")
    print(f"revoked {revoked} token(s) of {args.name}")


def cmd_seed(args, settings: Settings) -> None:
    from app.domain import seed

    async def run() -> None:
        url = _url(settings)
        await _migrate(url)
        conn = await _connect(url)
        try:
            created = await seed.seed(conn=conn, incidents=args.incidents)
            print(f"seeded {created.alerts} alerts into {created.incidents} incidents")
        finally:
            await conn.close()

    asyncio.run(run())


def cmd_serve(args, settings: Settings) -> None:
    import uvicorn

    workers = args.workers if args.workers is not None else settings.workers
    if workers < 1:
        raise CliError(f"--workers must be at least 1, got {workers}")
    url = _url(settings)
    asyncio.run(_migrate(url))
    demo_token = asyncio.run(_demo(url, args.host, args.port)) if args.demo else None
    settings = Settings(**{**settings.__dict__, "database_url": url})
    options = dict(
        host=args.host, port=args.port, loop="uvloop", http="httptools",
        log_level=settings.log_level, access_log=False, timeout_graceful_shutdown=10,
        # Shed load rather than queue without bound: over this many connections (per worker), answer 503.
        limit_concurrency=settings.max_concurrency,
    )
    if workers == 1:
        from app.server import create_app

        # workers=1, not None: uvicorn would read WEB_CONCURRENCY itself.
        uvicorn.run(create_app(settings, demo_token=demo_token), workers=1, **options)
        return
    # Each worker process builds its own app and pool from the environment (app.server.app_from_env);
    # this one supervises them (and keeps the embedded PostgreSQL, if any, running). The demo
    # token reaches them only from here, never from the environment the command was given.
    os.environ["DATABASE_URL"] = url
    os.environ.pop(DEMO_TOKEN_VARIABLE, None)
    if demo_token:
        os.environ[DEMO_TOKEN_VARIABLE] = demo_token
    uvicorn.run("app.server:app_from_env", factory=True, workers=workers, **options)


async def _demo(url: str, host: str, port: int) -> str | None:
    """Demo mode, for `make run`.

    On a first start with an empty database it loads demo data and creates the user `demo`, who
    may do everything. On later starts it replaces the demo user's tokens with a fresh one (tokens
    are shown once). A database that holds data but no demo user is left alone: demo mode never
    creates a write-everything user in a database it did not fill.
    """
    from app.domain import seed, users

    conn = await _connect(url)
    try:
        empty = await conn.fetchval("SELECT NOT EXISTS (SELECT 1 FROM incidents) AND NOT EXISTS (SELECT 1 FROM users)")
        has_demo = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE name = 'demo')")
        if not empty and not has_demo:
            print("demo mode: this database holds data and no demo user, so no demo user was created", flush=True)
            return None
        if empty:
            created = await seed.seed(conn=conn, incidents=seed.DEMO_INCIDENTS)
            print(f"loaded demo data: {created.alerts} alerts in {created.incidents} incidents")
        await users.revoke_tokens(conn=conn, name="demo")
        token = await users.add_user(conn=conn, name="demo", grants=[("*", "write")], can_view_incidents=True, can_ingest=True)
    finally:
        await conn.close()
    site = f"http://{host}:{port}"
    endpoint = f"{site}/graphql"
    print(
        f"""
  incident-graph is starting on {site}
  console:  open {site}/ (signed in as demo)
  GraphiQL: open {endpoint} (the demo token is filled in)
  demo token: {token}

  curl -s {endpoint} -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\
       -d '{{"query": "{{ incidents(first: 3) {{ edges {{ node {{ id name severity alertCount }} }} }} }}"}}'
""",
        flush=True,
    )
    return token


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="incidents", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply db/ migrations (idempotent, ordered, recorded)").set_defaults(func=cmd_migrate)

    serve = sub.add_parser("serve", help="serve the API (default 127.0.0.1:8000)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--demo", action="store_true", help="load demo data into an empty database and print a demo token")
    serve.add_argument("--workers", type=int, default=None,
                       help="worker processes (default: WEB_CONCURRENCY, else 1); each has its own pool of DB_POOL_MAX connections")
    serve.set_defaults(func=cmd_serve)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    add = user.add_parser("add", help="create the user if new, print a fresh API token as the last line")
    add.add_argument("name")
    add.add_argument("--grant", action="append", default=[], metavar="SCOPE=read|write",
                     help="repeatable; '*=write' means every scope")
    add.add_argument("--no-queue", action="store_true", help="without the 'view incidents queue' permission")
    add.add_argument("--ingest", action="store_true", help="may call ingestAlerts")
    add.set_defaults(func=cmd_user_add)
    revoke = user.add_parser("revoke", help="revoke all of a user's tokens at once")
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_user_revoke)

    seed = sub.add_parser("seed", help="realistic demo data through the ingestion path")
    seed.add_argument("--incidents", type=int, default=200)
    seed.set_defaults(func=cmd_seed)
    return p


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        args.func(args, config.settings())
    except (CliError, ConfigError) as exc:
        sys.exit(f"incidents: {exc}")


if __name__ == "__main__":
    main()
