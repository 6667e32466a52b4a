"""Seeding: small sizes go through ingestion, large ones in bulk, and bulk data is consistent."""

from __future__ import annotations

import pytest

from app.domain import bulk_seed, seed
from tests import invariants

CONSISTENCY = """
SELECT
  (SELECT count(*) FROM incidents i
     LEFT JOIN LATERAL (
         SELECT max(a.severity) AS severity, max(a.detected_at) AS last_activity_at, count(*)::integer AS n,
                array_agg(DISTINCT a.scope ORDER BY a.scope) AS scopes
           FROM alerts a WHERE a.incident_id = i.id
     ) s ON true
    WHERE s.n = 0 OR i.severity <> s.severity OR i.last_activity_at <> s.last_activity_at
       OR i.alert_count <> s.n OR i.alert_scopes <> s.scopes) AS wrong_derived_fields,
  (SELECT count(*) FROM incidents i
    WHERE i.name <> (SELECT a.title FROM alerts a WHERE a.incident_id = i.id
                      ORDER BY a.detected_at, a.id LIMIT 1)) AS not_named_after_first_alert,
  (SELECT count(*) FROM alerts a
    WHERE (SELECT count(*) FROM activity_log l WHERE l.alert_id = a.id AND l.incident_id = a.incident_id) <> 1)
    AS alerts_without_one_entry,
  (SELECT count(*) FROM incidents i
    WHERE (SELECT count(*) FROM activity_log l WHERE l.incident_id = i.id AND l.kind = 'incident_created') <> 1)
    AS incidents_without_one_creation,
  (SELECT count(*) FROM activity_log l JOIN alerts a ON a.id = l.alert_id
    WHERE (l.kind = 'incident_created') <> (a.id = (SELECT f.id FROM alerts f WHERE f.incident_id = a.incident_id
                                                    ORDER BY f.detected_at, f.id LIMIT 1))) AS wrong_kinds,
  (SELECT count(*) FROM alerts a WHERE NOT EXISTS (SELECT 1 FROM alert_entities e WHERE e.alert_id = a.id
                                                  AND e.kind = 'device')) AS alerts_without_device,
  (SELECT count(*) FROM alert_entities e JOIN alerts a ON a.id = e.alert_id WHERE e.detected_at <> a.detected_at)
    AS entities_out_of_time
"""


async def test_bulk_seed_writes_what_ingestion_would_have(pool):
    async with pool.acquire() as conn:
        await bulk_seed.bulk_seed(conn=conn, incidents=300)

        counts = await conn.fetchrow("SELECT (SELECT count(*) FROM incidents) AS i, (SELECT count(*) FROM alerts) AS a")
        assert counts["i"] == 300
        assert 900 <= counts["a"] <= 2500  # about five alerts a story
        assert dict(await conn.fetchrow(CONSISTENCY)) == {
            "wrong_derived_fields": 0,
            "not_named_after_first_alert": 0,
            "alerts_without_one_entry": 0,
            "incidents_without_one_creation": 0,
            "wrong_kinds": 0,
            "alerts_without_device": 0,
            "entities_out_of_time": 0,
        }
        # Each incident's evidence, its text and its bits, as the triggers would have written them.
        assert await conn.fetch(invariants.WRONG_EVIDENCE) == []
        assert await conn.fetch(invariants.WRONG_EVIDENCE_TEXT) == []
        assert await conn.fetch(invariants.MISSING_EVIDENCE_BITS) == []
        assert await conn.fetch(invariants.WRONG_TITLES) == []
        assert await conn.fetchval("SELECT count(*) FROM incidents WHERE evidence_bits = B'0'::bit(256)") == 0
        # Alert ids and incident numbers grow with time, as on ingestion.
        assert await conn.fetchval(
            "SELECT bool_and(ordered) FROM (SELECT detected_at >= lag(detected_at) OVER (ORDER BY id) AS ordered"
            " FROM alerts) s WHERE ordered IS NOT NULL"
        )
        # The secondary indexes are back, and the sequences continue after the rows.
        names = {
            r["indexname"] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'incidents'")
        }
        assert {"incidents_name_search", "incidents_recent"} <= names
        assert await conn.fetchval("SELECT to_regclass('alert_titles_search')") is not None
        assert await conn.fetchval("SELECT nextval(pg_get_serial_sequence('alerts', 'id'))") == counts["a"] + 1


async def test_bulk_seed_writes_the_wide_bits_of_the_incidents_that_keep_them(pool):
    # The threshold (db/migrations/0028's evidence_wide_kept) lowered for the test, so that about
    # half the seeded incidents keep wide bits: the seed writes them as the triggers would have.
    definition = await pool.fetchval("SELECT pg_get_functiondef('evidence_wide_kept(bit)'::regprocedure)")
    await pool.execute(
        "CREATE OR REPLACE FUNCTION evidence_wide_kept(bits bit(256)) RETURNS boolean"
        " LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT bit_count(bits) >= 40 $$"
    )
    try:
        async with pool.acquire() as conn:
            await bulk_seed.bulk_seed(conn=conn, incidents=100)
        kept = await pool.fetchval("SELECT count(*) FROM incidents WHERE evidence_wide_bits IS NOT NULL")
        assert 0 < kept < 100
        assert await pool.fetch(invariants.MISSING_EVIDENCE_BITS) == []
    finally:
        await pool.execute(definition)


async def test_entities_are_shared_across_incidents_for_correlation(pool):
    async with pool.acquire() as conn:
        await bulk_seed.bulk_seed(conn=conn, incidents=2000)
        shared = await conn.fetchval(
            "SELECT count(*) FROM (SELECT kind, value_key FROM alert_entities e JOIN alerts a ON a.id = e.alert_id"
            " GROUP BY kind, value_key HAVING count(DISTINCT a.incident_id) > 1) s"
        )
        assert shared > 50


@pytest.mark.parametrize(("incidents", "bulk"), [(seed.INGESTION_LIMIT, False), (seed.INGESTION_LIMIT + 1, True)])
async def test_small_seeds_go_through_ingestion_and_large_ones_in_bulk(pool, monkeypatch, incidents, bulk):
    calls = []

    async def record_bulk(*, conn, incidents):
        calls.append("bulk")

    async def record_ingestion(*, conn, incidents, seed_value):
        calls.append("ingestion")

    monkeypatch.setattr(seed, "bulk_seed", record_bulk)
    monkeypatch.setattr(seed, "_ingest_stories", record_ingestion)
    async with pool.acquire() as conn:
        await seed.seed(conn=conn, incidents=incidents)
    assert calls == ["bulk" if bulk else "ingestion"]
