"""An incident's derived fields, recomputed in the transaction that changes its alerts."""

from __future__ import annotations

from app.domain.models import INCIDENT_COLUMNS

# The derived fields of the incidents {incidents} (a bigint[]) from the alerts {alerts} gives (a
# relation `a` that may read the incident t.id), with {status} free for more SET clauses.
# Severity and last activity are kept as they were when no alert is left, and so are the scopes
# that decide who sees the incident: its name and log came from those alerts, so an incident
# emptied by moves stays visible to those who could see it, and to no one else.
RECOMPUTE = f"""
UPDATE incidents i
   SET severity = coalesce(s.severity, i.severity),
       last_activity_at = coalesce(s.last_activity_at, i.last_activity_at),
       alert_count = s.n,
       alert_scopes = coalesce(s.scopes, i.alert_scopes){{status}}
  FROM unnest({{incidents}}::bigint[]) AS t(id)
  CROSS JOIN LATERAL (
      SELECT max(a.severity) AS severity, max(a.detected_at) AS last_activity_at,
             count(*)::integer AS n, array_agg(DISTINCT a.scope ORDER BY a.scope) AS scopes
        FROM {{alerts}}
  ) s
 WHERE i.id = t.id
RETURNING {INCIDENT_COLUMNS}
"""
