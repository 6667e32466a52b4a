"""Test fixtures: a real PostgreSQL database for the whole run, emptied before each test.

The server is the embedded one under .data/test-pg, or the one TEST_DATABASE_URL names; either
way the suite creates its own database there and drops it at the end.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from app import db
from app.config import ROOT, Settings
from app.domain import evidence, ids, incidents, ingestion, users
from app.domain.ingestion import AlertIn
from app.domain.periodic import Periodic
from app.domain.viewers import Viewer
from app.server import create_app

TABLES = (
    "access_audit, idempotency_keys, activity_log, move_incidents, move_items, moves, alert_entities, incident_evidence, incident_evidence_text, alert_titles, alerts,"
    " incidents, api_tokens, grants, users, persisted_documents"
)


def inc(number: int) -> str:
    """The API's id of incident `number` ("inc_12")."""
    return ids.typed_id(ids.INCIDENT, number)


def alert_id(number: int) -> str:
    """The API's id of alert `number` ("alert_12")."""
    return ids.typed_id(ids.ALERT, number)


def move_id(number: int) -> str:
    """The API's id of move `number` ("move_12")."""
    return ids.typed_id(ids.MOVE, number)


def log_id(number: int) -> str:
    """The API's id of activity log entry `number` ("log_12")."""
    return ids.typed_id(ids.LOG_ENTRY, number)


def number_of(node_id: str) -> int:
    """The number in an id the API gave out ("inc_12" is 12); fails on anything else."""
    parsed = ids.parse_typed(node_id)
    assert parsed is not None and ids.typed_id(*parsed) == node_id, node_id
    return parsed[1]


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def server_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return db.embedded_database_url(Path(os.environ.get("TEST_DATA_DIR", ROOT / ".data" / "test")))


@pytest.fixture(scope="session")
async def database_url(server_url: str):
    name = f"incident_graph_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(server_url, name)
    try:
        conn = await asyncpg.connect(url)
        await db.migrate(conn)
        await conn.close()
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(**{**Settings.from_env().__dict__, "database_url": database_url})


@pytest.fixture(scope="session")
async def pool(database_url: str, settings: Settings):
    p = await db.create_pool(database_url, settings)
    yield p
    await p.close()


@pytest.fixture(autouse=True)
async def clean(request, pool: asyncpg.Pool):
    await pool.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    yield


@pytest.fixture(autouse=True)
def fresh_estimates(monkeypatch):
    """What a process reads once in a while to choose a search's way (the evidence sample, the
    table's size), read afresh in each test rather than kept from an earlier test's database:
    the way then follows this test's data, whatever ran before it."""
    monkeypatch.setattr(evidence, "_sample", Periodic(evidence.SAMPLE_TTL, evidence._read_sample))
    monkeypatch.setattr(incidents, "_table_rows", Periodic(incidents.TABLE_ROWS_SECONDS, incidents._read_table_rows))


@pytest.fixture(params=[True, False], ids=["lean-path", "graphql-core"])
def lean_path(request) -> bool:
    """Every behavioural test runs on both execution paths: the lean one (app/api/lean/), which
    takes what it knows and leaves the rest to graphql-core, and graphql-core alone."""
    return request.param


@pytest.fixture
async def client(pool: asyncpg.Pool, settings: Settings, lean_path: bool):
    app = create_app(Settings(**{**settings.__dict__, "lean_path": lean_path}), pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


@dataclass
class Api:
    """A GraphQL client acting as one user."""

    client: httpx.AsyncClient
    token: str

    async def post(self, query: str, variables: dict | None = None) -> httpx.Response:
        return await self.client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {self.token}"},
        )

    async def __call__(self, query: str, **variables) -> dict:
        response = await self.post(query, variables)
        body = response.json()
        assert response.status_code == 200, body
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def errors(self, query: str, **variables) -> list[dict]:
        body = (await self.post(query, variables)).json()
        assert body.get("errors"), body
        return body["errors"]


@pytest.fixture
def make_user(pool: asyncpg.Pool, client: httpx.AsyncClient):
    async def make(name: str, *grants: str, queue: bool = True, ingest: bool = False) -> Api:
        async with pool.acquire() as conn:
            token = await users.add_user(
                conn=conn,
                name=name,
                grants=[users.parse_grant(g) for g in grants],
                can_view_incidents=queue,
                can_ingest=ingest,
            )
        return Api(client, token)

    return make


@pytest.fixture
async def admin(make_user) -> Api:
    """A user who may read and write everything and ingest."""
    return await make_user("admin", "*=write", ingest=True)


NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def alert_in(
    external_id: str,
    title: str | None = None,
    *,
    severity: str = "medium",
    category: str = "Execution",
    scope: str = "default",
    minutes: float = 0,
    entities: list[tuple[str, str]] | None = None,
) -> AlertIn:
    """An alert as a detection source would send it, detected `minutes` after NOW."""
    return AlertIn(
        external_id=external_id,
        title=title or f"Alert {external_id}",
        severity=severity,
        category=category,
        scope=scope,
        detected_at=NOW + timedelta(minutes=minutes),
        entities=entities if entities is not None else [("device", f"host-{external_id}")],
    )


@pytest.fixture
def ingest(pool: asyncpg.Pool):
    """Ingest alerts through the domain, as a detection source; returns the stored alerts."""
    source = Viewer(id=0, name="source", can_view_incidents=True, can_ingest=True, grants={"*": "write"})

    async def run(
        *alerts: AlertIn,
        window_hours: float = 24,
        across_scopes: bool = False,
        max_alerts: int = ingestion.Correlation.max_alerts,
    ):
        """across_scopes: correlate across scopes (CORRELATION_ACROSS_SCOPES), for set-ups that
        need incidents holding alerts of several scopes."""
        async with pool.acquire() as conn, conn.transaction():
            result = await ingestion.ingest_alerts(
                conn=conn,
                viewer=source,
                batch=list(alerts),
                correlation=ingestion.Correlation(timedelta(hours=window_hours), across_scopes, max_alerts),
            )
        return result.alerts

    return run


@pytest.fixture
def lean_answers(monkeypatch):
    """Records what the lean path answered (None: it left the request to graphql-core)."""
    from app.api.lean import LeanPath

    answers: list[bytes | None] = []
    execute = LeanPath.execute

    async def recording(self, body, ctx):
        answer = await execute(self, body, ctx)
        answers.append(answer)
        return answer

    monkeypatch.setattr(LeanPath, "execute", recording)
    return answers


# An extension the lean path does not know: a request carrying it is left to graphql-core.
TO_GRAPHQL_CORE = {"leaveToGraphqlCore": True}


async def on_both_paths(api: Api, lean_answers: list, query: str, variables: dict) -> tuple[bytes, bytes]:
    """The answer as the app gives it, then graphql-core's for the same request (needs the
    lean_answers fixture: it checks graphql-core did answer the second)."""
    headers = {"Authorization": f"Bearer {api.token}"}
    first = await api.client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    answered = len(lean_answers)
    body = {"query": query, "variables": variables, "extensions": TO_GRAPHQL_CORE}
    normal = await api.client.post("/graphql", json=body, headers=headers)
    assert lean_answers[answered:] == [None], "graphql-core did not answer the second request"
    assert first.status_code == normal.status_code == 200
    assert first.headers["content-type"] == normal.headers["content-type"]
    return first.content, normal.content


async def waiting_backend_xid(pool: asyncpg.Pool, holder: asyncpg.Connection) -> str | None:
    """The transaction id of the backend of this database waiting for a lock (other than holder's),
    once there is one: None when it waits without one."""
    async with asyncio.timeout(10):
        while True:
            await asyncio.sleep(0.05)
            found = await pool.fetchrow(
                "SELECT backend_xid::text AS xid FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database() AND pid <> $1",
                holder.get_server_pid(),
            )
            if found is not None:
                return found["xid"]
