"""An incident's derived fields, recomputed in the transaction that changes its alerts."""

from __future__ import annotations

import asyncpg

from app.domain import models
from app.domain.models import INCIDENT_COLUMNS, Incident

# Severity and last activity are kept as they were when no alert is left, and so are the scopes
# that decide who sees the incident: its name and log came from those alerts, so an incident
# emptied by moves stays visible to those who could see it, and to no one else.
RECOMPUTE = f"""
UPDATE incidents i
   SET severity = coalesce(s.severity, i.severity),
       last_activity_at = coalesce(s.last_activity_at, i.last_activity_at),
       alert_count = s.n,
       alert_scopes = coalesce(s.scopes, i.alert_scopes)
  FROM unnest($1::bigint[]) AS t(id)
  CROSS JOIN LATERAL (
      SELECT max(a.severity) AS severity, max(a.detected_at) AS last_activity_at,
             count(*)::integer AS n, array_agg(DISTINCT a.scope ORDER BY a.scope) AS scopes
        FROM alerts a WHERE a.incident_id = t.id
  ) s
 WHERE i.id = t.id
RETURNING {INCIDENT_COLUMNS}
"""


async def recompute(*, conn: asyncpg.Connection, incident_ids: list[int]) -> dict[int, Incident]:
    rows = await conn.fetch(RECOMPUTE, sorted(set(incident_ids)))
    return {r["id"]: models.incident(r) for r in rows}
