"""The `incidents` command: migrate, serve, user (add grant revoke set disable enable list), token revoke, seed,
documents (register list).

Every command reads DATABASE_URL, or starts the embedded PostgreSQL under .data/ when unset.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import asyncpg

# (graphql-core is imported by the commands that parse documents, not here: `incidents serve
# --workers N` supervises its workers from this process, which has no use for it: 5 MB of the
# server's resident memory, 34 -> 29 MB for this module and uvicorn, 2026-12-06.)
from app import config, db
from app.config import DEMO_TOKEN_VARIABLE, ConfigError, Settings
from app.domain import persisted, users
from app.domain.models import Access
from app.domain.users import AccessAction
from app.domain.viewers import ALL_SCOPES, SYSTEM_ACTOR
from app.logs import uvicorn_log_config

T = TypeVar("T")
# Who changes users and grants, for access_audit, when --by does not say.
OPERATOR_VARIABLE = "INCIDENTS_OPERATOR"


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


def _operator(by: str | None) -> str:
    """Who makes a change, for the audit: --by, else INCIDENTS_OPERATOR, else the OS user."""
    if by is not None:
        operator, source = by, "--by"
    elif os.environ.get(OPERATOR_VARIABLE):
        operator, source = os.environ[OPERATOR_VARIABLE], OPERATOR_VARIABLE
    else:
        try:
            operator, source = getpass.getuser(), "the OS user name"
        except (OSError, KeyError):  # no LOGNAME/USER and no passwd entry (some containers)
            raise CliError(f"cannot tell who makes this change: pass --by NAME or set {OPERATOR_VARIABLE}") from None
    try:
        users.check_operator(operator.strip())
    except users.UserChangeRefused as exc:
        raise CliError(f"{source}: {exc}") from None
    return operator.strip()


def _on_database(settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run work on one connection; a refused change is the operator's to fix, not a bug."""

    async def run() -> T:
        conn = await _connect(_url(settings))
        try:
            return await work(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(run())
    except users.UserChangeRefused as exc:
        raise CliError(str(exc)) from None


def _parse_grants(texts: list[str]) -> list[tuple[str, str]]:
    try:
        return [users.parse_grant(text) for text in texts]
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _scope_text(scope: str) -> str:
    """A scope as `user list` and the messages show it: quoted when it would not read as one word."""
    return scope if re.fullmatch(r"[^\s\"',]+", scope) else json.dumps(scope, ensure_ascii=False)


def _grants_text(grants: dict[str, str]) -> str:
    return " ".join(f"{_scope_text(scope)}={access}" for scope, access in sorted(grants.items())) or "-"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _summary(user: users.User) -> str:
    state = "enabled" if user.enabled else "DISABLED"
    return (
        f"{user.name}: {state}; queue {_yes(user.can_view_incidents)}, ingest {_yes(user.can_ingest)}; "
        f"grants {_grants_text(user.grants)}; {user.tokens} unrevoked token(s)"
    )


def _describe(change: users.Change) -> str:
    d = change.details
    match change.action:
        case AccessAction.PERMISSION_CHANGED:
            return f"{d['permission']} permission {'given' if d['new'] else 'taken away'}"
        case AccessAction.GRANT_SET:
            return f"grant {_scope_text(d['scope'])}={d['new']} ({'was ' + d['old'] if d['old'] else 'new'})"
        case AccessAction.GRANT_REMOVED:
            return f"grant {_scope_text(d['scope'])}={d['old']} removed"
        case AccessAction.USER_DISABLED:
            return f"disabled: their {d['tokens']} unrevoked token(s) stop working now"
        case AccessAction.USER_ENABLED:
            return f"enabled: their {d['tokens']} unrevoked token(s) work again"
    raise AssertionError(f"no message for {change.action}")


_ACCESS_RANK = {None: 0, Access.READ: 1, Access.WRITE: 2}


def _note(text: str) -> None:
    print(f"incidents: note: {text}", file=sys.stderr)


async def _report(conn: asyncpg.Connection, name: str, changes: list[users.Change]) -> users.User:
    """Print what changed and the user as they are now; returns them."""
    for change in changes:
        print(f"{name}: {_describe(change)}")
    if not changes:
        print(f"{name}: nothing changed")
    [user] = await users.list_users(conn=conn, names=[name])
    print(_summary(user))
    return user


async def _note_grants(conn: asyncpg.Connection, user: users.User, scopes: list[str]) -> None:
    """What an operator granting or revoking on these scopes might not expect."""
    if not user.enabled:
        _note(f"{user.name} is disabled: their grants take effect when they are enabled again")
    everywhere = user.grants.get(ALL_SCOPES)
    for scope in scopes:
        if scope != ALL_SCOPES and _ACCESS_RANK[everywhere] > _ACCESS_RANK[user.grants.get(scope)]:
            _note(
                f"{user.name} still has {everywhere} access to {_scope_text(scope)} through {ALL_SCOPES}={everywhere}"
            )
    for scope in await users.scopes_without_alerts(conn=conn, scopes=[s for s in scopes if s in user.grants]):
        _note(f"no alert has scope {_scope_text(scope)} yet (a spelling mistake?)")


def cmd_user_add(args, settings: Settings) -> None:
    grants = _parse_grants(args.grant)
    operator = _operator(args.by)

    async def run(conn: asyncpg.Connection) -> str:
        try:
            token = await users.add_user(
                conn=conn,
                name=args.name,
                grants=grants,
                can_view_incidents=args.queue,
                can_ingest=args.ingest,
                operator=operator,
            )
        except users.UserDisabled as exc:
            raise CliError(f"{exc}: enable the user first with `incidents user enable {args.name}`") from None
        [user] = await users.list_users(conn=conn, names=[args.name])
        print(_summary(user))
        await _note_grants(conn, user, [scope for scope, _ in grants])
        return token

    token = _on_database(settings, run)
    print(f"user {args.name}: token (shown once, keep it secret):")
    print(token)


def cmd_user_grant(args, settings: Settings) -> None:
    grants = _parse_grants(args.grants)
    operator = _operator(args.by)

    async def run(conn: asyncpg.Connection) -> None:
        changes = await users.set_grants(conn=conn, name=args.name, grants=grants, operator=operator)
        user = await _report(conn, args.name, changes)
        await _note_grants(conn, user, [scope for scope, _ in grants])

    _on_database(settings, run)


def cmd_user_revoke(args, settings: Settings) -> None:
    if not args.scopes:  # `user revoke NAME` used to revoke tokens: never guess which was meant
        raise CliError(
            "name the scopes whose grants to remove: incidents user revoke NAME SCOPE...;"
            " to revoke every token of a user: incidents token revoke NAME (nothing changed)"
        )
    operator = _operator(args.by)

    async def run(conn: asyncpg.Connection) -> None:
        changes = await users.remove_grants(conn=conn, name=args.name, scopes=args.scopes, operator=operator)
        user = await _report(conn, args.name, changes)
        await _note_grants(conn, user, args.scopes)
        if not user.grants:
            _note(f"{user.name} has no grants left: they can still sign in, and see no alerts and no incidents")

    _on_database(settings, run)


def cmd_user_set(args, settings: Settings) -> None:
    if args.queue is None and args.ingest is None:
        raise CliError("nothing to set: give --queue or --no-queue, --ingest or --no-ingest")
    operator = _operator(args.by)

    async def run(conn: asyncpg.Connection) -> None:
        changes = await users.set_permissions(
            conn=conn,
            name=args.name,
            can_view_incidents=args.queue,
            can_ingest=args.ingest,
            operator=operator,
        )
        await _report(conn, args.name, changes)

    _on_database(settings, run)


def _cmd_set_enabled(enabled: bool):
    def command(args, settings: Settings) -> None:
        operator = _operator(args.by)

        async def run(conn: asyncpg.Connection) -> None:
            changes = await users.set_enabled(conn=conn, name=args.name, enabled=enabled, operator=operator)
            await _report(conn, args.name, changes)

        _on_database(settings, run)

    return command


cmd_user_disable = _cmd_set_enabled(False)
cmd_user_enable = _cmd_set_enabled(True)


def cmd_user_list(args, settings: Settings) -> None:
    found = _on_database(settings, lambda conn: users.list_users(conn=conn, names=args.names))
    unknown = sorted(set(args.names) - {user.name for user in found})
    if unknown:
        raise CliError(f"no user named {', '.join(map(repr, unknown))}")
    rows = [("NAME", "ENABLED", "QUEUE", "INGEST", "TOKENS", "GRANTS")] + [
        (u.name, _yes(u.enabled), _yes(u.can_view_incidents), _yes(u.can_ingest), str(u.tokens), _grants_text(u.grants))
        for u in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[5]]))


def cmd_token_revoke(args, settings: Settings) -> None:
    operator = _operator(args.by)
    revoked = _on_database(settings, lambda conn: users.revoke_tokens(conn=conn, name=args.name, operator=operator))
    if revoked is None:  # a mistyped name in an emergency must not look like success
        raise CliError(f"no user named {args.name!r}; nothing was revoked")
    print(f"revoked {revoked} token(s) of {args.name}")


APOLLO_MANIFEST = "apollo-persisted-query-manifest"
# What a manifest's id of another length most likely is, and how its tool is told to use SHA-256.
OTHER_HASHES = {
    32: 'an MD5 (Relay\'s default: set "algorithm": "SHA256" in persistConfig of relay.config.json)',
    40: "a SHA-1 (GraphQL Code Generator's default: set persistedDocuments: { hashAlgorithm: 'sha256' })",
}


def _manifest_entries(path: Path) -> list[tuple[str, str | None, object]]:
    """(id, operation name or None, body) of each document of a manifest: Apollo's persisted
    query manifest, or an object of id -> text as Relay's compiler and GraphQL Code Generator
    write it."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CliError(f"cannot read the manifest {path}: {exc}") from None
    if not isinstance(manifest, dict):
        raise CliError(f"{path}: a manifest is a JSON object")
    if "format" in manifest:
        if manifest["format"] != APOLLO_MANIFEST or manifest.get("version") != 1:
            raise CliError(
                f"{path}: unknown manifest format {manifest['format']!r} (known: {APOLLO_MANIFEST} version 1)"
            )
        operations = manifest.get("operations")
        if isinstance(operations, dict):  # some generators key the operations by id
            operations = [{"id": key, **value} for key, value in operations.items() if isinstance(value, dict)]
        if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
            raise CliError(f"{path}: operations must be a list of objects with id, name, type and body")
        return [(str(o.get("id")), o.get("name"), o.get("body")) for o in operations]
    return [(key, None, value) for key, value in manifest.items()]


def _document_problem(document_id: str, body: object) -> str | None:
    """Why a manifest's entry cannot be registered, or None."""
    if not isinstance(body, str) or not body.strip():
        return "its body is not a GraphQL document's text"
    hex_ = document_id.removeprefix("sha256:").lower()
    if not re.fullmatch(r"[0-9a-f]+", hex_) or len(hex_) != 64:
        other = OTHER_HASHES.get(len(hex_)) if re.fullmatch(r"[0-9a-f]+", hex_) else None
        return f"the id is {other}, not a SHA-256" if other else "the id is not a SHA-256 in hexadecimal"
    try:
        actual = persisted.digest(body)
    except UnicodeEncodeError:
        return "its body is not valid Unicode"
    if actual.hex() != hex_:
        return "the id is not the SHA-256 of its body (was the body changed after the manifest was written?)"
    if not persisted.storable(body):
        return "its body holds a NUL character (U+0000), which the database cannot store: remove it"
    from graphql import GraphQLError, parse  # (here: see the imports above)

    try:
        parse(body, no_location=True)
    except GraphQLError as exc:
        return f"its body does not parse: {exc.message}"
    return None


def _operation_names(body: str) -> str:
    from graphql import GraphQLError, OperationDefinitionNode, parse  # (here: see the imports above)

    try:
        document = parse(body, no_location=True)
    except GraphQLError:
        return "?"
    names = [
        d.name.value if d.name else f"(anonymous {d.operation.value})"
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    ]
    return ", ".join(names) or "(fragments only)"


def cmd_documents_register(args, settings: Settings) -> None:
    path = Path(args.manifest)
    entries = _manifest_entries(path)
    if not entries:
        raise CliError(f"{path}: the manifest holds no documents; nothing was registered")
    problems = [(i, problem) for i, _, body in entries if (problem := _document_problem(i, body)) is not None]
    if problems:
        shown = "".join(f"\n  {document_id}: {problem}" for document_id, problem in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise CliError(
            f"{path}: {len(problems)} of {len(entries)} document(s) refused, nothing was registered"
            f" (ids must be the SHA-256 of the body, see docs/persisted-documents.md):{shown}{more}"
        )
    bodies = list(dict.fromkeys(body for _, _, body in entries))

    async def run(conn: asyncpg.Connection) -> list[persisted.Trusted]:
        async with conn.transaction():
            return await persisted.trust(conn=conn, bodies=bodies)

    outcomes = _on_database(settings, run)
    names = {body: name for _, name, body in entries if name}
    for body, outcome in zip(bodies, outcomes, strict=True):
        print(f"sha256:{persisted.digest(body).hex()}  {names.get(body) or _operation_names(body)}: {outcome}")
    counts = {kind: outcomes.count(kind) for kind in persisted.Trusted}
    print(
        f"{path}: {len(bodies)} trusted document(s): {counts[persisted.Trusted.NEW]} new,"
        f" {counts[persisted.Trusted.NOW_TRUSTED]} registered by APQ before and now trusted,"
        f" {counts[persisted.Trusted.ALREADY]} already trusted"
    )


def cmd_documents_list(args, settings: Settings) -> None:
    documents = _on_database(settings, lambda conn: persisted.list_documents(conn=conn, trusted_only=args.trusted))
    for d in documents:
        kind = "trusted" if d.trusted else f"apq (user {d.registered_by})"
        print(f"sha256:{d.sha256.hex()}  {d.created_at:%Y-%m-%d %H:%M}  {kind}  {_operation_names(d.body)}")
    print(f"{len(documents)} document(s)")


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


def uvicorn_options(settings: Settings, host: str, port: int) -> dict:
    """How `incidents serve` runs uvicorn (the benchmark's floor runs it the same way)."""
    options = dict(
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
        ws_max_size=settings.max_body_bytes,  # a WebSocket message is a request body too
        # No permessage-deflate: a live update is a few hundred bytes, sent to many subscribers, and
        # compressing each frame for each of them cost more CPU than the rest of its sending.
        ws_per_message_deflate=False,
        ws="app.ws:CoalescingWebSockets",  # a turn of the loop's frames in one write (app/ws.py)
        # No limit_concurrency: its plain-text 503 would bypass the app. The app sheds load itself
        # over MAX_CONCURRENT_REQUESTS requests in flight (app.server.ConcurrencyLimit).
    )
    log_config = uvicorn_log_config(settings)  # None: uvicorn's own (text)
    if log_config is not None:
        options["log_config"] = log_config
    return options


# prometheus_client's multiprocess mode: where every worker writes its metrics (app/metrics.py).
METRICS_DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def _metrics_directory():
    """PROMETHEUS_MULTIPROC_DIR for the server's processes, set before any of them imports
    prometheus_client. The operator's directory is emptied of an earlier run's files; without one,
    a fresh directory is made, and removed when the server stops."""
    given = os.environ.get(METRICS_DIRECTORY_VARIABLE)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for kind in ("counter", "gauge", "histogram", "summary"):  # prometheus_client's files only
            for stale in directory.glob(f"{kind}_*.db"):
                stale.unlink(missing_ok=True)
        yield
        return
    made = tempfile.mkdtemp(prefix="incidents-metrics-")
    os.environ[METRICS_DIRECTORY_VARIABLE] = made
    try:
        yield
    finally:
        os.environ.pop(METRICS_DIRECTORY_VARIABLE, None)
        shutil.rmtree(made, ignore_errors=True)


def cmd_serve(args, settings: Settings) -> None:
    workers = args.workers if args.workers is not None else settings.workers
    if workers < 1:
        raise CliError(f"--workers must be at least 1, got {workers}")
    url = _url(settings)
    asyncio.run(_migrate(url))
    demo_token = asyncio.run(_demo(url, args.host, args.port)) if args.demo else None
    settings = Settings(**{**settings.__dict__, "database_url": url})
    with _metrics_directory():
        _serve(settings, args, workers, demo_token)


def _serve(settings: Settings, args, workers: int, demo_token: str | None) -> None:
    import uvicorn

    options = uvicorn_options(settings, args.host, args.port)
    if workers == 1:
        from app.server import create_app

        # workers=1, not None: uvicorn would read WEB_CONCURRENCY itself.
        uvicorn.run(create_app(settings, demo_token=demo_token), workers=1, **options)
        return
    # Each worker process builds its own app and pool from the environment (app.server.app_from_env);
    # this one supervises them (and keeps the embedded PostgreSQL, if any, running). The demo
    # token reaches them only from here, never from the environment the command was given.
    os.environ["DATABASE_URL"] = settings.database_url
    os.environ.pop(DEMO_TOKEN_VARIABLE, None)
    if demo_token:
        os.environ[DEMO_TOKEN_VARIABLE] = demo_token
    without_resource_tracker()
    uvicorn.run("app.server:app_from_env", factory=True, workers=workers, **options)


def without_resource_tracker() -> None:
    """Spare a supervisor of uvicorn workers multiprocessing's resource tracker: a Python process
    of its own (13 MB resident, 2026-12-07) that the supervisor starts as it spawns its first
    worker (each worker is handed its descriptor), to unlink semaphores and shared memory that
    a crashed process leaves. Neither the workers nor the supervisor make any (the workers'
    metrics are prometheus_client's files, which the command removes itself: _metrics_directory);
    so the tracker is handed a descriptor that writes nowhere (not inherited: only the spawned
    workers are passed it), which it takes for a live tracker. CPython's private API: where it
    is not there, nothing is done and the tracker starts as before (tests/test_faults.py then
    fails). The benchmark's floor runs its workers the same way."""
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker, "_resource_tracker", None)
    if tracker is None or getattr(tracker, "_fd", None) is not None or not hasattr(tracker, "_check_alive"):
        return
    tracker._fd = os.open(os.devnull, os.O_WRONLY)


async def _demo(url: str, host: str, port: int) -> str | None:
    """Demo mode, for `make run`.

    On a first start with an empty database it loads demo data and creates the user `demo`, who
    may do everything. On later starts it replaces the demo user's tokens with a fresh one (tokens
    are shown once). A database that holds data but no demo user is left alone: demo mode never
    creates a write-everything user in a database it did not fill.
    """
    from app.domain import seed

    try:
        operator = _operator(None)
    except CliError:
        operator = SYSTEM_ACTOR
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
        try:
            async with conn.transaction():
                await users.revoke_tokens(conn=conn, name="demo", operator=operator)
                token = await users.add_user(
                    conn=conn,
                    name="demo",
                    grants=[("*", "write")],
                    can_view_incidents=True,
                    can_ingest=True,
                    operator=operator,
                )
        except users.UserDisabled:  # an operator disabled it: demo mode does not bring it back
            print("demo mode: the user demo is disabled, so no demo token was made", flush=True)
            return None
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
    sub.add_parser("migrate", help="apply db/ migrations (idempotent, ordered, recorded)").set_defaults(
        func=cmd_migrate
    )

    serve = sub.add_parser("serve", help="serve the API (default 127.0.0.1:8000)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--demo", action="store_true", help="load demo data into an empty database and print a demo token"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: WEB_CONCURRENCY, else 1); each has its own pool of DB_POOL_MAX connections",
    )
    serve.set_defaults(func=cmd_serve)

    # Every change to users is written to access_audit with who made it.
    by = argparse.ArgumentParser(add_help=False)
    by.add_argument(
        "--by",
        metavar="OPERATOR",
        help=f"who makes this change, for the audit (default: ${OPERATOR_VARIABLE}, else the OS user name)",
    )
    queue_flag = {"action": argparse.BooleanOptionalAction, "help": "the 'view incidents queue' permission"}
    ingest_flag = {"action": argparse.BooleanOptionalAction, "help": "the permission to call ingestAlerts"}

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    add = user.add_parser("add", parents=[by], help="create the user if new, print a fresh API token as the last line")
    add.add_argument("name")
    add.add_argument(
        "--grant",
        action="append",
        default=[],
        metavar="SCOPE=read|write",
        help="repeatable; '*=write' means every scope",
    )
    add.add_argument("--queue", **queue_flag)
    add.add_argument("--ingest", **ingest_flag)
    add.set_defaults(func=cmd_user_add)
    grant = user.add_parser("grant", parents=[by], help="add grants to a user or change their access")
    grant.add_argument("name")
    grant.add_argument("grants", nargs="+", metavar="SCOPE=read|write")
    grant.set_defaults(func=cmd_user_grant)
    revoke = user.add_parser("revoke", parents=[by], help="remove grants of a user")
    revoke.add_argument("name")
    revoke.add_argument("scopes", nargs="*", metavar="SCOPE")
    revoke.set_defaults(func=cmd_user_revoke)
    set_ = user.add_parser("set", parents=[by], help="give or take the queue and ingest permissions")
    set_.add_argument("name")
    set_.add_argument("--queue", **queue_flag)
    set_.add_argument("--ingest", **ingest_flag)
    set_.set_defaults(func=cmd_user_set)
    disable = user.add_parser("disable", parents=[by], help="every token of the user stops working at once")
    disable.add_argument("name")
    disable.set_defaults(func=cmd_user_disable)
    enable = user.add_parser("enable", parents=[by], help="a disabled user's unrevoked tokens work again")
    enable.add_argument("name")
    enable.set_defaults(func=cmd_user_enable)
    list_ = user.add_parser("list", help="users, disabled ones included, with permissions, grants and token counts")
    list_.add_argument("names", nargs="*", metavar="NAME")
    list_.set_defaults(func=cmd_user_list)

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(dest="token_command", required=True)
    token_revoke = token.add_parser("revoke", parents=[by], help="revoke every token of a user at once")
    token_revoke.add_argument("name")
    token_revoke.set_defaults(func=cmd_token_revoke)

    documents = sub.add_parser("documents", help="persisted GraphQL documents (docs/persisted-documents.md)")
    documents_sub = documents.add_subparsers(dest="documents_command", required=True)
    register = documents_sub.add_parser(
        "register", help="trust the documents of a manifest (Relay, GraphQL Code Generator or Apollo)"
    )
    register.add_argument("manifest", metavar="MANIFEST.json")
    register.set_defaults(func=cmd_documents_register)
    documents_list = documents_sub.add_parser("list", help="stored documents, oldest first")
    documents_list.add_argument("--trusted", action="store_true", help="only the trusted ones")
    documents_list.set_defaults(func=cmd_documents_list)

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
