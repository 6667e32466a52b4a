"""Reading alerts and their evidence. A viewer reads only alerts in scopes granted to them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from app.domain import models, pagination, search
from app.domain.models import ALERT_COLUMNS, Alert, Entity
from app.domain.viewers import Viewer

Conn = asyncpg.Connection | asyncpg.Pool

# $1: the viewer reads every scope; $2: the scopes the viewer may read.
READABLE = "($1 OR a.scope = ANY($2::text[]))"

ALERTS_BY_ID = f"SELECT {ALERT_COLUMNS} FROM alerts a WHERE a.id = ANY($3::bigint[]) AND {READABLE}"

ENTITIES = """
SELECT alert_id, kind::text AS kind, value FROM alert_entities
 WHERE alert_id = ANY($1::bigint[]) ORDER BY alert_id, kind, value
"""

# The first page of alerts of many incidents at once, newest first.
FIRST_ALERTS_OF_INCIDENTS = f"""
SELECT {ALERT_COLUMNS}
  FROM unnest($3::bigint[]) AS t(incident_id)
  CROSS JOIN LATERAL (
      SELECT * FROM alerts a
       WHERE a.incident_id = t.incident_id AND {READABLE}
       ORDER BY a.detected_at DESC, a.id DESC LIMIT $4
  ) a
"""


@dataclass(frozen=True)
class AlertFilter:
    search: str | None = None
    incident_id: int | None = None
    statuses: list[str] | None = None
    severities: list[str] | None = None


def _cursor(alert: Alert) -> str:
    return pagination.encode("a", alert.detected_at, alert.id)


def first_page(rows: list[Alert], first: int) -> pagination.Page[Alert]:
    """The first page of an incident's alerts from up to first+1 of them, newest first."""
    rows = sorted(rows, key=lambda a: (a.detected_at, a.id), reverse=True)
    return pagination.page_of(rows, first, _cursor)


async def get_alerts(*, conn: Conn, viewer: Viewer, ids: list[int]) -> dict[int, Alert]:
    """The alerts with these ids that the viewer may read."""
    rows = await conn.fetch(ALERTS_BY_ID, *viewer.scope_args(), ids)
    return {r["id"]: models.alert(r) for r in rows}


async def entities_of(*, conn: Conn, alert_ids: list[int]) -> dict[int, list[Entity]]:
    found: dict[int, list[Entity]] = defaultdict(list)
    for row in await conn.fetch(ENTITIES, alert_ids):
        found[row["alert_id"]].append(Entity(kind=row["kind"], value=row["value"]))
    return found


def _where(p: search.Params, viewer: Viewer, flt: AlertFilter) -> list[str]:
    everything, scopes = viewer.scope_args()
    p(everything)
    p(scopes)
    clauses = [READABLE]
    for word in search.words(flt.search):
        clauses.append(f"a.title ILIKE {p(search.like_pattern(word))}")
    if flt.incident_id is not None:
        clauses.append(f"a.incident_id = {p(flt.incident_id)}")
    if flt.statuses is not None:
        clauses.append(f"a.status = ANY({p(flt.statuses)}::alert_status[])")
    if flt.severities is not None:
        clauses.append(f"a.severity = ANY({p(flt.severities)}::severity[])")
    return clauses


async def list_alerts(
    *, conn: Conn, viewer: Viewer, flt: AlertFilter, first: int, after: str | None
) -> pagination.Page[Alert]:
    """Alerts the viewer may read, most recently detected first."""
    pagination.check_first(first)
    key = pagination.decode(after, "a", (datetime, int))
    p = search.Params()
    clauses = _where(p, viewer, flt)
    if key is not None:
        clauses.append(f"(a.detected_at, a.id) < ({p(key[0])}, {p(key[1])})")
    rows = await conn.fetch(
        f"SELECT {ALERT_COLUMNS} FROM alerts a WHERE {' AND '.join(clauses)}"
        f" ORDER BY a.detected_at DESC, a.id DESC LIMIT {p(first + 1)}",
        *p.values,
    )
    return pagination.page_of([models.alert(r) for r in rows], first, _cursor)


async def count_alerts(*, conn: Conn, viewer: Viewer, flt: AlertFilter) -> int:
    p = search.Params()
    clauses = _where(p, viewer, flt)
    return await conn.fetchval(
        f"SELECT count(*) FROM alerts a WHERE {' AND '.join(clauses)}", *p.values
    )


async def first_alerts_of_incidents(
    *, conn: Conn, viewer: Viewer, incident_ids: list[int], first: int
) -> dict[int, pagination.Page[Alert]]:
    """The first page of readable alerts of each incident, in one query."""
    pagination.check_first(first)
    rows = await conn.fetch(
        FIRST_ALERTS_OF_INCIDENTS, *viewer.scope_args(), incident_ids, first + 1
    )
    grouped: dict[int, list[Alert]] = {i: [] for i in incident_ids}
    for row in rows:
        grouped[row["incident_id"]].append(models.alert(row))
    return {i: pagination.page_of(items, first, _cursor) for i, items in grouped.items()}
