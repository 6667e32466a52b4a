"""Alert ingestion with automatic correlation: the flow behind ingestAlerts.

Each new alert joins the ACTIVE or IN_PROGRESS incident of the most recently detected alert
that shares an entity with it (same kind, case-insensitive value), detected at most `window`
earlier, and writes ALERT_CORRELATED there; otherwise it opens a new incident named after it,
whose log gets INCIDENT_CREATED only (that alert shared no evidence with anything). A batch is
one transaction, and its alerts correlate with each other in the order given. An externalId
seen before returns the existing alert unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from app.domain import activity, models
from app.domain.activity import NewEntry
from app.domain.errors import Problem, Refused
from app.domain.incidents import is_visible
from app.domain.models import ALERT_COLUMNS, INCIDENT_COLUMNS, ActivityEntry, Alert, Incident
from app.domain.text import storable
from app.domain.viewers import SYSTEM_ACTOR, Viewer

MAX_BATCH = 500
MAX_ENTITIES = 100
LIMITS = {"externalId": 500, "title": 1000, "category": 200, "scope": 200}
SEVERITIES = ("informational", "low", "medium", "high")
ENTITY_KINDS = ("device", "user", "ip", "mailbox", "file", "url")

# Two batches carrying the same externalId take turns: the second sees the first's alert.
LOCK_EXTERNAL_IDS = """
SELECT pg_advisory_xact_lock(k)
  FROM (SELECT DISTINCT hashtextextended(x, 7411) AS k FROM unnest($1::text[]) AS x ORDER BY 1) s
"""
EXISTING = f"SELECT {ALERT_COLUMNS} FROM alerts a WHERE a.external_id = ANY($1::text[])"
CORRELATE = """
SELECT a.incident_id
  FROM unnest($1::entity_kind[], $2::text[]) AS e(kind, value)
  CROSS JOIN LATERAL (
      SELECT ae.alert_id, ae.detected_at
        FROM alert_entities ae
        JOIN alerts a ON a.id = ae.alert_id
        JOIN incidents i ON i.id = a.incident_id
       WHERE ae.kind = e.kind AND ae.value_key = lower(e.value)
         AND ae.detected_at <= $3 AND ae.detected_at >= $3 - $4::interval
         AND i.status IN ('active', 'in_progress')
       ORDER BY ae.detected_at DESC, ae.alert_id DESC
       LIMIT 1
  ) m
  JOIN alerts a ON a.id = m.alert_id
 ORDER BY m.detected_at DESC, m.alert_id DESC
 LIMIT 1
"""
LOCK_OPEN_INCIDENT = "SELECT id FROM incidents WHERE id = $1 AND status IN ('active', 'in_progress') FOR UPDATE"
CREATE_INCIDENT = "INSERT INTO incidents (name, severity, last_activity_at) VALUES ($1, $2::severity, $3) RETURNING id"
INSERT_ALERT = f"""
INSERT INTO alerts AS a (external_id, title, severity, category, scope, detected_at, incident_id)
VALUES ($1, $2, $3::severity, $4, $5, $6, $7)
RETURNING {ALERT_COLUMNS}
"""
INSERT_ENTITIES = """
INSERT INTO alert_entities (alert_id, kind, value, detected_at)
SELECT $1, k, v, $4 FROM unnest($2::entity_kind[], $3::text[]) AS t(k, v)
ON CONFLICT DO NOTHING
"""
ADD_TO_INCIDENT = """
UPDATE incidents
   SET severity = greatest(severity, $2::severity),
       last_activity_at = greatest(last_activity_at, $3),
       alert_count = alert_count + 1,
       alert_scopes = CASE WHEN $4 = ANY(alert_scopes) THEN alert_scopes
                           ELSE (SELECT array_agg(s ORDER BY s) FROM unnest(alert_scopes || $4::text) s) END
 WHERE id = $1
"""
INCIDENTS_BY_ID = f"SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE i.id = ANY($1::bigint[]) ORDER BY i.id"


@dataclass(frozen=True)
class AlertIn:
    external_id: str
    title: str
    severity: str
    category: str
    scope: str = "default"
    detected_at: datetime | None = None
    entities: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class IngestResult:
    alerts: list[Alert]
    incidents: list[Incident]
    entries: list[ActivityEntry]


def _check(viewer: Viewer, batch: list[AlertIn]) -> None:
    if not viewer.can_ingest:
        raise Refused([Problem("FORBIDDEN", "You may not ingest alerts.")])
    if not 1 <= len(batch) <= MAX_BATCH:
        raise Refused([Problem("INVALID_INPUT", f"Send 1 to {MAX_BATCH} alerts at once; got {len(batch)}.", "alerts")])
    problems = []
    for n, a in enumerate(batch):
        values = {"externalId": a.external_id, "title": a.title, "category": a.category, "scope": a.scope}
        for name, value in values.items():
            if not value.strip() or len(value) > LIMITS[name] or not storable(value):
                problems.append(
                    Problem(
                        "INVALID_INPUT", f"{name} must be 1 to {LIMITS[name]} characters, without NUL.",
                        f"alerts.{n}.{name}", [a.external_id] if storable(a.external_id) else [],
                    )
                )
        named = [a.external_id] if storable(a.external_id) else []
        if a.severity not in SEVERITIES:
            problems.append(Problem("INVALID_INPUT", "Unknown severity.", f"alerts.{n}.severity", named))
        if len(a.entities) > MAX_ENTITIES:
            problems.append(
                Problem("INVALID_INPUT", f"At most {MAX_ENTITIES} entities per alert.", f"alerts.{n}.entities", named)
            )
        for kind, value in a.entities:
            if kind not in ENTITY_KINDS or not value.strip() or len(value) > 1000 or not storable(value):
                problems.append(
                    Problem(
                        "INVALID_INPUT", "Entity values must be 1 to 1000 characters, without NUL.",
                        f"alerts.{n}.entities", [a.external_id] if storable(a.external_id) else [],
                    )
                )
                break
    if problems:
        raise Refused(problems)


async def ingest_alerts(
    *, conn: asyncpg.Connection, viewer: Viewer, batch: list[AlertIn], window: timedelta
) -> IngestResult:
    """Store new alerts and correlate each into an incident. Runs in the caller's transaction."""
    _check(viewer, batch)
    external_ids = [a.external_id for a in batch]
    await conn.execute(LOCK_EXTERNAL_IDS, external_ids)
    known = {r["external_id"]: models.alert(r) for r in await conn.fetch(EXISTING, external_ids)}
    now = await conn.fetchval("SELECT now()")
    touched: set[int] = set()
    entries: list[NewEntry] = []
    for item in batch:
        if item.external_id in known:
            continue
        detected = item.detected_at or now
        entities = list(dict.fromkeys((k, v.strip()) for k, v in item.entities))
        incident_id = await _correlated_incident(conn, entities, detected, window)
        if incident_id is None:
            incident_id = await conn.fetchval(CREATE_INCIDENT, item.title.strip(), item.severity, detected)
            kind = "incident_created"
        else:
            kind = "alert_correlated"
        row = await conn.fetchrow(
            INSERT_ALERT, item.external_id, item.title.strip(), item.severity, item.category.strip(),
            item.scope.strip(), detected, incident_id,
        )
        alert = models.alert(row)
        known[item.external_id] = alert
        if entities:
            await conn.execute(INSERT_ENTITIES, alert.id, [k for k, _ in entities], [v for _, v in entities], detected)
        await conn.execute(ADD_TO_INCIDENT, incident_id, item.severity, detected, alert.scope)
        entries.append(NewEntry(incident_id, kind, SYSTEM_ACTOR, alert_id=alert.id))
        touched.add(incident_id)
    written = await activity.write(conn=conn, entries=entries)
    incidents = [models.incident(r) for r in await conn.fetch(INCIDENTS_BY_ID, sorted(touched))]
    # The payload shows only what the viewer may read, like every query: a source with the
    # ingest permission but no read grant stores its alerts and learns nothing of the incidents
    # they joined (whose other alerts it may not read).
    visible = {i.id for i in incidents if is_visible(i, viewer)}
    return IngestResult(
        alerts=[known[e] for e in external_ids if viewer.can_read(known[e].scope)],
        incidents=[i for i in incidents if i.id in visible],
        entries=[e for e in written if e.incident_id in visible],
    )


async def _correlated_incident(
    conn: asyncpg.Connection, entities: list[tuple[str, str]], detected: datetime, window: timedelta
) -> int | None:
    if not entities:
        return None
    while True:
        incident_id = await conn.fetchval(
            CORRELATE, [k for k, _ in entities], [v for _, v in entities], detected, window
        )
        if incident_id is None:
            return None
        # Lock it; if it was resolved meanwhile, look again (it no longer qualifies).
        if await conn.fetchval(LOCK_OPEN_INCIDENT, incident_id) is not None:
            return incident_id
