"""The `incidents` command-line tool, run as a subprocess against the test database."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from app.db import MIGRATIONS_DIR
from app.domain import users
from tests.conftest import _with_database, alert_in

VIEWER = "{ viewer { name canViewIncidents canIngest grants { scope access } } }"
TIMEOUT = 120
MIGRATIONS = sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql"))


def _incidents_command() -> list[str]:
    """The installed `incidents` entry point next to this interpreter, else `python -m app.cli`."""
    entry = Path(sys.executable).parent / "incidents"
    return [str(entry)] if entry.exists() else [sys.executable, "-m", "app.cli"]


async def run_cli(database_url: str, *args: str, **env: str | None) -> subprocess.CompletedProcess:
    """Run `incidents` with the environment changed by env (a None value removes the variable)."""
    environment = {**os.environ, "DATABASE_URL": database_url, **env}
    environment = {key: value for key, value in environment.items() if value is not None}
    return await asyncio.to_thread(
        subprocess.run,
        [*_incidents_command(), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def failed_cleanly(result: subprocess.CompletedProcess) -> str:
    """A refused command: non-zero exit, a one-line reason on stderr, no stack trace."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    assert result.stderr.strip().startswith("incidents: "), result.stderr
    return result.stderr


@pytest.fixture
def cli(database_url: str):
    async def run(*args: str, **env: str | None) -> subprocess.CompletedProcess:
        return await run_cli(database_url, *args, **env)

    return run


@pytest.fixture(autouse=True)
async def empty_audit(pool):
    """conftest empties the other tables; the audit outlives users by design, so empty it here."""
    await pool.execute("TRUNCATE access_audit RESTART IDENTITY")


async def audit_entries(pool) -> list[tuple]:
    """access_audit as (operator, action, user, details), oldest first."""
    rows = await pool.fetch("SELECT operator, action::text, user_name, details FROM access_audit ORDER BY id")
    return [(r["operator"], r["action"], r["user_name"], json.loads(r["details"])) for r in rows]


async def state(pool) -> tuple:
    """Everything a change to users could touch, to show that a refused one touched nothing."""
    tables = ("users", "grants", "api_tokens", "access_audit")
    return tuple([[tuple(r) for r in await pool.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")] for table in tables])


@pytest.fixture
async def fresh_database(server_url: str):
    """An empty database of its own, never migrated, dropped afterwards."""
    name = f"incident_graph_cli_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(server_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _versions(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()


async def _viewer(client, token: str):
    response = await client.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.json()


def _token_of(output: str) -> str:
    token = output.strip().splitlines()[-1].strip()
    assert token.startswith(users.TOKEN_PREFIX) and " " not in token, output
    return token


# --- migrate -------------------------------------------------------------------------------------


async def test_migrate_applies_every_migration_once_and_records_it(fresh_database):
    first = ok(await run_cli(fresh_database, "migrate"))
    assert f"applied {len(MIGRATIONS)} migration(s)" in first
    for version in MIGRATIONS:
        assert version in first
    recorded = await _versions(fresh_database)
    assert [r["version"] for r in recorded] == MIGRATIONS

    second = ok(await run_cli(fresh_database, "migrate"))
    assert "applied 0 migration(s)" in second
    assert await _versions(fresh_database) == recorded  # same versions, same applied_at

    conn = await asyncpg.connect(fresh_database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM incidents") == 0  # the schema is there
    finally:
        await conn.close()


async def test_concurrent_migrations_of_a_fresh_database_take_turns(fresh_database):
    """Processes starting at once (several `incidents serve`, say) all succeed; one migrates."""
    results = await asyncio.gather(*(run_cli(fresh_database, "migrate") for _ in range(3)))
    outputs = [ok(r) for r in results]
    counts = sorted(int(re.search(r"applied (\d+) migration", out).group(1)) for out in outputs)
    assert counts == [0, 0, len(MIGRATIONS)]
    assert [r["version"] for r in await _versions(fresh_database)] == MIGRATIONS


async def test_migrate_on_a_migrated_database_applies_nothing(cli, database_url):
    before = await _versions(database_url)
    assert "applied 0 migration(s)" in ok(await cli("migrate"))
    assert await _versions(database_url) == before
    assert [r["version"] for r in before] == MIGRATIONS


# --- user add ------------------------------------------------------------------------------------


async def test_user_add_prints_a_token_as_last_line_that_authenticates(cli, client, pool):
    token = _token_of(ok(await cli("user", "add", "alice", "--grant", "*=write", "--ingest")))

    status, body = await _viewer(client, token)
    assert status == 200, body
    assert body["data"]["viewer"] == {
        "name": "alice",
        "canViewIncidents": True,
        "canIngest": True,
        "grants": [{"scope": "*", "access": "WRITE"}],
    }
    viewer = await users.viewer_for_token(conn=pool, token=token)
    assert viewer is not None and viewer.name == "alice" and viewer.can_write("any-scope")


async def test_tokens_are_random_and_stored_only_as_hashes(cli, client, pool):
    first = _token_of(ok(await cli("user", "add", "alice", "--grant", "default=read")))
    second = _token_of(ok(await cli("user", "add", "alice")))  # an existing user: a fresh token
    assert first != second
    for token in (first, second):
        assert (await _viewer(client, token))[0] == 200

    rows = await pool.fetch("SELECT t.*, t::text AS whole FROM api_tokens t ORDER BY id")
    assert [bytes(r["token_hash"]) for r in rows] == [hashlib.sha256(t.encode()).digest() for t in (first, second)]
    secret_parts = [t.removeprefix(users.TOKEN_PREFIX) for t in (first, second)]
    for row in rows:
        for secret in secret_parts:
            assert secret not in row["whole"]
            assert secret.encode() not in bytes(row["token_hash"])
    # Nowhere else either: no other table holds a copy.
    dump = await pool.fetchval(
        "SELECT concat_ws(' ', (SELECT string_agg(u::text, ' ') FROM users u),"
        " (SELECT string_agg(g::text, ' ') FROM grants g),"
        " (SELECT string_agg(a::text, ' ') FROM access_audit a))"
    )
    assert all(secret not in (dump or "") for secret in secret_parts)


async def test_no_queue_makes_a_user_without_the_queue_permission(cli, client):
    token = _token_of(ok(await cli("user", "add", "bob", "--grant", "default=read", "--no-queue")))
    status, body = await _viewer(client, token)
    assert status == 200, body
    assert body["data"]["viewer"] == {
        "name": "bob",
        "canViewIncidents": False,
        "canIngest": False,
        "grants": [{"scope": "default", "access": "READ"}],
    }


@pytest.mark.parametrize("grant", ["default", "default=admin", "=write", "default=", "*"])
async def test_malformed_grant_is_refused_with_a_clear_message(cli, pool, grant):
    error = failed_cleanly(await cli("user", "add", "carol", "--grant", grant))
    assert "SCOPE=read or SCOPE=write" in error
    assert repr(grant) in error
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


async def test_invalid_user_name_is_refused_with_a_clear_message(cli, pool):
    error = failed_cleanly(await cli("user", "add", "not a name!"))
    assert "user names" in error
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


async def test_user_add_writes_the_audit_with_the_operator(cli, pool):
    ok(await cli("user", "add", "alice", "--grant", "default=write", "--ingest", "--by", "jane"))
    ok(
        await cli(
            "user", "add", "alice", "--grant", "default=read", "--grant", "emea=read", "--no-queue", "--by", "jane"
        )
    )

    entries = await audit_entries(pool)
    token_ids = [r["id"] for r in await pool.fetch("SELECT id FROM api_tokens ORDER BY id")]
    assert entries == [
        ("jane", "user_created", "alice", {"queue": True, "ingest": True}),
        ("jane", "grant_set", "alice", {"scope": "default", "old": None, "new": "write"}),
        ("jane", "token_issued", "alice", {"token_id": token_ids[0]}),
        ("jane", "permission_changed", "alice", {"permission": "queue", "old": True, "new": False}),
        ("jane", "grant_set", "alice", {"scope": "default", "old": "write", "new": "read"}),
        ("jane", "grant_set", "alice", {"scope": "emea", "old": None, "new": "read"}),
        ("jane", "token_issued", "alice", {"token_id": token_ids[1]}),
    ]
    # One command, one moment: the entries carry their transaction's time.
    moments = [r["at"] for r in await pool.fetch("SELECT at FROM access_audit ORDER BY id")]
    assert moments[0] == moments[2] < moments[3] == moments[6]


async def test_user_add_of_a_disabled_user_is_refused_and_makes_no_token(cli, client, pool):
    token = _token_of(ok(await cli("user", "add", "mallory", "--grant", "*=write")))
    ok(await cli("user", "disable", "mallory"))
    before = await state(pool)

    error = failed_cleanly(await cli("user", "add", "mallory", "--grant", "*=write"))

    assert "'mallory' is disabled" in error and "incidents user enable mallory" in error
    assert await state(pool) == before  # no token, no grant, no audit entry
    assert (await _viewer(client, token))[0] == 401


# --- user grant / revoke -------------------------------------------------------------------------


async def test_user_grant_adds_and_changes_grants_and_keeps_the_others(cli, client, pool):
    token = _token_of(ok(await cli("user", "add", "alice", "--grant", "default=write", "--grant", "apac=read")))

    out = ok(await cli("user", "grant", "alice", "default=read", "emea=write", "apac=read", "--by", "jane"))

    assert "alice: grant default=read (was write)" in out
    assert "alice: grant emea=write (new)" in out
    assert "apac" not in out.split("alice: enabled")[0]  # unchanged, so not reported as a change
    assert "alice: enabled; queue yes, ingest no; grants apac=read default=read emea=write; 1 unrevoked token(s)" in out
    status, body = await _viewer(client, token)
    assert status == 200 and body["data"]["viewer"]["grants"] == [
        {"scope": "apac", "access": "READ"},
        {"scope": "default", "access": "READ"},
        {"scope": "emea", "access": "WRITE"},
    ]
    assert (await audit_entries(pool))[-2:] == [
        ("jane", "grant_set", "alice", {"scope": "default", "old": "write", "new": "read"}),
        ("jane", "grant_set", "alice", {"scope": "emea", "old": None, "new": "write"}),
    ]


async def test_user_grant_notes_what_an_operator_might_not_expect(cli, ingest):
    await ingest(alert_in("a", scope="default"))
    ok(await cli("user", "add", "alice", "--grant", "*=write"))

    result = await cli("user", "grant", "alice", "default=read", "emae=read")

    ok(result)
    assert "alice still has write access to default through *=write" in result.stderr
    assert "no alert has scope emae yet" in result.stderr
    assert "no alert has scope default" not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (("nobody", "default=read"), "no user named 'nobody'"),
        (("alice", "default=admin"), "SCOPE=read or SCOPE=write"),
        (("alice", "default=read", "default=write"), "scope 'default' is named twice"),
        (("alice", "x" * 201 + "=read"), "scopes are at most 200 characters"),
    ],
)
async def test_user_grant_refused_changes_nothing(cli, pool, args, message):
    ok(await cli("user", "add", "alice", "--grant", "default=write"))
    before = await state(pool)

    error = failed_cleanly(await cli("user", "grant", *args))

    assert message in error
    assert await state(pool) == before


async def test_user_revoke_removes_grants_and_keeps_the_others(cli, client, pool):
    token = _token_of(
        ok(
            await cli(
                "user", "add", "alice", "--grant", "default=write", "--grant", "emea=read", "--grant", "apac=read"
            )
        )
    )

    out = ok(await cli("user", "revoke", "alice", "default", "apac", INCIDENTS_OPERATOR="jane"))

    assert "alice: grant default=write removed" in out and "alice: grant apac=read removed" in out
    status, body = await _viewer(client, token)
    assert status == 200 and body["data"]["viewer"]["grants"] == [{"scope": "emea", "access": "READ"}]
    assert (await audit_entries(pool))[-2:] == [
        ("jane", "grant_removed", "alice", {"scope": "default", "old": "write"}),
        ("jane", "grant_removed", "alice", {"scope": "apac", "old": "read"}),
    ]


async def test_revoking_the_last_grant_leaves_a_user_who_signs_in_and_reads_nothing(cli, client):
    token = _token_of(ok(await cli("user", "add", "alice", "--grant", "default=read")))

    result = await cli("user", "revoke", "alice", "default")

    assert "grants -;" in ok(result)
    assert "alice has no grants left" in result.stderr
    status, body = await _viewer(client, token)
    assert status == 200 and body["data"]["viewer"]["grants"] == []


async def test_revoking_a_grant_the_user_does_not_have_changes_nothing(cli, pool):
    ok(await cli("user", "add", "alice", "--grant", "default=write", "--grant", "emea=read"))
    before = await state(pool)

    error = failed_cleanly(await cli("user", "revoke", "alice", "default", "emae"))

    assert "user 'alice' has no grant on 'emae' (their grants: default=write, emea=read)" in error
    assert await state(pool) == before  # default stays too: all or nothing


async def test_revoking_from_an_unknown_user_changes_nothing(cli, pool):
    ok(await cli("user", "add", "alice", "--grant", "default=write"))
    before = await state(pool)
    error = failed_cleanly(await cli("user", "revoke", "nobody", "default"))
    assert "no user named 'nobody'" in error
    assert await state(pool) == before


async def test_user_revoke_without_a_scope_is_refused_and_points_to_token_revoke(cli, client, pool):
    """`user revoke NAME` used to revoke tokens: it now says where that went, and changes nothing."""
    token = _token_of(ok(await cli("user", "add", "dave", "--grant", "*=write")))
    before = await state(pool)

    error = failed_cleanly(await cli("user", "revoke", "dave"))

    assert "incidents token revoke NAME" in error
    assert await state(pool) == before
    assert (await _viewer(client, token))[0] == 200


# --- user set ------------------------------------------------------------------------------------


async def test_user_set_gives_and_takes_permissions(cli, client, pool):
    token = _token_of(ok(await cli("user", "add", "sensor", "--grant", "default=read")))

    out = ok(await cli("user", "set", "sensor", "--no-queue", "--ingest", "--by", "jane"))

    assert "sensor: queue permission taken away" in out and "sensor: ingest permission given" in out
    viewer = (await _viewer(client, token))[1]["data"]["viewer"]
    assert (viewer["canViewIncidents"], viewer["canIngest"]) == (False, True)
    assert (await audit_entries(pool))[-2:] == [
        ("jane", "permission_changed", "sensor", {"permission": "queue", "old": True, "new": False}),
        ("jane", "permission_changed", "sensor", {"permission": "ingest", "old": False, "new": True}),
    ]

    # Setting what is already so changes nothing and writes nothing.
    entries = await audit_entries(pool)
    assert "sensor: nothing changed" in ok(await cli("user", "set", "sensor", "--no-queue"))
    assert await audit_entries(pool) == entries
    ok(await cli("user", "set", "sensor", "--queue", "--no-ingest"))
    viewer = (await _viewer(client, token))[1]["data"]["viewer"]
    assert (viewer["canViewIncidents"], viewer["canIngest"]) == (True, False)


@pytest.mark.parametrize(
    "args, message",
    [
        (("sensor",), "nothing to set"),
        (("nobody", "--ingest"), "no user named 'nobody'"),
    ],
)
async def test_user_set_refused_changes_nothing(cli, pool, args, message):
    ok(await cli("user", "add", "sensor"))
    before = await state(pool)
    assert message in failed_cleanly(await cli("user", "set", *args))
    assert await state(pool) == before


# --- user disable / enable -----------------------------------------------------------------------


async def test_disable_stops_every_token_and_only_enable_brings_them_back(cli, client, pool):
    tokens = [_token_of(ok(await cli("user", "add", "dave", "--grant", "*=write"))) for _ in range(2)]
    other = _token_of(ok(await cli("user", "add", "erin", "--grant", "*=read")))

    out = ok(await cli("user", "disable", "dave", "--by", "jane"))

    assert "dave: disabled: their 2 unrevoked token(s) stop working now" in out
    for token in tokens:
        assert (await _viewer(client, token))[0] == 401
        assert await users.viewer_for_token(conn=pool, token=token) is None
    assert (await _viewer(client, other))[0] == 200
    assert "dave: nothing changed" in ok(await cli("user", "disable", "dave"))  # again: idempotent

    out = ok(await cli("user", "enable", "dave", "--by", "jane"))

    assert "dave: enabled: their 2 unrevoked token(s) work again" in out
    for token in tokens:
        assert (await _viewer(client, token))[0] == 200
    assert [e for e in await audit_entries(pool) if e[1] in ("user_disabled", "user_enabled")] == [
        ("jane", "user_disabled", "dave", {"tokens": 2}),
        ("jane", "user_enabled", "dave", {"tokens": 2}),
    ]


async def test_a_disabled_user_can_still_be_changed_and_stays_disabled(cli, client, pool):
    token = _token_of(ok(await cli("user", "add", "dave", "--grant", "default=write")))
    ok(await cli("user", "disable", "dave"))

    result = await cli("user", "grant", "dave", "default=read")

    assert "dave: DISABLED;" in ok(result)
    assert "dave is disabled" in result.stderr
    assert (await _viewer(client, token))[0] == 401
    ok(await cli("user", "enable", "dave"))
    assert (await _viewer(client, token))[1]["data"]["viewer"]["grants"] == [{"scope": "default", "access": "READ"}]


@pytest.mark.parametrize("command", ["disable", "enable"])
async def test_disabling_or_enabling_an_unknown_user_fails_clearly(cli, pool, command):
    before = await state(pool)
    assert "no user named 'nobody'" in failed_cleanly(await cli("user", command, "nobody"))
    assert await state(pool) == before


# --- user list -----------------------------------------------------------------------------------


async def test_user_list_shows_every_user_with_permissions_grants_and_token_counts(cli, pool):
    tokens = [
        _token_of(ok(await cli("user", "add", "erin", "--grant", "default=read", "--grant", "EMEA SOC=write")))
        for _ in range(2)
    ]
    tokens.append(_token_of(ok(await cli("user", "add", "sensor", "--no-queue", "--ingest"))))
    tokens.append(_token_of(ok(await cli("user", "add", "dave", "--grant", "*=write"))))
    ok(await cli("user", "disable", "dave"))
    ok(await cli("token", "revoke", "sensor"))

    out = ok(await cli("user", "list"))

    assert [line.split() for line in out.splitlines()] == [
        ["NAME", "ENABLED", "QUEUE", "INGEST", "TOKENS", "GRANTS"],
        ["dave", "no", "yes", "no", "1", "*=write"],
        ["erin", "yes", "yes", "no", "2", '"EMEA', 'SOC"=write', "default=read"],
        ["sensor", "yes", "no", "yes", "0", "-"],
    ]
    for token in tokens:
        assert token.removeprefix(users.TOKEN_PREFIX) not in out
    assert [line.split()[0] for line in ok(await cli("user", "list", "sensor", "dave")).splitlines()] == [
        "NAME",
        "dave",
        "sensor",
    ]


async def test_user_list_of_an_unknown_user_fails_clearly(cli):
    ok(await cli("user", "add", "erin"))
    assert "no user named 'nobody'" in failed_cleanly(await cli("user", "list", "erin", "nobody"))


# --- token revoke --------------------------------------------------------------------------------


async def test_token_revoke_makes_every_token_of_the_user_stop_working(cli, client, pool):
    tokens = [_token_of(ok(await cli("user", "add", "dave", "--grant", "*=write"))) for _ in range(2)]
    other = _token_of(ok(await cli("user", "add", "erin", "--grant", "*=read")))
    for token in (*tokens, other):
        assert (await _viewer(client, token))[0] == 200

    assert "revoked 2 token(s) of dave" in ok(await cli("token", "revoke", "dave", "--by", "jane"))

    for token in tokens:
        status, body = await _viewer(client, token)
        assert status == 401, body
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert await users.viewer_for_token(conn=pool, token=token) is None
    assert (await _viewer(client, other))[0] == 200  # other users keep theirs
    assert (await audit_entries(pool))[-1] == ("jane", "tokens_revoked", "dave", {"tokens": 2})
    # A new token for the revoked user works again.
    fresh = _token_of(ok(await cli("user", "add", "dave")))
    assert (await _viewer(client, fresh))[0] == 200


async def test_revoking_the_tokens_of_an_unknown_user_fails_clearly(cli):
    error = failed_cleanly(await cli("token", "revoke", "nobody"))
    assert "no user named 'nobody'" in error


# --- the operator --------------------------------------------------------------------------------


async def test_the_operator_is_by_else_the_environment_else_the_os_user(cli, pool):
    ok(await cli("user", "add", "alice", "--by", "jane", INCIDENTS_OPERATOR="ops-bot"))
    ok(await cli("user", "set", "alice", "--ingest", INCIDENTS_OPERATOR="ops-bot"))
    ok(await cli("user", "disable", "alice", INCIDENTS_OPERATOR=None, LOGNAME="root-on-host"))

    assert [(e[0], e[1]) for e in await audit_entries(pool)] == [
        ("jane", "user_created"),
        ("jane", "token_issued"),
        ("ops-bot", "permission_changed"),
        ("root-on-host", "user_disabled"),
    ]
    who = await pool.fetchval("SELECT DISTINCT database_user FROM access_audit")
    assert who == await pool.fetchval("SELECT session_user")


@pytest.mark.parametrize("operator", ["   ", "jane\nroot", "x" * 201])
async def test_a_malformed_operator_is_refused_before_anything_changes(cli, pool, operator):
    ok(await cli("user", "add", "alice", "--grant", "default=write"))
    before = await state(pool)
    for args, env in [
        (("user", "revoke", "alice", "default", "--by", operator), {}),
        (("user", "disable", "alice"), {"INCIDENTS_OPERATOR": operator}),
        (("token", "revoke", "alice"), {"INCIDENTS_OPERATOR": None, "LOGNAME": operator}),
    ]:
        assert "the operator must be 1-200 characters" in failed_cleanly(await cli(*args, **env))
    assert "the operator must be" in failed_cleanly(await cli("user", "disable", "alice", "--by", ""))
    assert await state(pool) == before


async def test_demo_mode_does_not_bring_back_a_disabled_demo_user(cli, database_url, pool, capsys):
    from app import cli as incidents

    ok(await cli("user", "add", "demo", "--grant", "*=write"))
    ok(await cli("user", "disable", "demo"))
    before = await state(pool)

    assert await incidents._demo(database_url, "127.0.0.1", 8000) is None

    assert "the user demo is disabled, so no demo token was made" in capsys.readouterr().out
    assert await state(pool) == before


# --- seed ----------------------------------------------------------------------------------------


async def test_seed_builds_correlated_incidents_through_ingestion(cli, pool):
    out = ok(await cli("seed", "--incidents", "20"))
    match = re.search(r"seeded (\d+) alerts into (\d+) incidents", out)
    assert match, out
    n_alerts, n_incidents = int(match.group(1)), int(match.group(2))
    assert n_alerts == await pool.fetchval("SELECT count(*) FROM alerts")
    assert n_incidents == await pool.fetchval("SELECT count(*) FROM incidents")
    assert 0 < n_incidents <= n_alerts

    # Every alert got exactly one entry by the system in its incident's log: INCIDENT_CREATED
    # for the alert that opened the incident, ALERT_CORRELATED for each alert that joined it.
    arrivals = await pool.fetch(
        "SELECT l.alert_id, l.kind::text AS kind, l.incident_id, a.incident_id AS now_in, l.actor"
        " FROM activity_log l JOIN alerts a ON a.id = l.alert_id"
        " WHERE l.kind IN ('alert_correlated', 'incident_created')"
    )
    assert sorted(r["alert_id"] for r in arrivals) == [
        r["id"] for r in await pool.fetch("SELECT id FROM alerts ORDER BY id")
    ]
    assert all(r["incident_id"] == r["now_in"] and r["actor"] == "system" for r in arrivals)
    assert sum(r["kind"] == "incident_created" for r in arrivals) == n_incidents
    assert sum(r["kind"] == "alert_correlated" for r in arrivals) == n_alerts - n_incidents

    # Correlation grouped alerts: at least one incident has several, and the counts add up.
    counts = await pool.fetch(
        "SELECT i.id, i.alert_count, count(a.id)::int AS n FROM incidents i"
        " LEFT JOIN alerts a ON a.incident_id = i.id GROUP BY i.id"
    )
    assert all(r["alert_count"] == r["n"] for r in counts)
    assert any(r["n"] > 1 for r in counts)


# --- operator errors -----------------------------------------------------------------------------


async def test_unreachable_database_is_a_clear_error_without_the_password(cli):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://someone:s3cr3t-pw@127.0.0.1:{port}/nowhere"
    for args in (
        ("migrate",),
        ("user", "add", "frank"),
        ("user", "grant", "frank", "x=read"),
        ("user", "revoke", "frank", "x"),
        ("user", "set", "frank", "--ingest"),
        ("user", "disable", "frank"),
        ("user", "enable", "frank"),
        ("user", "list"),
        ("token", "revoke", "frank"),
        ("seed", "--incidents", "1"),
    ):
        error = failed_cleanly(await run_cli(url, *args))
        assert "cannot connect to the database" in error and f"127.0.0.1:{port}/nowhere" in error
        assert "s3cr3t-pw" not in error


async def test_unknown_database_is_a_clear_error(server_url):
    url = _with_database(server_url, f"missing_{uuid.uuid4().hex[:8]}")
    error = failed_cleanly(await run_cli(url, "migrate"))
    assert "cannot connect to the database" in error and "does not exist" in error


async def test_bad_setting_is_a_clear_error(cli):
    error = failed_cleanly(await cli("migrate", DB_POOL_MAX="lots"))
    assert "DB_POOL_MAX" in error
