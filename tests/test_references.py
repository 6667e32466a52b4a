"""The references the database checks once per statement (db/migrations/0022): a row naming an
incident, alert or move that does not exist is refused as a foreign key would refuse it, and the
rows they name are never deleted."""

from __future__ import annotations

import asyncpg
import pytest

from tests.conftest import alert_in, inc
from tests.test_revert import link

MISSING = 2_000_000_000


async def _moved(admin, ingest, pool):
    """Two alerts, the first moved into the second's incident: a move, its items and log."""
    a, b = await ingest(alert_in("a", entities=[("device", "ws-1")]), alert_in("b"))
    await link(admin, [a.id], existingIncidentId=inc(b.incident_id))
    move = await pool.fetchval("SELECT max(id) FROM moves")
    return a, b, move


async def test_a_log_entry_naming_what_does_not_exist_is_refused(admin, ingest, pool):
    a, b, move = await _moved(admin, ingest, pool)
    number = a.id
    insert = (
        "INSERT INTO activity_log (incident_id, kind, actor, comment, alert_id, other_incident_id, move_id)"
        " VALUES ($1, 'alert_linked', 'x', 'c', $2, $3, $4)"
    )
    await pool.execute(insert, b.incident_id, number, a.incident_id, move)  # every reference holds
    for incident, alert, other, moved in [
        (MISSING, number, a.incident_id, move),
        (b.incident_id, MISSING, a.incident_id, move),
        (b.incident_id, number, MISSING, move),
        (b.incident_id, number, a.incident_id, MISSING),
    ]:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await pool.execute(insert, incident, alert, other, moved)
    # One bad row among good ones refuses the whole statement.
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute(
            "INSERT INTO activity_log (incident_id, kind, actor, comment)"
            " SELECT unnest($1::bigint[]), 'incident_created', 'x', 'c'",
            [b.incident_id, MISSING, a.incident_id],
        )
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute("UPDATE activity_log SET other_incident_id = $1 WHERE move_id = $2", MISSING, move)


async def test_a_move_incident_entity_or_alert_naming_what_does_not_exist_is_refused(admin, ingest, pool):
    a, b, move = await _moved(admin, ingest, pool)
    number = a.id
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute("INSERT INTO move_incidents (incident_id, move_id) VALUES ($1, $2)", MISSING, move)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute("INSERT INTO move_incidents (incident_id, move_id) VALUES ($1, $2)", b.incident_id, MISSING)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute(
            "INSERT INTO alert_entities (alert_id, kind, value, detected_at) VALUES ($1, 'device', 'ws-2', now())",
            MISSING,
        )
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute(
            "INSERT INTO alerts (external_id, title, severity, category, scope, detected_at, incident_id)"
            " VALUES ('x-1', 't', 'low', 'c', 'default', now(), $1)",
            MISSING,
        )
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute("UPDATE alerts SET incident_id = $1 WHERE id = $2", MISSING, number)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute("UPDATE alert_entities SET alert_id = $1 WHERE alert_id = $2", MISSING, number)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute("UPDATE move_incidents SET move_id = $1 WHERE move_id = $2", MISSING, move)
    assert await pool.fetchval("SELECT incident_id FROM alerts WHERE id = $1", number) == b.incident_id


@pytest.mark.parametrize("table", ["incidents", "alerts", "moves"])
async def test_incidents_alerts_and_moves_are_never_deleted_nor_renumbered(admin, ingest, pool, table):
    await _moved(admin, ingest, pool)
    before = await pool.fetch(f"SELECT id FROM {table} ORDER BY id")
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="never deleted"):
        await pool.execute(f"DELETE FROM {table}")
    # moves' ids are GENERATED ALWAYS: DEFAULT is the only value a statement may give them.
    renumbered = "DEFAULT" if table == "moves" else f"id + {MISSING}"
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="keeps its id"):
        await pool.execute(f"UPDATE {table} SET id = {renumbered} WHERE id = $1", before[0]["id"])
    if table != "moves":
        await pool.execute(f"UPDATE {table} SET id = id WHERE id = $1", before[0]["id"])  # the same id: allowed
    assert await pool.fetch(f"SELECT id FROM {table} ORDER BY id") == before
