"""Liveness (/healthz) and readiness (/readyz), as an orchestrator's probes see them."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import asyncpg
import httpx
import pytest

from app.config import Settings
from app.domain import users
from app.server import create_app
from tests.conftest import alert_id, alert_in, inc
from tests.live import Server, fresh_database
from tests.proxy import PgProxy

BOUND = 20
LINK = """mutation($ids: [ID!]!, $to: ID!) {
  linkAlerts(alertIds: $ids, target: {existingIncidentId: $to}, comment: "same story") { errors { code } }
}"""


@pytest.fixture
async def token(pool) -> str:
    async with pool.acquire() as conn:
        return await users.add_user(conn=conn, name="admin", grants=[("*", "write")])


async def _waiting_on_a_lock(pool, count: int = 1) -> bool:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        if waiting >= count:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_busy_pool_is_alive_and_ready(database_url, pool, token, ingest, tmp_path):
    """Given a server whose only pool connection is held by a move waiting on a row lock, and a
    second request queued behind it, both probes still answer 200 at once."""
    a, b = await ingest(alert_in("a"), alert_in("b"))
    env = {"DB_POOL_MIN": "1", "DB_POOL_MAX": "1", "DB_POOL_TIMEOUT": "15"}
    server = Server(database_url, tmp_path / "server.log", env=env)
    headers = {"Authorization": f"Bearer {token}"}
    move = {"query": LINK, "variables": {"ids": [alert_id(a.id)], "to": inc(b.incident_id)}}
    try:
        await asyncio.to_thread(server.wait_healthy)
        async with httpx.AsyncClient(base_url=server.url, timeout=BOUND, trust_env=False) as c:
            async with pool.acquire() as blocker, blocker.transaction():
                await blocker.execute("SELECT 1 FROM alerts WHERE id = $1 FOR UPDATE", a.id)
                held = asyncio.create_task(c.post("/graphql", json=move, headers=headers))
                assert await _waiting_on_a_lock(pool), "the move never reached the database"
                queued = asyncio.create_task(c.post("/graphql", json={"query": "{ viewer { name } }"}, headers=headers))
                await asyncio.sleep(1.2)  # queued for the pool; the gauges sampled

                started = time.monotonic()
                alive, ready = await c.get("/healthz"), await c.get("/readyz")
                assert (alive.status_code, ready.status_code) == (200, 200), ready.text
                assert ready.json() == {"status": "ready"}
                assert time.monotonic() - started < 2
                scraped = (await c.get("/metrics")).text
                assert "incident_graph_db_pool_in_use 1.0" in scraped
                assert "incident_graph_db_pool_waiting 1.0" in scraped
                assert not queued.done()
            assert (await held).status_code == 200
            assert (await queued).json()["data"]["viewer"]["name"] == "admin"
    finally:
        server.stop()


async def test_without_its_database_a_server_is_alive_but_not_ready(database_url, token, tmp_path):
    """Given a server that reaches PostgreSQL through a proxy, when the proxy goes away, /readyz
    says 503 and why, and /healthz stays 200: restarting the process would not help."""
    proxy = await PgProxy.start(database_url)
    server = Server(proxy.url, tmp_path / "server.log")
    try:
        await asyncio.to_thread(server.wait_healthy)
        async with httpx.AsyncClient(base_url=server.url, timeout=BOUND, trust_env=False) as c:
            assert (await c.get("/readyz")).status_code == 200
            await proxy.close()
            started = time.monotonic()
            ready = await c.get("/readyz")
            assert time.monotonic() - started < 3  # within the readiness timeout (2 s)
            assert ready.status_code == 503
            assert ready.json()["status"] == "unavailable"
            assert "database" in ready.json()["reason"]
            assert (await c.get("/healthz")).json() == {"status": "ok"}
    finally:
        server.stop()
        await proxy.close()


async def test_a_database_without_the_migrations_is_not_ready(server_url, pool, settings):
    url = await fresh_database(server_url, "incident_graph_unmigrated")
    try:
        app = create_app(Settings(**{**settings.__dict__, "database_url": url}), pool=pool)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            ready = await c.get("/readyz")
        await app.state.readiness.close()
        assert ready.status_code == 503
        assert ready.json()["reason"].startswith("migrations not applied")
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute('DROP DATABASE IF EXISTS "incident_graph_unmigrated" WITH (FORCE)')
        finally:
            await admin.close()


async def _asgi(app, path: str, method: str = "GET", headers=(), receive=None) -> tuple[int, bytes]:
    """One request straight through the ASGI app: its status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": list(headers),
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "root_path": "",
    }
    sent = []

    async def whole_body():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive or whole_body, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_a_full_process_still_answers_its_probes_and_metrics(pool, settings):
    """MAX_CONCURRENT_REQUESTS counts /graphql only: at the limit, /graphql is 503 SERVER_BUSY while
    /healthz and /metrics answer, so a liveness probe never restarts a busy server."""
    async with pool.acquire() as conn:
        token = await users.add_user(conn=conn, name="admin", grants=[("*", "write")])
    app = create_app(dataclasses.replace(settings, max_concurrency=1), pool=pool)
    release = asyncio.Event()

    async def slow_body():
        await release.wait()
        return {"type": "http.request", "body": b'{"query": "{ viewer { name } }"}', "more_body": False}

    headers = [(b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json")]
    in_flight = asyncio.create_task(_asgi(app, "/graphql", "POST", headers, slow_body))
    await asyncio.sleep(0.2)
    try:
        busy, _ = await _asgi(app, "/graphql", "POST", headers)
        alive, _ = await _asgi(app, "/healthz")
        scraped, _ = await _asgi(app, "/metrics")
    finally:
        release.set()
        await in_flight

    assert (busy, alive, scraped) == (503, 200, 200)


async def test_a_metrics_token_with_other_characters_is_refused_not_an_error(pool, settings):
    app = create_app(dataclasses.replace(settings, metrics="token", metrics_token="s3cret"), pool=pool)

    status, _ = await _asgi(app, "/metrics", headers=[(b"authorization", b"Bearer \xe9")])
    allowed, _ = await _asgi(app, "/metrics", headers=[(b"authorization", b"Bearer s3cret")])

    assert (status, allowed) == (401, 200)
