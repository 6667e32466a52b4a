"""What must hold after every move, merge and revert, read straight from the database."""

from __future__ import annotations

import asyncpg

# Incidents whose stored count, severity or scopes are not their alerts'.
WRONG_AGGREGATES = """
SELECT i.id, i.alert_count, s.n, i.severity::text, s.severity::text
  FROM incidents i
  LEFT JOIN LATERAL (
      SELECT count(*)::integer AS n, max(a.severity) AS severity, array_agg(DISTINCT a.scope ORDER BY a.scope) AS scopes
        FROM alerts a WHERE a.incident_id = i.id
  ) s ON true
 WHERE i.alert_count <> s.n OR (s.n > 0 AND (i.severity <> s.severity OR i.alert_scopes <> s.scopes))
"""
# Alerts whose last recorded move did not leave them where they are.
HISTORY_ELSEWHERE = """
SELECT a.id FROM alerts a
  JOIN LATERAL (SELECT to_incident_id FROM move_items mi WHERE mi.alert_id = a.id ORDER BY move_id DESC LIMIT 1) last
    ON true
 WHERE last.to_incident_id <> a.incident_id
"""
REDIRECTED_HOLDING = "SELECT id FROM incidents WHERE status = 'redirected' AND alert_count > 0"
# incident_evidence's counts (db/migrations/0024) that are not their entities': either side's rows
# missing from the other.
WRONG_EVIDENCE = """
WITH counted AS (
    SELECT a.incident_id, e.value_key, e.kind, a.scope, count(*)::integer AS entities
      FROM alert_entities e JOIN alerts a ON a.id = e.alert_id GROUP BY 1, 2, 3, 4),
kept AS (SELECT incident_id, value_key, kind, scope, entities FROM incident_evidence)
(SELECT 'missing' AS what, * FROM (SELECT * FROM counted EXCEPT SELECT * FROM kept) x)
UNION ALL
(SELECT 'extra', * FROM (SELECT * FROM kept EXCEPT SELECT * FROM counted) y)
"""
# incident_evidence_text's values (db/migrations/0025) that are not the incident's distinct
# values in incident_evidence, either way, or twice, for the incidents with text and those of 64
# rows or more, which must have it (incidents holding a value with a newline, which splits it
# here, left out).
WRONG_EVIDENCE_TEXT = """
WITH split AS (SELECT DISTINCT incident_id FROM incident_evidence WHERE strpos(value_key, E'\\n') > 0),
written AS (
    SELECT t.incident_id, e.value_key FROM incident_evidence_text t, unnest(string_to_array(t.entries, E'\\n')) e(value_key)
     WHERE t.incident_id NOT IN (SELECT incident_id FROM split)),
textual AS (
    SELECT incident_id FROM incident_evidence_text
     UNION SELECT incident_id FROM incident_evidence GROUP BY 1 HAVING count(*) >= 64),
kept AS (
    SELECT DISTINCT incident_id, value_key FROM incident_evidence
     WHERE incident_id IN (SELECT incident_id FROM textual) AND incident_id NOT IN (SELECT incident_id FROM split))
(SELECT 'missing' AS what, * FROM (SELECT * FROM kept EXCEPT ALL SELECT * FROM written) x)
UNION ALL
(SELECT 'extra', * FROM (SELECT * FROM written EXCEPT ALL SELECT * FROM kept) y)
"""
# Incidents whose evidence bits (db/migrations/0026), or wide bits (0028), lack a bit of one of
# their values: the typeahead's walk would pass them by; or that keep wide bits or not against
# the threshold (evidence_wide_kept of their bits).
MISSING_EVIDENCE_BITS = """
SELECT i.id FROM incidents i
  LEFT JOIN (SELECT incident_id, bit_or(evidence_bits(value_key)) AS bits, bit_or(evidence_wide_bits(value_key)) AS wide
               FROM incident_evidence GROUP BY 1) b
    ON b.incident_id = i.id
 WHERE (i.evidence_bits & b.bits) <> b.bits
    OR (i.evidence_wide_bits IS NOT NULL) <> evidence_wide_kept(i.evidence_bits)
    OR (i.evidence_wide_bits & b.wide) <> b.wide
"""
# Titles that the search (alert_titles, db/migrations/0029) holds otherwise than the alerts, or not
# once.
WRONG_TITLES = """
SELECT a.id, a.title, t.alert_id, t.title FROM alerts a FULL JOIN alert_titles t ON t.alert_id = a.id
 WHERE a.id IS NULL OR t.alert_id IS NULL OR a.title <> t.title
"""
# Each item starts where the alert's previous item ended.
BROKEN_CHAINS = """
SELECT mi.alert_id, mi.move_id FROM move_items mi
  JOIN LATERAL (SELECT p.to_incident_id FROM move_items p WHERE p.alert_id = mi.alert_id AND p.move_id < mi.move_id
                 ORDER BY p.move_id DESC LIMIT 1) prev ON true
 WHERE prev.to_incident_id <> mi.from_incident_id
"""


async def assert_invariants(pool: asyncpg.Pool) -> None:
    """Every alert in exactly one incident (NOT NULL, a foreign key), counts, severities and scopes
    right, every alert's history ending where it is, unbroken, no REDIRECTED incident holding
    alerts, each incident's evidence counted as its alerts hold it, its values' text, and its bits,
    and each alert's title in the titles' search."""
    assert await pool.fetch(WRONG_AGGREGATES) == []
    assert await pool.fetch(HISTORY_ELSEWHERE) == []
    assert await pool.fetch(BROKEN_CHAINS) == []
    assert await pool.fetch(REDIRECTED_HOLDING) == []
    assert await pool.fetch(WRONG_EVIDENCE) == []
    assert await pool.fetch(WRONG_EVIDENCE_TEXT) == []
    assert await pool.fetch(MISSING_EVIDENCE_BITS) == []
    assert await pool.fetch(WRONG_TITLES) == []


async def redirect_by_hand(pool: asyncpg.Pool, source: int, target: int) -> None:
    """Redirect an incident to another as a merge leaves it: its alerts in the target, its count 0
    (a REDIRECTED incident holds no alert: incidents_redirected_empty)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE alerts SET incident_id = $2 WHERE incident_id = $1", source, target)
        await conn.execute(
            "UPDATE incidents i SET alert_count = (SELECT count(*) FROM alerts a WHERE a.incident_id = i.id)"
            " WHERE i.id = ANY($1::bigint[])",
            [source, target],
        )
        await conn.execute(
            "UPDATE incidents SET status = 'redirected', redirect_incident_id = $2 WHERE id = $1", source, target
        )
