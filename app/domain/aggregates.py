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
       alert_scopes = coalesce(s.scopes, i.alert_scopes){{status}}
  FROM unnest($1::bigint[]) AS t(id)
  CROSS JOIN LATERAL (
      SELECT max(a.severity) AS severity, max(a.detected_at) AS last_activity_at,
             count(*)::integer AS n, array_agg(DISTINCT a.scope ORDER BY a.scope) AS scopes
        FROM {{alerts}}
  ) s
 WHERE i.id = t.id
RETURNING {INCIDENT_COLUMNS}
"""

# A move and its incidents' new derived fields in one statement (the movers hold their row locks
# one round trip less). Its parts all read the snapshot from before the move, so an incident's
# alerts are counted as they will be: its own but the moving ones, and for the target those too.
# An incident left without alerts is resolved, and a resolved target reopened (the caller writes
# why in the log).
MOVE = "WITH moved AS (UPDATE alerts SET incident_id = $2 WHERE id = ANY($3::bigint[]) RETURNING id)\n" + RECOMPUTE.format(
    alerts="""(
             SELECT a.severity, a.detected_at, a.scope FROM alerts a WHERE a.incident_id = t.id AND a.id <> ALL($3::bigint[])
             UNION ALL
             SELECT a.severity, a.detected_at, a.scope FROM alerts a WHERE t.id = $2 AND a.id = ANY($3::bigint[])
        ) a""",
    status=""",
       status = CASE WHEN i.id <> $2 AND s.n = 0 AND i.status IN ('active', 'in_progress') THEN 'resolved'::incident_status
                     WHEN i.id = $2 AND i.status = 'resolved' THEN 'active'::incident_status
                     ELSE i.status END""",
)


async def recompute(*, conn: asyncpg.Connection, incident_ids: list[int]) -> dict[int, Incident]:
    rows = await conn.fetch(RECOMPUTE.format(alerts="alerts a WHERE a.incident_id = t.id", status=""), sorted(set(incident_ids)))
    return {r["id"]: models.incident(r) for r in rows}


async def move(*, conn: asyncpg.Connection, alert_ids: list[int], target_id: int, source_ids: list[int]) -> dict[int, Incident]:
    """Moves the alerts (locked by the caller, none of them in the target already) and returns
    the target and the sources as they are after it."""
    rows = await conn.fetch(MOVE, sorted({target_id, *source_ids}), target_id, alert_ids)
    return {r["id"]: models.incident(r) for r in rows}
