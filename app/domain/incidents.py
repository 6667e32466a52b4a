"""Reading incidents: by number, the queue with typeahead, and what a viewer may see of them.

A viewer sees an incident that holds at least one alert they may read, or no alert at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from app.domain import models, pagination, search
from app.domain.errors import NotAllowed
from app.domain.models import INCIDENT_COLUMNS, Incident
from app.domain.viewers import Viewer

Conn = asyncpg.Connection | asyncpg.Pool

# $1: the viewer reads every scope; $2: the scopes the viewer may read.
VISIBLE = "($1 OR i.alert_scopes && $2::text[] OR i.alert_scopes = '{}')"

INCIDENTS_BY_ID = f"""
SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE i.id = ANY($3::bigint[]) AND {VISIBLE}
"""

VISIBLE_ALERT_COUNTS = """
SELECT a.incident_id, count(*) AS n FROM alerts a
 WHERE a.incident_id = ANY($3::bigint[]) AND ($1 OR a.scope = ANY($2::text[]))
 GROUP BY a.incident_id
"""


@dataclass(frozen=True)
class IncidentFilter:
    search: str | None = None
    statuses: list[str] | None = None
    severities: list[str] | None = None


def is_visible(incident: Incident, viewer: Viewer) -> bool:
    return (
        viewer.reads_everything
        or not incident.alert_scopes
        or any(viewer.can_read(s) for s in incident.alert_scopes)
    )


async def get_incidents(*, conn: Conn, viewer: Viewer, ids: list[int]) -> dict[int, Incident]:
    """The incidents with these numbers that the viewer may see."""
    rows = await conn.fetch(INCIDENTS_BY_ID, *viewer.scope_args(), ids)
    return {r["id"]: models.incident(r) for r in rows}


def reads_all_alerts(incident: Incident, viewer: Viewer) -> bool:
    """Whether the viewer may read every alert of the incident (then alert_count is theirs)."""
    return viewer.reads_everything or all(viewer.can_read(s) for s in incident.alert_scopes)


async def count_readable_alerts(*, conn: Conn, viewer: Viewer, incident_ids: list[int]) -> dict[int, int]:
    """How many of each incident's alerts the viewer may read."""
    rows = await conn.fetch(VISIBLE_ALERT_COUNTS, *viewer.scope_args(), incident_ids)
    return {r["incident_id"]: r["n"] for r in rows}


def _where(p: search.Params, viewer: Viewer, flt: IncidentFilter) -> list[str]:
    everything, scopes = viewer.scope_args()
    p(everything)
    p(scopes)
    clauses = [VISIBLE]
    for word in search.words(flt.search):
        clauses.append(f"i.name ILIKE {p(search.like_pattern(word))}")
    if flt.statuses is not None:
        clauses.append(f"i.status = ANY({p(flt.statuses)}::incident_status[])")
    if flt.severities is not None:
        clauses.append(f"i.severity = ANY({p(flt.severities)}::severity[])")
    return clauses


def _pinned_clauses(p: search.Params, viewer: Viewer, flt: IncidentFilter, number: int) -> str:
    everything, scopes = viewer.scope_args()
    p(everything)
    p(scopes)
    clauses = [VISIBLE, f"i.id = {p(number)}"]
    if flt.statuses is not None:
        clauses.append(f"i.status = ANY({p(flt.statuses)}::incident_status[])")
    if flt.severities is not None:
        clauses.append(f"i.severity = ANY({p(flt.severities)}::severity[])")
    return " AND ".join(clauses)


def _cursor(incident: Incident) -> str:
    return pagination.encode("i", incident.last_activity_at, incident.id)


async def list_incidents(
    *, conn: Conn, viewer: Viewer, flt: IncidentFilter, first: int, after: str | None
) -> pagination.Page[Incident]:
    """The incidents queue, most recently active first.

    A search that is an incident number puts that incident first (when it passes the other
    filters), then the incidents whose names contain every typed word.
    """
    if not viewer.can_view_incidents:
        raise NotAllowed("you may not view the incidents queue")
    pagination.check_first(first)
    number = search.as_number(flt.search)
    key = None
    pinned: list[Incident] = []
    if after is not None and number is not None and after == pagination.encode("p", number):
        after = None  # the pinned row was the last one read: the name matches start now
    elif after is None and number is not None:
        p = search.Params()
        row = await conn.fetchrow(
            f"SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE {_pinned_clauses(p, viewer, flt, number)}",
            *p.values,
        )
        pinned = [models.incident(row)] if row else []
    else:
        key = pagination.decode(after, "i", (datetime, int))

    p = search.Params()
    clauses = _where(p, viewer, flt)
    if number is not None:
        clauses.append(f"i.id <> {p(number)}")
    if key is not None:
        clauses.append(f"(i.last_activity_at, i.id) < ({p(key[0])}, {p(key[1])})")
    limit = first + 1 - len(pinned)
    rows = await conn.fetch(
        f"SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE {' AND '.join(clauses)}"
        f" ORDER BY i.last_activity_at DESC, i.id DESC LIMIT {p(limit)}",
        *p.values,
    )
    items = pinned + [models.incident(r) for r in rows]
    page = pagination.page_of(items, first, _cursor)
    if pinned:
        page.cursors[0] = pagination.encode("p", number)
    return page


async def count_incidents(*, conn: Conn, viewer: Viewer, flt: IncidentFilter) -> int:
    """How many incidents the queue holds for this filter (the pinned number included)."""
    if not viewer.can_view_incidents:
        raise NotAllowed("you may not view the incidents queue")
    p = search.Params()
    clauses = _where(p, viewer, flt)
    number = search.as_number(flt.search)
    if number is not None:
        p_pin = search.Params()
        pinned = await conn.fetchval(
            f"SELECT count(*) FROM incidents i WHERE {_pinned_clauses(p_pin, viewer, flt, number)}",
            *p_pin.values,
        )
        clauses.append(f"i.id <> {p(number)}")
    else:
        pinned = 0
    total = await conn.fetchval(
        f"SELECT count(*) FROM incidents i WHERE {' AND '.join(clauses)}", *p.values
    )
    return total + pinned
