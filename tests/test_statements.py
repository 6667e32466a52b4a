"""How many SQL statements a request runs: it must not grow with list sizes, and it must not
tell an unreadable alert from a nonexistent one."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from app import db
from app.server import create_app
from tests.conftest import alert_id, alert_in, inc
from tests.documents import DETAIL


@pytest.fixture
async def recorded(database_url, settings):
    """An app whose pool records every statement the app sends; yields (client, statements)."""
    statements: list[str] = []

    async def record(conn: asyncpg.Connection) -> None:
        await db.install_session_functions(conn)  # as the app's pool does
        conn.add_query_logger(lambda q: ours(q.query) and statements.append(q.query))

    pool = await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=4,
        init=record,
        reset=db.keep_session,
        server_settings=db.SERVER_SETTINGS,
    )
    app = create_app(settings, pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client, statements
    await pool.close()


@pytest.fixture
def counted(recorded, admin):
    """Runs a query as admin and returns the statements it sent."""
    client, statements = recorded

    async def run(query: str, **variables) -> list[str]:
        statements.clear()
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {admin.token}"},
        )
        assert response.status_code == 200 and "errors" not in response.json(), response.text
        return list(statements)

    return run


def ours(statement: str) -> bool:
    """Statements the app sends, not asyncpg's own type introspection on a fresh connection."""
    return "typeinfo_tree" not in statement and "set_config('jit'" not in statement


async def _incident_with(ingest, admin, name: str, n_alerts: int, n_moves: int) -> str:
    alerts = await ingest(
        *[
            alert_in(
                f"{name}-{i}", f"{name} alert {i}", minutes=i, entities=[("device", f"{name}-host"), ("user", f"u{i}")]
            )
            for i in range(n_alerts)
        ]
    )
    incident = alerts[0].incident_id
    for i in range(n_moves):  # moves write log entries that name other incidents and alerts
        (other,) = await ingest(alert_in(f"{name}-extra-{i}", minutes=100 + i))
        await admin(
            'mutation($ids: [ID!]!, $to: ID!) { linkAlerts(alertIds: $ids, target: {existingIncidentId: $to}, comment: "c") { errors { code } } }',
            ids=[alert_id(other.id)],
            to=inc(incident),
        )
    return inc(incident)


async def test_incident_detail_statement_count_does_not_depend_on_list_sizes(counted, ingest, admin):
    small = await _incident_with(ingest, admin, "small", n_alerts=2, n_moves=1)
    large = await _incident_with(ingest, admin, "large", n_alerts=60, n_moves=30)

    small_statements = await counted(DETAIL, id=small)
    large_statements = await counted(DETAIL, id=large)

    assert len(large_statements) == len(small_statements)
    # authentication, incident, first alerts, first log entries, entities, log entries' alerts,
    # their other incidents, and the two counts.
    assert len(small_statements) <= 9, small_statements


async def test_unreadable_and_unknown_alerts_run_the_same_statements(make_user, ingest, recorded):
    client, statements = recorded
    analyst = await make_user("analyst", "default=write")
    a, secret, target = await ingest(alert_in("a"), alert_in("s", scope="hr"), alert_in("t"))
    runs = []
    for hidden in (secret.id, 987654):
        statements.clear()
        response = await client.post(
            "/graphql",
            headers={"Authorization": f"Bearer {analyst.token}"},
            json={
                "query": 'mutation($ids: [ID!]!, $to: ID!) { linkAlerts(alertIds: $ids, target: {existingIncidentId: $to}, comment: "c") { errors { code alertIds } } }',
                "variables": {"ids": [alert_id(a.id), alert_id(hidden)], "to": inc(target.incident_id)},
            },
        )
        assert response.json()["data"]["linkAlerts"]["errors"] == [
            {"code": "ALERT_NOT_FOUND", "alertIds": [alert_id(hidden)]}
        ]
        runs.append(list(statements))
    assert runs[0] == runs[1]


async def test_a_move_runs_the_same_statements_for_one_alert_or_forty(counted, ingest, admin):
    move = (
        'mutation($ids: [ID!]!, $to: ID!) { linkAlerts(alertIds: $ids, target: {existingIncidentId: $to}, comment: "c")'
        " { targetIncident { id alertCount } sourceIncidents { id } alerts { id incident { id } } logEntries { id kind message }"
        " errors { code } } }"
    )
    (target,) = await ingest(alert_in("target"))
    one = await ingest(alert_in("one", entities=[("device", "one-host")]))
    # (40: a move of 50 or more also starts a merge of the trigram indexes' pending entries, after
    # its transaction, in the background.)
    forty = await ingest(*[alert_in(f"many-{i}", entities=[("device", f"host-{i % 7}")]) for i in range(40)])

    one_statements = await counted(move, ids=[alert_id(a.id) for a in one], to=inc(target.incident_id))
    forty_statements = await counted(move, ids=[alert_id(a.id) for a in forty], to=inc(target.incident_id))

    assert len(forty_statements) == len(one_statements)
    # authentication, the alerts and the target read before any lock, the move (one statement
    # from the wait to the log entries: linking.LINK, its own transaction), and what the answer
    # reads after it.
    assert len(one_statements) <= 8, one_statements


SEED_INCIDENTS = """
INSERT INTO incidents (id, name, severity, last_activity_at, alert_count, alert_scopes)
SELECT $1::bigint + n, 'Incident ' || ($1::bigint + n), 'low', now(), $2::integer, '{default}'
  FROM generate_series(1, $3::integer) n
"""
SEED_ALERTS = """
INSERT INTO alerts (external_id, title, severity, category, scope, detected_at, incident_id)
SELECT 'x' || $1::bigint || '-' || g, 'Suspicious PowerShell on WS-' || g, 'low', 'Execution', 'default', now(),
       $1::bigint + 1 + (g % $3::integer) FROM generate_series(1, $2::integer * $3::integer) g
"""


async def _incidents_of(pool, first: int, incidents: int, alerts_each: int) -> list[str]:
    """`incidents` incidents of `alerts_each` alerts, numbered from first + 1 (ingestion would take
    longer than the merge)."""
    await pool.execute(SEED_INCIDENTS, first, alerts_each, incidents)
    await pool.execute(SEED_ALERTS, first, alerts_each, incidents)
    await pool.execute("SELECT setval(pg_get_serial_sequence('incidents', 'id'), $1)", first + incidents)
    return [inc(first + n) for n in range(1, incidents + 1)]


async def test_a_merge_and_its_revert_run_the_same_statements_for_two_alerts_or_ten_thousand(counted, pool):
    merge = (
        'mutation($ids: [ID!]!) { mergeIncidents(incidentIds: $ids, comment: "c") { target { id alertCount }'
        " sources { id status } move { id alertCount } logEntries { kind message } errors { code } } }"
    )
    revert = (
        'mutation($m: ID!) { revertMove(moveId: $m, comment: "c") { incidents { id alertCount } move { id }'
        " logEntries { kind message } errors { code } } }"
    )
    small = await _incidents_of(pool, 0, 2, 1)
    large = await _incidents_of(pool, 100, 10, 1000)  # the benchmark: 10,000 alerts

    statements = {}
    for name, ids in (("small", small), ("large", large)):
        statements[name] = await counted(merge, ids=ids)
        (move,) = await pool.fetch("SELECT id FROM moves ORDER BY id DESC LIMIT 1")
        statements[f"{name} revert"] = await counted(revert, m=f"move_{move['id']}")

    # Set-based: one statement per step, whatever the number of alerts (no per-alert round trip).
    assert len(statements["large"]) == len(statements["small"]), statements
    assert len(statements["large revert"]) == len(statements["small revert"]), statements
    assert await pool.fetchval("SELECT count(*) FROM alerts WHERE incident_id = 101") == 1000
