"""The `incidents` command-line tool, run as a subprocess against the test database."""

from __future__ import annotations

import asyncio
import hashlib
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
from tests.conftest import _with_database

VIEWER = "{ viewer { name canViewIncidents canIngest grants { scope access } } }"
TIMEOUT = 120
MIGRATIONS = sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql"))


def _incidents_command() -> list[str]:
    """The installed `incidents` entry point next to this interpreter, else `python -m app.cli`."""
    entry = Path(sys.executable).parent / "incidents"
    return [str(entry)] if entry.exists() else [sys.executable, "-m", "app.cli"]


async def run_cli(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DATABASE_URL": database_url, **env}
    return await asyncio.to_thread(
        subprocess.run, [*_incidents_command(), *args], env=environment, capture_output=True,
        text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
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
    async def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        return await run_cli(database_url, *args, **env)

    return run


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


# --- user add / revoke ---------------------------------------------------------------------------


async def test_user_add_prints_a_token_as_last_line_that_authenticates(cli, client, pool):
    token = _token_of(ok(await cli("user", "add", "alice", "--grant", "*=write", "--ingest")))

    status, body = await _viewer(client, token)
    assert status == 200, body
    assert body["data"]["viewer"] == {
        "name": "alice", "canViewIncidents": True, "canIngest": True,
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
    dump = await pool.fetchval("SELECT concat_ws(' ', (SELECT string_agg(u::text, ' ') FROM users u),"
                               " (SELECT string_agg(g::text, ' ') FROM grants g))")
    assert all(secret not in (dump or "") for secret in secret_parts)


async def test_no_queue_makes_a_user_without_the_queue_permission(cli, client):
    token = _token_of(ok(await cli("user", "add", "bob", "--grant", "default=read", "--no-queue")))
    status, body = await _viewer(client, token)
    assert status == 200, body
    assert body["data"]["viewer"] == {
        "name": "bob", "canViewIncidents": False, "canIngest": False,
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


async def test_revoke_makes_every_token_of_the_user_stop_working(cli, client, pool):
    tokens = [_token_of(ok(await cli("user", "add", "dave", "--grant", "*=write"))) for _ in range(2)]
    other = _token_of(ok(await cli("user", "add", "erin", "--grant", "*=read")))
    for token in (*tokens, other):
        assert (await _viewer(client, token))[0] == 200

    assert "revoked 2 token(s) of dave" in ok(await cli("user", "revoke", "dave"))

    for token in tokens:
        status, body = await _viewer(client, token)
        assert status == 401, body
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert await users.viewer_for_token(conn=pool, token=token) is None
    assert (await _viewer(client, other))[0] == 200  # other users keep theirs
    # A new token for the revoked user works again.
    fresh = _token_of(ok(await cli("user", "add", "dave")))
    assert (await _viewer(client, fresh))[0] == 200


async def test_revoking_an_unknown_user_fails_clearly(cli):
    error = failed_cleanly(await cli("user", "revoke", "nobody"))
    assert "no user named 'nobody'" in error


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
    assert sorted(r["alert_id"] for r in arrivals) == [r["id"] for r in await pool.fetch("SELECT id FROM alerts ORDER BY id")]
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
    for args in (("migrate",), ("user", "add", "frank"), ("user", "revoke", "frank"), ("seed", "--incidents", "1")):
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
