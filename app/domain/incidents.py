"""Reading incidents: by number, the queue with typeahead, and what a viewer may see of them.

A viewer sees an incident that holds at least one alert they may read, or no alert at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
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


def _words(p: search.Params, flt: IncidentFilter, indexed: frozenset[str] | None = None) -> list[str]:
    """Every word in the name (name_folded is the name in lower case, so that plain LIKE, five
    times cheaper than ILIKE, does).

    `indexed`: the parts of the words (search.index_parts) that the trigram index should look up;
    each word is then checked on the rows it found as a function call, which the index cannot
    serve, so that it does not look up the word's other trigrams too.
    """
    clauses = []
    for word in search.words(flt.search):
        pattern = f"lower({p(search.like_pattern(word))})"
        if indexed is None or search.index_parts(word) == [word] and word in indexed:
            clauses.append(f"i.name_folded LIKE {pattern}")
            continue
        clauses += [
            f"i.name_folded LIKE lower({p(search.like_pattern(part))})"
            for part in search.index_parts(word) if part in indexed
        ]
        clauses.append(f"textlike(i.name_folded, {pattern})")
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


# Typeahead: the answer of the plain
#   WHERE <every word ILIKE> ORDER BY last_activity_at DESC, id DESC LIMIT n
# found in up to three steps, each a statement of its own that gives the first n rows of that
# answer when it finds n rows (the last one always does). The planner cannot choose the way
# itself: it judges a '%word%' by a sample of 100 names, so any word in fewer than about 1% of
# them looks rare to it. And for a search of the whole table the trigram index must return
# every match, each read from the table to be ordered: 4,000 rows for a word in 0.4% of a
# million names. So:
# 1. NEAR: the newest NEAR incidents, walking the recency index. A word that many names hold
#    ("on", "lateral", "ws-", "alice": most of what analysts type) has its first page there.
# 2. RECENT: the trigram index asked only for incidents active on the last RECENT_DAYS days
#    (it also holds each incident's day: db/migrations/0005), so that a word in 0.01-1% of the
#    names reads at most a few hundred rows.
# 3. INDEXED: the trigram index over everything: a word rare enough to get here has few matches.
# Steps 2 and 3 feed the index the words' runs of letters and digits (search.index_parts), only
# those that pay (PART_COUNTS below), and order by an expression, so that the planner never walks
# the recency index there (for a rare word that reads the whole table).
NEAR, RECENT_DAYS = 1_000, 7

# Before steps 2 and 3 of a search with several parts, which parts the index should look up: a
# part in most names ("com", "powershell") costs the index more than it saves (it has to read
# every trigram's list). The NEAR names are the sample: the NEAR step counts each part in them
# as it reads them (PART_COUNTS), and always answers at least one row to carry the counts.
PART_COUNTS = """
SELECT w.*, c.part_counts FROM (
    SELECT ARRAY[greatest((SELECT reltuples FROM pg_class WHERE oid = 'incidents'::regclass), 0)::bigint,
                 {counts}] AS part_counts
      FROM (SELECT i.name_folded FROM incidents i WHERE {keyset} ORDER BY i.last_activity_at DESC, i.id DESC LIMIT {near}) i
) c LEFT JOIN ({statement}) w ON true
"""

NEAR_STEP = """
SELECT {columns} FROM (
    SELECT * FROM incidents i WHERE {keyset} ORDER BY i.last_activity_at DESC, i.id DESC LIMIT {near}
) i WHERE {where} ORDER BY i.last_activity_at DESC, i.id DESC LIMIT {limit}
"""
RECENT_STEP = """
SELECT {columns} FROM incidents i
 WHERE activity_day(i.last_activity_at) >= activity_day({since}) - {days} AND {where} AND {keyset}
 ORDER BY i.last_activity_at + interval '0' DESC, i.id DESC LIMIT {limit}
"""
INDEXED_STEP = """
SELECT {columns} FROM incidents i WHERE {where} AND {keyset}
 ORDER BY i.last_activity_at + interval '0' DESC, i.id DESC LIMIT {limit}
"""
# No words, or only ones the trigram index cannot narrow: the planner walks the recency index.
PLAIN = """
SELECT {columns} FROM incidents i WHERE {where} AND {keyset}
 ORDER BY i.last_activity_at DESC, i.id DESC LIMIT {limit}
"""


async def list_incidents(
    *, conn: Conn, viewer: Viewer, flt: IncidentFilter, first: int, after: str | None
) -> pagination.Page[Incident]:
    """The incidents queue, most recently active first.

    A search that is an incident number puts that incident first (when it passes the other
    filters), then the incidents whose names contain every typed word.
    """
    queue = await _queue(conn, viewer, flt, first, after)
    rows = await queue.fetch(conn)
    return queue.page(_newest_first(Incident(*r) for r in rows))


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
    rows = await queue.fetch(conn, lambda sql, values: (
        WITH_FIRST_ALERTS.format(queue=sql, limit=f"${len(values) + 1}"), [*values, alerts_first + 1]
    ))
    found: dict[int, Incident] = {}
    by_incident: dict[int, list[Alert]] = {}
    for r in rows:
        values = list(r)
        incident = found.setdefault(values[0], Incident(*values[:_INCIDENT_FIELDS]))
        by_incident.setdefault(incident.id, [])
        if values[_INCIDENT_FIELDS] is not None:
            by_incident[incident.id].append(Alert(*values[_INCIDENT_FIELDS:]))
    page = queue.page(_newest_first(found.values()))
    alert_pages = {i: alerts_page(items, alerts_first) for i, items in by_incident.items()}  # (it sorts them)
    return page, alert_pages


def _newest_first(found) -> list[Incident]:
    """The queue's order, whatever order the statement's joins gave the rows in."""
    return sorted(found, key=lambda i: (i.last_activity_at, i.id), reverse=True)


@contextlib.asynccontextmanager
async def _one_connection(conn: Conn):
    if isinstance(conn, asyncpg.Connection) or not hasattr(conn, "acquire"):
        yield conn
    else:
        async with conn.acquire() as c:
            yield c


@dataclass
class _Queue:
    """How the queue's statements are built and tried in turn, and how their rows become a page
    (the pinned number first)."""

    statement: Callable[[str, frozenset[str] | None], tuple[str, list]]  # (template, index parts)
    templates: list[str]
    parts: list[str]  # what the trigram index can look up (search.index_parts of each word)
    limit: int
    first: int
    pinned: list[Incident]
    number: int | None
    key: tuple | None  # the keyset cursor the queue reads after

    async def fetch(self, conn: Conn, wrap: Callable[[str, list], tuple[str, list]] | None = None) -> list:
        """The rows of the first step that finds `limit` incidents, or of the last step.

        wrap(statement, parameters) may extend a step's statement; the incident's id stays its
        first column. Rows are records or tuples, the statement's columns in order.
        """
        wrap = wrap or (lambda sql, values: (sql, values))
        if len(self.templates) == 1:
            return await conn.fetch(*_flat(wrap(*self.statement(self.templates[0], None))))
        async with _one_connection(conn) as c:
            near, *indexed = self.templates
            statement = wrap(*self.statement(near, None))
            if len(self.parts) == 1:
                rows = await c.fetch(*_flat(statement))
                parts = frozenset(self.parts)
            else:
                counted = await c.fetch(*_flat(self.counting(*statement)))
                total, *counts = counted[0][-1]
                rows = [r[:-1] for r in counted if r[0] is not None]
                parts = frozenset(search.choose_index_parts(self.parts, counts, sample=NEAR, total=total))
            if len({r[0] for r in rows}) >= self.limit:
                return rows
            for template in indexed:
                rows = await c.fetch(*_flat(wrap(*self.statement(template, parts))))
                if len({r[0] for r in rows}) >= self.limit:
                    break
            return rows

    def counting(self, sql: str, values: list) -> tuple[str, list]:
        """The NEAR step's statement, answering one row more (or the only one, its other
        columns null) that ends with the sampled part counts: the table's size, then each part's."""
        p = search.Params()
        p.values = list(values)
        counts = ", ".join(
            f"count(*) FILTER (WHERE i.name_folded LIKE lower({p(search.like_pattern(part))}))" for part in self.parts
        )
        return PART_COUNTS.format(counts=counts, keyset=_keyset(p, self.key), near=NEAR, statement=sql), p.values

    def page(self, rows: list[Incident]) -> pagination.Page[Incident]:
        pinned = pagination.encode("p", self.number) if self.pinned else None
        return pagination.page_of(self.pinned + rows, self.first, _cursor, first_cursor=pinned)


def _keyset(p: search.Params, key: tuple | None) -> str:
    """The queue's rows after the cursor key (last activity, number)."""
    return "true" if key is None else f"(i.last_activity_at, i.id) < ({p(key[0])}, {p(key[1])})"


def _flat(statement: tuple[str, list]) -> list:
    return [statement[0], *statement[1]]


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

    limit = first + 1 - len(pinned)

    def statement(template: str, indexed: frozenset[str] | None) -> tuple[str, list]:
        p = search.Params()
        filters = _filters(p, viewer, flt)  # $1 and $2: the viewer's scopes
        if number is not None:
            filters.append(f"i.id <> {p(number)}")
        keyset = _keyset(p, key)
        sql = template.format(
            columns=INCIDENT_COLUMNS, keyset=keyset, limit=p(limit), near=NEAR, days=RECENT_DAYS - 1,
            where=" AND ".join(filters + _words(p, flt, indexed)),
            since="now()" if key is None or "{since}" not in template else f"{p(key[0])}::timestamptz",
        )
        return sql, p.values

    words = search.words(flt.search)
    parts = [part for w in words if search.has_trigrams(w) for part in search.index_parts(w)]
    templates = [NEAR_STEP, RECENT_STEP, INDEXED_STEP] if parts else [PLAIN]
    return _Queue(statement, templates, list(dict.fromkeys(parts)), limit, first, pinned, number, key)


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
