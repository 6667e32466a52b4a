"""Reading incidents: by number, the queue with typeahead, and what a viewer may see of them.

A viewer sees an incident that holds at least one alert they may read, or no alert at all.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

import asyncpg

from app.domain import models, pagination, search
from app.domain.errors import NotAllowed
from app.domain.alerts import first_page as alerts_page
from app.domain.models import ALERT_COLUMNS, INCIDENT_COLUMNS, Alert, Incident
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


def _words(p: search.Params, flt: IncidentFilter, indexed: bool = False) -> list[str]:
    """Every word in the name. `indexed`: as the trigram index reads them best
    (search.index_parts), each word then checked on the rows the index found, as a function call
    so that the index does not look up its own trigrams too."""
    clauses = []
    for word in search.words(flt.search):
        pattern = p(search.like_pattern(word))
        parts = search.index_parts(word) if indexed else [word]
        if parts == [word]:
            clauses.append(f"i.name ILIKE {pattern}")
            continue
        clauses += [f"i.name ILIKE {p(search.like_pattern(part))}" for part in parts]
        clauses.append(f"texticlike(i.name, {pattern})")
    return clauses


def _filters(p: search.Params, viewer: Viewer, flt: IncidentFilter) -> list[str]:
    """Visibility, status and severity."""
    everything, scopes = viewer.scope_args()
    p(everything)
    p(scopes)
    clauses = [VISIBLE]
    if flt.statuses is not None:
        clauses.append(f"i.status = ANY({p(flt.statuses)}::incident_status[])")
    if flt.severities is not None:
        clauses.append(f"i.severity = ANY({p(flt.severities)}::severity[])")
    return clauses


def _where(p: search.Params, viewer: Viewer, flt: IncidentFilter) -> list[str]:
    return [*_filters(p, viewer, flt), *_words(p, flt)]


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


# Typeahead, in one statement that answers exactly what the plain
#   WHERE <every word ILIKE> ORDER BY last_activity_at DESC, id DESC LIMIT n
# answers, choosing its way by what it finds (the planner cannot choose well: it judges a
# '%word%' by a sample of 100 names, so that any word in fewer than about 1% of them looks rare
# and goes to the trigram index, which for a word in 20,000 names costs 20-40 ms):
# 1. the newest NEAR incidents, walking the recency index: a word that many
#    names hold ("on", "lateral", "ws-", "alice": most of what analysts type) has its first page
#    there, after a few hundred rows;
# 2. when that came up short but found at least SPARSE matches (the word is in about 0.2% or
#    more of the names), the newest FAR incidents the same way;
# 3. otherwise the trigram index (fed the words' runs of letters and digits: search.index_parts),
#    which is quick for words that few names hold: all matches, then the newest of them (the
#    order is by an expression, so that the planner never walks the recency index here, which
#    for a rare word would read the whole table).
# Each step runs only when the one before came up short (one-time filters over the CTEs, which
# PostgreSQL evaluates only when read; the last one sits above the LIMIT so that a parallel plan
# does not start its workers for nothing), and each gives the first rows of the full answer.
NEAR, FAR, SPARSE = 1_000, 5_000, 2

SEARCH = """
WITH near AS MATERIALIZED (
    SELECT {columns} FROM (
        SELECT * FROM incidents i WHERE {keyset} ORDER BY i.last_activity_at DESC, i.id DESC LIMIT {near}
    ) i
     WHERE {where} ORDER BY i.last_activity_at DESC, i.id DESC LIMIT {limit}
), far AS MATERIALIZED (
    SELECT {columns} FROM (
        SELECT * FROM incidents i WHERE {keyset} ORDER BY i.last_activity_at DESC, i.id DESC LIMIT {far}
    ) i
     WHERE {where} ORDER BY i.last_activity_at DESC, i.id DESC LIMIT {limit}
)
SELECT * FROM near WHERE (SELECT count(*) FROM near) >= {limit}
UNION ALL
SELECT * FROM far
 WHERE (SELECT count(*) FROM near) < {limit} AND (SELECT count(*) FROM near) >= {sparse}
   AND (SELECT count(*) FROM far) >= {limit}
UNION ALL
SELECT * FROM (
    SELECT {columns} FROM incidents i WHERE {indexed} AND {keyset}
     ORDER BY i.last_activity_at + interval '0' DESC, i.id DESC LIMIT {limit}
) indexed
 WHERE (SELECT count(*) FROM near) < {limit}
   AND ((SELECT count(*) FROM near) < {sparse} OR (SELECT count(*) FROM far) < {limit})
"""


async def list_incidents(
    *, conn: Conn, viewer: Viewer, flt: IncidentFilter, first: int, after: str | None
) -> pagination.Page[Incident]:
    """The incidents queue, most recently active first.

    A search that is an incident number puts that incident first (when it passes the other
    filters), then the incidents whose names contain every typed word.
    """
    queue = await _queue(conn, viewer, flt, first, after)
    rows = await conn.fetch(queue.sql, *queue.values)
    return queue.page([models.incident(r) for r in rows])


# The typeahead's page and each incident's first alerts in one round trip.
WITH_FIRST_ALERTS = f"""
SELECT q.*, {ALERT_COLUMNS} FROM ({{queue}}) q
  LEFT JOIN LATERAL (
      SELECT * FROM alerts a WHERE a.incident_id = q.id AND ($1 OR a.scope = ANY($2::text[]))
       ORDER BY a.detected_at DESC, a.id DESC LIMIT {{limit}}
  ) a ON true
"""
_INCIDENT_FIELDS = len(fields(Incident))


async def list_incidents_with_alerts(
    *, conn: Conn, viewer: Viewer, flt: IncidentFilter, first: int, after: str | None, alerts_first: int
) -> tuple[pagination.Page[Incident], dict[int, pagination.Page[Alert]]]:
    """list_incidents, and the first page of each listed incident's readable alerts (as
    alerts.first_alerts_of_incidents gives them), in one statement (the pinned number aside)."""
    pagination.check_first(alerts_first)
    queue = await _queue(conn, viewer, flt, first, after)
    limit = f"${len(queue.values) + 1}"
    rows = await conn.fetch(WITH_FIRST_ALERTS.format(queue=queue.sql, limit=limit), *queue.values, alerts_first + 1)
    found: dict[int, Incident] = {}
    by_incident: dict[int, list[Alert]] = {}
    for r in rows:
        values = list(r.values())
        incident = found.setdefault(values[0], Incident(*values[:_INCIDENT_FIELDS]))
        by_incident.setdefault(incident.id, [])
        if values[_INCIDENT_FIELDS] is not None:
            by_incident[incident.id].append(Alert(*values[_INCIDENT_FIELDS:]))
    listed = sorted(found.values(), key=lambda i: (i.last_activity_at, i.id), reverse=True)
    page = queue.page(listed)
    alert_pages = {i: alerts_page(items, alerts_first) for i, items in by_incident.items()}
    return page, alert_pages


@dataclass
class _Queue:
    """One queue statement, and how its rows become a page (the pinned number first)."""

    sql: str
    values: list
    first: int
    pinned: list[Incident]
    number: int | None

    def page(self, rows: list[Incident]) -> pagination.Page[Incident]:
        page = pagination.page_of(self.pinned + rows, self.first, _cursor)
        if self.pinned:
            page.cursors[0] = pagination.encode("p", self.number)
        return page


async def _queue(conn: Conn, viewer: Viewer, flt: IncidentFilter, first: int, after: str | None) -> _Queue:
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
    filters = _filters(p, viewer, flt)  # $1 and $2: the viewer's scopes
    if number is not None:
        filters.append(f"i.id <> {p(number)}")
    keyset = "true" if key is None else f"(i.last_activity_at, i.id) < ({p(key[0])}, {p(key[1])})"
    limit = p(first + 1 - len(pinned))
    if any(search.has_trigrams(w) for w in search.words(flt.search)):
        sql = SEARCH.format(
            columns=INCIDENT_COLUMNS, keyset=keyset, near=NEAR, far=FAR, sparse=SPARSE, limit=limit,
            where=" AND ".join(filters + _words(p, flt)),
            indexed=" AND ".join(filters + _words(p, flt, indexed=True)),
        )
    else:  # no words, or only ones the trigram index cannot narrow: the planner walks the recency index
        sql = (
            f"SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE {' AND '.join(filters + _words(p, flt))}"
            f" AND {keyset} ORDER BY i.last_activity_at DESC, i.id DESC LIMIT {limit}"
        )
    return _Queue(sql, p.values, first, pinned, number)


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
