"""Incident.updatedAt and incidents(filter: {updatedSince}): what a client that polls sees (issue 13)."""

from __future__ import annotations

from datetime import datetime

from tests.conftest import alert_id, alert_in, inc

QUEUE = """
query($since: DateTime) {
  incidents(filter: {updatedSince: $since}, first: 20) { edges { node { id updatedAt } } }
}
"""
LINK = """
mutation($ids: [ID!]!, $target: LinkTarget!) {
  linkAlerts(alertIds: $ids, target: $target, comment: "moving") { errors { code } }
}
"""


def _moments(data: dict) -> dict[str, datetime]:
    return {e["node"]["id"]: datetime.fromisoformat(e["node"]["updatedAt"]) for e in data["incidents"]["edges"]}


async def test_a_move_changes_updated_at_of_both_incidents_and_only_they_are_updated_since(admin, ingest, pool) -> None:
    # Given three incidents
    a = await ingest(alert_in("a1", entities=[("device", "a")]), alert_in("a2", minutes=1, entities=[("device", "a")]))
    b = await ingest(alert_in("b1", minutes=2, entities=[("device", "b")]))
    c = await ingest(alert_in("c1", minutes=3, entities=[("device", "c")]))
    before = _moments(await admin(QUEUE))
    since = await pool.fetchval("SELECT now()")

    # When an alert moves from A to B
    answer = await admin(LINK, ids=[alert_id(a[0].id)], target={"existingIncidentId": inc(b[0].incident_id)})
    assert answer["linkAlerts"]["errors"] == []

    # Then A and B were updated after the move began, C was not
    after = _moments(await admin(QUEUE))
    for moved in (a[0].incident_id, b[0].incident_id):
        assert after[inc(moved)] > before[inc(moved)]
        assert after[inc(moved)] >= since
    assert after[inc(c[0].incident_id)] == before[inc(c[0].incident_id)]
    # and a poll for what changed since then lists exactly A and B
    changed = _moments(await admin(QUEUE, since=since.isoformat()))
    assert set(changed) == {inc(a[0].incident_id), inc(b[0].incident_id)}


async def test_a_change_to_an_alert_that_stays_updates_its_incident(admin, ingest, pool) -> None:
    # Given an incident
    a = await ingest(alert_in("a1", entities=[("device", "a")]))
    before = _moments(await admin(QUEUE))[inc(a[0].incident_id)]

    # When its alert changes without moving (its status)
    await pool.execute("UPDATE alerts SET status = 'in_progress' WHERE id = $1", a[0].id)

    # Then its incident's updatedAt moved on
    assert _moments(await admin(QUEUE))[inc(a[0].incident_id)] > before


async def test_updated_since_refuses_what_is_not_a_moment(admin) -> None:
    errors = await admin.errors(QUEUE, since="yesterday")
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_the_evidence_bits_alone_are_not_a_change_of_the_incident(ingest, pool) -> None:
    # The search's bits (db/migrations/0026) written alone leave updated_at; with anything else,
    # updated_at moves as before.
    (a,) = await ingest(alert_in("a1", entities=[("device", "a")]))
    before = await pool.fetchval("SELECT updated_at FROM incidents WHERE id = $1", a.incident_id)
    await pool.execute("UPDATE incidents SET evidence_bits = ~evidence_bits WHERE id = $1", a.incident_id)
    assert await pool.fetchval("SELECT updated_at FROM incidents WHERE id = $1", a.incident_id) == before
    await pool.execute("UPDATE incidents SET evidence_bits = ~evidence_bits, name = 'x' WHERE id = $1", a.incident_id)
    assert await pool.fetchval("SELECT updated_at FROM incidents WHERE id = $1", a.incident_id) > before
    # So do the wide bits (0028).
    before = await pool.fetchval("SELECT updated_at FROM incidents WHERE id = $1", a.incident_id)
    wide = "B'1'::bit(4096)"
    await pool.execute(f"UPDATE incidents SET evidence_wide_bits = {wide} WHERE id = $1", a.incident_id)
    assert await pool.fetchval("SELECT updated_at FROM incidents WHERE id = $1", a.incident_id) == before
    await pool.execute(f"UPDATE incidents SET evidence_wide_bits = ~{wide}, name = 'y' WHERE id = $1", a.incident_id)
    assert await pool.fetchval("SELECT updated_at FROM incidents WHERE id = $1", a.incident_id) > before
