"""Reading incidents: by number, the queue with typeahead, and what a viewer may see of them.

A viewer sees an incident that holds at least one alert they may read, or no alert at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime

import asyncpg

from app.domain import evidence, models, pagination, search
from app.domain.alerts import first_page as alerts_page
from app.domain.alerts import readable as readable_alerts
from app.domain.errors import InvalidArgument, NotAllowed
from app.domain.models import (
    ALERT_COLUMNS,
    INCIDENT_COLUMNS,
    SEVERITY_ORDER,
    Alert,
    Entity,
    Incident,
    IncidentStatus,
    MatchedIncident,
    ReadableSummary,
    Severity,
)
from app.domain.params import Params
from app.domain.periodic import Periodic
from app.domain.text import only_storable
from app.domain.viewers import Viewer

Conn = asyncpg.Connection | asyncpg.Pool


# The incidents `i` a viewer may see ({everything}: they read every scope; {scopes}: those they
# may read): one of the scopes their alerts ever had (alert_scopes) is readable, or they never
# held an alert. is_visible below is the same rule for an incident in hand.
VISIBLE = "({everything} OR i.alert_scopes && {scopes}::text[] OR i.alert_scopes = '{{}}')"


def visible(params: Params, viewer: Viewer) -> str:
    """The incidents `i` the viewer may see (VISIBLE)."""
    return VISIBLE.format(everything=params.add(viewer.reads_everything), scopes=params.add(viewer.readable_scopes))


INCIDENTS_BY_ID = """
SELECT {columns} FROM incidents i WHERE i.id = ANY({ids}::bigint[]) AND {visible}
"""

READABLE_SUMMARIES = """
SELECT a.incident_id, count(*)::integer AS alert_count, max(a.severity)::text AS severity,
       max(a.detected_at) AS last_activity_at
  FROM alerts a
 WHERE a.incident_id = ANY({incident_ids}::bigint[]) AND {readable}
 GROUP BY a.incident_id
"""


@dataclass(frozen=True)
class IncidentFilter:
    search: str | None = None
    statuses: list[str] | None = None
    severities: list[str] | None = None
    assignees: list[str] | None = None  # users' names; "me" is the viewer
    unassigned: bool | None = None
    classifications: list[str] | None = None
    updated_since: datetime | None = None  # only incidents changed at or after this moment
    entity: evidence.EntityMatch | None = None  # only incidents with a readable alert holding it


@dataclass(frozen=True)
class Sort:
    """An order of the queue: its key's columns (the number last, the tiebreak), newest or highest
    first, each served by an index of that order (db/migrations/0016), so that keyset paging
    reads only a page's rows in either direction."""

    name: str
    columns: tuple[str, ...]
    casts: tuple[str, ...]  # of the cursor's values, as parameters
    cursor_kind: str
    shape: tuple[type, ...]
    key: Callable[[Incident], tuple]
    # Its key is derived from the incident's alerts: a viewer who may read only some of them
    # would see the incidents in an order that tells of the others (alertCount and severity are
    # shown to them as far as they may read), so it needs a grant on every scope.
    needs_every_scope: bool = False


SORTS = {
    s.name: s
    for s in (
        Sort(
            "last_activity",
            ("i.last_activity_at", "i.id"),
            ("", ""),
            "i",
            (datetime, int),
            lambda i: (i.last_activity_at, i.id),
        ),
        Sort(
            "severity",
            ("i.severity", "i.last_activity_at", "i.id"),
            ("::severity", "", ""),
            "is",
            (str, datetime, int),
            lambda i: (SEVERITY_ORDER.index(i.severity), i.last_activity_at, i.id),
            True,
        ),
        Sort(
            "alert_count",
            ("i.alert_count", "i.last_activity_at", "i.id"),
            ("", "", ""),
            "ic",
            (int, datetime, int),
            lambda i: (i.alert_count, i.last_activity_at, i.id),
            True,
        ),
        Sort("created", ("i.id",), ("",), "in", (int,), lambda i: (i.id,)),
    )
}
BY_ACTIVITY = SORTS["last_activity"]


def is_visible(incident: Incident, viewer: Viewer) -> bool:
    return (
        viewer.reads_everything or not incident.alert_scopes or any(viewer.can_read(s) for s in incident.alert_scopes)
    )


async def get_incidents(*, conn: Conn, viewer: Viewer, ids: list[int]) -> dict[int, Incident]:
    """The incidents with these numbers that the viewer may see."""
    params = Params()
    sql = INCIDENTS_BY_ID.format(columns=INCIDENT_COLUMNS, ids=params.add(ids), visible=visible(params, viewer))
    rows = await conn.fetch(sql, *params.values)
    return {r["id"]: models.incident(r) for r in rows}


def reads_all_alerts(incident: Incident, viewer: Viewer) -> bool:
    """Whether the viewer may read every alert of the incident (then alert_count is theirs)."""
    return viewer.reads_everything or all(viewer.can_read(s) for s in incident.alert_scopes)


def name_seen_by(incident: Incident, viewer: Viewer) -> str:
    """The name, to a viewer who may read every alert it was named after; else "Incident <n>"."""
    if viewer.reads_everything or all(viewer.can_read(s) for s in incident.name_scopes):
        return incident.name
    return f"Incident {incident.id}"


async def readable_summaries(*, conn: Conn, viewer: Viewer, incident_ids: list[int]) -> dict[int, ReadableSummary]:
    """Each incident as far as the viewer may read its alerts: how many, the highest severity,
    the latest detection. An incident with no readable alert is missing."""
    params = Params()
    sql = READABLE_SUMMARIES.format(incident_ids=params.add(incident_ids), readable=readable_alerts(params, viewer))
    rows = await conn.fetch(sql, *params.values)
    return {r["incident_id"]: ReadableSummary(r["alert_count"], r["severity"], r["last_activity_at"]) for r in rows}


def seen_by(incident: Incident, viewer: Viewer, summary: ReadableSummary | None) -> Seen:
    """The incident's name, severity and last activity as the viewer may see them.

    Its own, when the viewer may read every alert it holds or held; otherwise those of the alerts
    they may read (none left: the lowest severity and its creation), so that no value depends on
    an alert the viewer may not read. The name is shown when the viewer may read the alerts it
    was named after, else it is "Incident <number>".
    """
    name = name_seen_by(incident, viewer)
    if reads_all_alerts(incident, viewer):
        return Seen(name, incident.severity, incident.last_activity_at, incident.alert_count)
    if summary is None:
        return Seen(name, Severity.INFORMATIONAL, incident.created_at, 0)
    return Seen(name, summary.severity, summary.last_activity_at, summary.alert_count)


@dataclass(frozen=True)
class Seen:
    name: str
    severity: str
    last_activity_at: datetime
    alert_count: int


RARE_STATUSES = frozenset({IncidentStatus.IN_PROGRESS, IncidentStatus.REDIRECTED})


def _filtered(viewer: Viewer, flt: IncidentFilter) -> Params:
    """Incidents the viewer may see, with the filter's statuses and severities; the words are
    added apart (_where_words), since the pinned incident is found by its number instead."""
    params = Params()
    params.where(visible(params, viewer))
    if flt.statuses is not None and len(flt.statuses) == 1:
        # Equality, not "= ANY": the planner then reads incidents_rare_status in the queue's order
        # and stops at a page, where "= ANY" of one value reads every match and sorts them.
        params.where(f"i.status = {params.add(flt.statuses[0])}::incident_status")
    else:
        params.where_any("i.status", flt.statuses, "incident_status")
    if flt.statuses and set(flt.statuses) <= RARE_STATUSES:
        params.where("i.status IN ('in_progress', 'redirected')")  # what the partial index incidents_rare_status holds
    if flt.severities is not None:
        params.where_any(_severity_seen(params, viewer), flt.severities, "severity")
    if flt.assignees is not None:
        # (only_storable: NUL, which no name holds, would not reach the query)
        names = [viewer.name if a.strip().lower() == "me" else only_storable(a.strip()) for a in flt.assignees]
        params.where_any("i.assigned_to", names, "text")
        params.where("i.assigned_to IS NOT NULL")  # what the partial index incidents_assigned holds
    if flt.updated_since is not None:
        params.where(f"i.updated_at >= {params.add(flt.updated_since)}::timestamptz")
    if flt.unassigned is not None:
        params.where("i.assigned_to IS NULL" if flt.unassigned else "i.assigned_to IS NOT NULL")
    params.where_any("i.classification", flt.classifications, "incident_classification")
    if flt.classifications is not None and "unknown" not in flt.classifications:
        params.where("i.classification <> 'unknown'")  # what the partial index incidents_classified holds
    if flt.entity is not None:
        params.where(evidence.incident_has_entity(params, flt.entity, readable_alerts(params, viewer)))
    return params


def _severity_seen(params: Params, viewer: Viewer) -> str:
    """The incident's severity as the viewer sees it (seen_by), for the severity filter: its own
    when they may read all its alerts, else the highest of those they may read."""
    if viewer.reads_everything:
        return "i.severity"
    scopes = params.add(viewer.readable_scopes)
    return (
        f"CASE WHEN i.alert_scopes <@ {scopes}::text[] THEN i.severity"
        f" ELSE coalesce((SELECT max(a.severity) FROM alerts a WHERE a.incident_id = i.id AND {readable_alerts(params, viewer)}),"
        " 'informational') END"
    )


def _where_words(params: Params, flt: IncidentFilter, viewer: Viewer, indexed: frozenset[str] | None = None) -> None:
    """Every word in the name (_word_clauses)."""
    for clause in _word_clauses(params, flt, viewer, indexed):
        params.where(clause)


def _word_clauses(
    params: Params, flt: IncidentFilter, viewer: Viewer, indexed: frozenset[str] | None = None
) -> list[str]:
    """The clauses, all of which hold when every word is in the name (name_folded is the name in
    lower case, so that plain LIKE, five times cheaper than ILIKE, does), for a viewer who may read the alerts it was named after
    (name_seen_by: otherwise a match would tell what the name they are not shown holds).

    `indexed`: the parts of the words that the trigram index should look up (search.word_clauses).
    """
    clauses: list[str] = []
    words = search.words(flt.search)
    if words and not viewer.reads_everything:
        clauses.append(f"coalesce(i.name_scopes, i.alert_scopes) <@ {params.add(viewer.readable_scopes)}::text[]")
    return clauses + search.word_clauses(params, words, "i.name_folded", indexed, fold="lower({})")


def _keyset(params: Params, key: tuple | None, window: pagination.Window, sort: Sort = BY_ACTIVITY) -> str:
    """The queue's rows beyond the cursor key (the sort's columns) in the window's direction."""
    if key is None:
        return "true"
    values = ", ".join(f"{params.add(v)}{cast}" for v, cast in zip(key, sort.casts, strict=True))
    return f"({', '.join(sort.columns)}) {window.beyond} ({values})"


def _order(sort: Sort, window: pagination.Window) -> str:
    return ", ".join(f"{c} {window.order}" for c in sort.columns)


def _cursor_of(sort: Sort) -> Callable[[Incident], str]:
    names = [c.removeprefix("i.") for c in sort.columns]
    return lambda incident: pagination.seal(sort.cursor_kind, *(getattr(incident, n) for n in names))


_cursor = _cursor_of(BY_ACTIVITY)


# The incident a search names by its number ("1042", "#1042"), listed before the name matches
# when it passes the other filters; and how many incidents the queue holds, either way.
PINNED_INCIDENT = "SELECT {columns} FROM incidents i WHERE {where}"
COUNT_INCIDENTS = "SELECT count(*) FROM incidents i WHERE {where}"


def _pinned(viewer: Viewer, flt: IncidentFilter, number: int) -> Params:
    """The incident with this number, if the viewer may see it and it passes the filter."""
    params = _filtered(viewer, flt)
    params.where(f"i.id = {params.add(number)}")
    return params


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
# Steps 1 and 2 are skipped when the evidence sample's names say they find fewer than a page
# (_near_finds_few, _recent_finds_few): a rare host or email then starts at the index.
# Steps 2 and 3 feed the index the words' runs of letters and digits (search.index_parts), only
# those that pay (PART_COUNTS below), and order by an expression, so that the planner never walks
# the recency index there (for a rare word that reads the whole table).
# A backward page (last, before) takes the same steps the other way: from the cursor upwards
# ({order} ASC, pagination.Window), or from the oldest incident without one; its NEAR incidents
# are the 1,000 above the cursor, and its RECENT days the 7 from the cursor's day on (DAYS_AFTER).
NEAR = 1_000
RECENT_DAYS = evidence.RECENT_DAYS  # (one number for the step and the sample that counts its names)

NEAR_STEP = """
SELECT {columns} FROM (
    SELECT * FROM incidents i WHERE {keyset} ORDER BY i.last_activity_at {order}, i.id {order} LIMIT {near}
) i WHERE {where} ORDER BY i.last_activity_at {order}, i.id {order} LIMIT {limit}
"""
RECENT_STEP = """
SELECT {columns} FROM incidents i
 WHERE {days} AND {where} AND {keyset}
 ORDER BY i.last_activity_at + interval '0' {order}, i.id {order} LIMIT {limit}
"""
DAYS_BEFORE = evidence.DAYS_BEFORE  # "activity_day(i.last_activity_at) >= activity_day({since}) - {days}"
# Both bounds: the index cannot tell the rows below the cursor from those above it.
DAYS_AFTER = "activity_day(i.last_activity_at) BETWEEN activity_day({since}) AND activity_day({since}) + {days}"
OLDEST_ACTIVITY = "(SELECT min(last_activity_at) FROM incidents)"
INDEXED_STEP = """
SELECT {columns} FROM incidents i WHERE {where} AND {keyset}
 ORDER BY i.last_activity_at + interval '0' {order}, i.id {order} LIMIT {limit}
"""
# No words, or only ones the trigram index cannot narrow: the planner walks the recency index.
PLAIN = """
SELECT {columns} FROM incidents i WHERE {where} AND {keyset}
 ORDER BY {sort_order} LIMIT {limit}
"""

# SMALL_TABLE: at a small table the planner's own choice, one statement of the plain rule (PLAIN
# with the words), costs less than the steps (issue 16). A word that misses the planner's sample
# of about 100 names is in under 1% of them: at 100,000 incidents at most about 1,000 rows for
# the trigram index to find, no more than the NEAR step walks, and a rare host or number then
# costs one bitmap lookup instead of three statements (NEAR walking 1,000 names for nothing,
# RECENT, INDEXED). Several words keep the NEAR step first: the planner multiplies their shares
# as if independent ("lat" and "mov" come together), judges the pair rare and reads 3,158 rows
# for "lat mov" (22 ms at 100,000) where NEAR finds its page in 1,000 (0.5 ms); once NEAR has
# found too few, the pair is rare indeed and the planner's statement follows. At 1,000,000 the
# steps beat the one statement (the anchors' way) by 1.35x, so PostgreSQL's estimate of the
# table's rows (pg_class.reltuples, refreshed by VACUUM and ANALYZE) picks the way; each process
# reads it at most every TABLE_ROWS_SECONDS. A stale estimate changes the way, never the answer.
PLANNER_CHOOSES_BELOW = 300_000
TABLE_ROWS = "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'incidents'::regclass"
TABLE_ROWS_SECONDS = 30.0


async def _read_table_rows(conn: Conn) -> int:
    return await conn.fetchval(TABLE_ROWS)


_table_rows = Periodic(TABLE_ROWS_SECONDS, _read_table_rows)


async def _planner_chooses(conn: Conn) -> bool:
    """Whether the table is small enough for the planner's one statement (PLANNER_CHOOSES_BELOW;
    0: never, the steps at any size)."""
    if PLANNER_CHOOSES_BELOW <= 0:
        return False
    return await _table_rows.get(conn) < PLANNER_CHOOSES_BELOW


# list_incidents_with_alerts: a step's incidents (q) and each one's first readable alerts, in
# the step's round trip. The incident's id stays the first column.
WITH_FIRST_ALERTS = """
SELECT q.*, {alert_columns} FROM ({step}) q
  LEFT JOIN LATERAL (
      SELECT * FROM alerts a WHERE a.incident_id = q.id AND {readable}
       ORDER BY a.detected_at DESC, a.id DESC LIMIT {limit}
  ) a ON true
"""

# Before steps 2 and 3 of a search with several parts, which parts the index should look up: a
# part in most names ("com", "powershell") costs the index more than it saves (it has to read
# every trigram's list). The NEAR names are the sample (or, when the NEAR step is skipped, the
# evidence sample's names: _fetch): the NEAR step counts each part in them
# as it reads them, and always answers at least one row, its last column the table's size and
# then each part's count (the other columns null when the step found nothing).
PART_COUNTS = """
SELECT w.*, c.part_counts FROM (
    SELECT ARRAY[greatest((SELECT reltuples FROM pg_class WHERE oid = 'incidents'::regclass), 0)::bigint,
                 {counts}] AS part_counts
      FROM (SELECT i.name_folded FROM incidents i WHERE {keyset}
             ORDER BY i.last_activity_at {order}, i.id {order} LIMIT {near}) i
) c LEFT JOIN ({statement}) w ON true
"""


# Evidence matches (app/domain/evidence.py): found apart from the name matches, each step giving
# the first `limit` of them beyond the cursor and, when the name matches filled the page, no
# farther than the last of those ({bound}: a match beyond it cannot be on the page). Each row
# carries the evidence that matched (MATCHED) after the incident's columns.
MATCHED = """
SELECT array_agg(m.kind ORDER BY m.kind, m.value_key) AS kinds, array_agg(m.value ORDER BY m.kind, m.value_key) AS vals
  FROM (SELECT DISTINCT ON (d.kind, d.value_key) d.kind, d.value_key, d.value
          FROM incident_evidence d
         WHERE d.incident_id = {incident}.id AND {readable} AND {holds}
         ORDER BY d.kind, d.value_key, d.value LIMIT {most}) m
"""
# The walk: the newest incidents, those holding readable values that hold the words
# (evidence.holds_evidence) with those values (MATCHED), until the page is full.
EVIDENCE_WALK = """
SELECT {columns}, m.kinds::text[], m.vals FROM (
    SELECT * FROM incidents i WHERE {keyset} AND {bound} ORDER BY i.last_activity_at {order}, i.id {order} LIMIT {walk}
) i CROSS JOIN LATERAL ({matched}) m
 WHERE {matches} AND {where} ORDER BY i.last_activity_at {order}, i.id {order} LIMIT {limit}
"""
EVIDENCE_MATCHES = "{holds} AND m.kinds IS NOT NULL"
# The walk that also finds the name matches (_walk_both): its condition names only the walked
# incident, so that it filters them before the matched evidence is read (for those that pass).
NAME_OR_EVIDENCE = "(({names}) OR {holds})"
# The walk's statement, and, when it did not fill the page, where it stopped (the last three
# columns, _Walked): whether it reached its bound or the end of the queue (then its answer is the
# whole of the matches there), else the key of the last incident it checked, from which a longer
# walk goes on. Read only when the page is not full: an index-only scan of the walk's incidents,
# 1-1.5 ms for 20,000 where their pages are all-visible, but the newest incidents are those that
# writes change, and there it cost about what the walk did (20,792 heap fetches, 11.5 ms). The
# OFFSET 0 keeps the lateral subquery whole, so that `f.found < {limit}` is its one-time filter;
# pulled up into the join, it was a join filter checked after the scan had run (2026-12-06:
# `jones@fourthcoffee`'s walk 27.9 -> 10.3 ms). (The statement's first column is the incident's id.)
WALKED = """
WITH w(walked_incident) AS MATERIALIZED ({statement}),
f AS (SELECT count(DISTINCT w.walked_incident) AS found FROM w)
SELECT w.*, e.reached_end, e.to_at, e.to_id FROM f
  LEFT JOIN LATERAL (
      SELECT x.id IS NULL AS reached_end, x.last_activity_at AS to_at, x.id AS to_id
        FROM (SELECT 1) one LEFT JOIN (
            SELECT i.last_activity_at, i.id FROM incidents i WHERE {keyset} AND {bound}
             ORDER BY i.last_activity_at {order}, i.id {order} OFFSET {walk} - 1 LIMIT 1) x ON true
       WHERE f.found < {limit} OFFSET 0
  ) e ON true
  LEFT JOIN w ON true
"""


@dataclass(frozen=True)
class _Walked:
    """A walk of up to `size` incidents: its rows, and where it stopped when it did not fill the
    page (WALKED)."""

    size: int
    rows: list
    reached_end: bool  # it reached its bound or the end of the queue (False: it filled the page, or stopped short)
    to: tuple | None  # stopped short: the key of the last incident it checked

    @classmethod
    def of(cls, size: int, counted: list) -> _Walked:
        reached_end, at, number = counted[0][-3:]
        return cls(
            size, [r[:-3] for r in counted if r[0] is not None], bool(reached_end), None if at is None else (at, number)
        )


# How many incidents lie between the cursor and the bound, counted up to {most}: an index-only
# scan of the recency index, yet about as costly an incident as a walk, since the newest
# incidents are those that writes change and their pages are seldom all-visible (20,345 heap
# fetches for 19,553 entries, 14 ms, on the benchmark's database after its writes). So a region
# is counted only when the NEAR step did not already tell. When it found the page's name
# matches, no more than NEAR incidents lie before the last of them: a walk allowed NEAR or more
# walks them all, uncounted. When it found too few (the name steps went on past its NEAR
# incidents), more than NEAR lie there, and on the benchmark's 249 typeahead inputs every such
# region was longer than the walk's allowance (evidence.most_walked), 40 of 40 at a million
# incidents: counting them (2-14 ms each, up to 20,001 entries) only confirmed VALUES
# (2026-12-06); they are not counted. Nor are they when the NEAR step was skipped because the
# sample's names say it finds too few (_near_finds_few): then, as far as the sample knows, the
# page's last name match lies beyond its NEAR incidents too. Still counted: a NEAR step's region
# when the allowance is under NEAR, and a small table's, which one statement searches without a
# NEAR step.
REGION = """
SELECT count(*) FROM (
    SELECT 1 FROM incidents i WHERE {keyset} AND {bound} ORDER BY i.last_activity_at {order}, i.id {order} LIMIT {most}
) x
"""
# Through the values' trigram index: every incident holding them, the newest first (sorted by an
# expression the recency index cannot give, so that the planner does not walk it instead), then
# the matched values of those on the page (OFFSET 0 keeps the sorted incidents one subquery, whose
# order the outer ORDER BY reuses). Each incident's text first (evidence.text_may_hold): when a
# name match bounds the page near the top of the queue, the planner checks the few incidents
# there one by one instead, each through its rows, and the top's incidents are the largest.
EVIDENCE_VALUES = """
SELECT {columns}, m.kinds::text[], m.vals FROM (
    SELECT i.*, i.last_activity_at + interval '0' AS recency FROM incidents i
     WHERE {may_hold} AND {has_evidence} AND {where} AND {keyset} AND {bound}
     ORDER BY i.last_activity_at + interval '0' {order}, i.id {order} OFFSET 0
) i CROSS JOIN LATERAL ({matched}) m
 WHERE m.kinds IS NOT NULL ORDER BY i.recency {order}, i.id {order} LIMIT {limit}
"""


@dataclass(frozen=True)
class _Queue:
    """One read of the queue: what its statements are built from."""

    viewer: Viewer
    flt: IncidentFilter
    window: pagination.Window
    number: int | None  # the incident the search names: it is listed first, and not again
    pinned: list[Incident]  # that incident, on a forward first page when it passes the filters
    key: tuple | None  # the cursor's (last activity, number): the rows beyond it
    alerts_first: int | None = None  # with each incident's first alerts, up to this many
    before_pin: bool = False  # backward from the pinned incident's cursor: nothing comes before it
    sort: Sort = BY_ACTIVITY

    @property
    def limit(self) -> int:
        """The rows a step must find to fill the page and tell whether more lie beyond it."""
        return self.window.rows - len(self.pinned)

    @property
    def pin_cursor(self) -> str | None:
        return None if self.number is None else pagination.encode("p", self.number)

    def page(self, rows: list[Incident], pinned: list[Incident]) -> pagination.Page[Incident]:
        """The page, in the queue's order: the pinned incident (when it is on the page), then the
        name matches in the sort's order (whatever order the statement's joins gave them in)."""
        listed = pinned + sorted(rows, key=self.sort.key, reverse=True)
        # page_of takes them nearest to the cursor first: backward, the pinned incident is the farthest.
        page = pagination.page_of(listed[::-1] if self.window.backward else listed, self.window, _cursor_of(self.sort))
        if pinned and page.items and page.items[0] is pinned[0]:
            return dataclasses.replace(page, first_cursor=self.pin_cursor)
        return page


def _step(
    queue: _Queue, step: str, indexed: frozenset[str] | None = None, count_parts: list[str] | None = None
) -> tuple[str, list]:
    """A step's statement and parameters: the name matches beyond the cursor, with their first
    alerts if the queue asks for them, and the parts' counts in the NEAR names if asked."""
    params = _filtered(queue.viewer, queue.flt)
    if queue.number is not None:
        params.where(f"i.id <> {params.add(queue.number)}")
    _where_words(params, queue.flt, queue.viewer, indexed)
    days = ""
    if step == RECENT_STEP:  # when paging, the days from the cursor's row on, not from now
        if queue.key is not None:
            since = f"{params.add(queue.key[0])}::timestamptz"
        else:
            since = OLDEST_ACTIVITY if queue.window.backward else "now()"
        days = (DAYS_AFTER if queue.window.backward else DAYS_BEFORE).format(since=since, days=RECENT_DAYS - 1)
    window = queue.window
    sql = step.format(
        columns=INCIDENT_COLUMNS,
        where=params.conditions,
        keyset=_keyset(params, queue.key, window, queue.sort),
        order=window.order,
        sort_order=_order(queue.sort, window),
        limit=params.add(queue.limit),
        near=NEAR,
        days=days,
    )
    if queue.alerts_first is not None:
        sql = WITH_FIRST_ALERTS.format(
            step=sql,
            alert_columns=ALERT_COLUMNS,
            readable=readable_alerts(params, queue.viewer),
            limit=params.add(queue.alerts_first + 1),
        )
    if count_parts:
        counts = ", ".join(
            f"count(*) FILTER (WHERE i.name_folded LIKE lower({params.add(search.like_pattern(part))}))"
            for part in count_parts
        )
        sql = PART_COUNTS.format(
            statement=sql, counts=counts, keyset=_keyset(params, queue.key, window), order=window.order, near=NEAR
        )
    return sql, params.values


@contextlib.asynccontextmanager
async def _one_connection(conn: Conn):
    if isinstance(conn, asyncpg.Connection) or not hasattr(conn, "acquire"):
        yield conn
    else:
        async with conn.acquire() as c:
            yield c


def _found(rows: list) -> int:
    """How many incidents a step found (with their alerts joined, an incident has many rows)."""
    return len({r[0] for r in rows})


async def _rows(conn: Conn, queue: _Queue) -> tuple[list, list]:
    """The rows of the name matches (_fetch) and of the evidence matches (_fetch_evidence) that
    may be on the page; or, when the walk of _walk_both settled the page, none of the first and
    its rows (name matches among them, with an empty matched evidence unless they have some).

    One connection, one statement after the other. Running the name steps left and the
    evidence's own steps at once on a second connection (while no other request of the process
    held one) was tried and taken out (2026-12-06, docs/benchmarks.md): at an open loop of 60% of
    the floor's throughput its p99 was 4.6-5.0x the floor's, against 1.3-1.35x without, for no
    clear gain at one connection."""
    async with _one_connection(conn) as c:
        steps = await _fetch(c, queue)
        if steps.both is not None:
            return [], steps.both
        matches = list({r[0]: Incident(*r[:_INCIDENT_FIELDS]) for r in steps.rows}.values())
        return steps.rows, await _fetch_evidence(c, queue, matches, steps.walked, steps.near)


@dataclass(frozen=True)
class _NameSteps:
    """What _fetch found: the name matches' rows (records or tuples, the statement's columns in
    order) of the first step that found queue.limit incidents, or of the last; the rows of
    _walk_both when it settled the page (then the name steps stopped there); and the walk of
    _walk_both when it did not (the evidence's own steps go on from where it stopped, for a
    longer walk, evidence.longer_walk, or go to the values' index)."""

    rows: list
    both: list | None = None
    walked: _Walked | None = None
    # Whether the NEAR step found the name matches of a full page (then the last of them lies
    # within the NEAR incidents from the cursor), or found too few, or was skipped because the
    # sample's names say it would (then beyond them, as far as is known); None when no NEAR
    # step was taken or judged (a small table's).
    near: bool | None = None


async def _walk_both(conn: Conn, queue: _Queue) -> tuple[list | None, _Walked | None]:
    """After the NEAR step found too few name matches (or was skipped: _near_finds_few): when the evidence is to be walked for
    (evidence.walk_size), one walk of the newest incidents for the name and evidence matches
    together. Its rows when they settle the page (it found the page, or walked to the end of the
    queue); else None, and the steps go on as if it had not run. A fragment of a host or an email
    ("king@contoso") then costs the NEAR step and this walk, where the name steps over the whole
    table (RECENT, INDEXED: 5-8 ms at a million incidents for a word the names rarely hold) and
    the evidence's own steps came on top. Also, when it did not, the walk (None: no walk)."""
    words = evidence.words_for_evidence(search.words(queue.flt.search))
    if not words:
        return None, None
    estimate = await evidence.sample(conn)
    walk = evidence.walk_size(estimate, words, queue.limit)
    if not walk:
        return None, None
    sql, values = _evidence_step(queue, words, walk, None, estimate, names=True)
    walked = _Walked.of(walk, await conn.fetch(sql, *values))
    if _found(walked.rows) >= queue.limit or walked.reached_end:
        return walked.rows, None
    return None, walked


# After the NEAR step (or without it: _near_finds_few), the names' index looks each part up
# perhaps by its rarest trigram (search.looked_up_by_trigram), by how many of the sampled
# incidents' names hold each trigram (evidence.Sample.names, counted by PostgreSQL with the
# evidence's sample) and by the part's share of the NEAR names, when the NEAR step counted it, or
# of the sample's names, when it was skipped and _name_parts counted it (a run of a word with
# punctuation; a plain word's share is then not known): "ivan.smith@proseware.com" by "iva", "smi" and
# "sew" instead of the ten lists of "smith" and "proseware" ("ith", "war" and "are" in 8-17% of
# the names: 5.2 ms in the index alone). It also skips the RECENT step when the sample's
# names say that the INDEXED step's candidates are few (FEW_CANDIDATES at most, estimated from
# the count in the sample of the rarest thing looked up, plus SAMPLE_SLACK: a count of 0 is no
# proof of absence): RECENT then finds the page only when 10 of those few are recent, and
# otherwise INDEXED reads the same trigram lists again after it; reading 500 rows costs INDEXED
# about what RECENT costs (2.3-3 ms); and when they say that RECENT's days hold too few of the
# matches (_recent_finds_few). All choose the way, never the answer. Measured in one
# process on one sample at a time (three samples, the 198 inputs of the benchmark's mix, a
# million incidents, 2026-12-07): the inputs' total 1,237 ms before, 1,157 with the trigrams,
# 1,146 with both; inputs above 15 ms 9 before, 3 after ("rivera@contoso" 21.8 -> 16.5 ms,
# "ivan.smith@proseware.com" 22.8 -> 15.5, "woodgrovebank.com king" 20.0 -> 13.1). With the
# names of evidence.NAMES_COUNTED (5,000) incidents counted, the estimate of candidates is at most
# 500 at a million incidents only for what none of them holds (2/5,000 of the rows: 400), and
# never above 1.25 million incidents.
FEW_CANDIDATES = 500
SAMPLE_SLACK = 2


async def _few_hold(conn: Conn, indexed: frozenset[str], names: search.TrigramCounts) -> bool:
    """Whether the names' index finds at most FEW_CANDIDATES rows for what it looks up, by the
    sampled names holding its rarest trigram (search.sampled_at_most: nothing known of a word
    looked up whole with its punctuation, whose padded trigrams' lists find more names than
    those that hold it)."""
    held = [n for n in (search.sampled_at_most(looked, names) for looked in indexed) if n is not None]
    if not held or not names.texts:
        return False
    return (min(held) + SAMPLE_SLACK) / names.texts * await _table_rows.get(conn) <= FEW_CANDIDATES


# A word with punctuation whose long run is common in the names and the word is not ("fs-85218":
# "85218" in 1,764 names at a million incidents, the word in 121) is looked up by its pieces
# ("fs-" and "85218": search.pieces_pay), judged by how many of the sample's names
# (evidence.Sample.names) hold each: each name the run finds costs NAME_ROW_COST to read and
# check, each piece evidence.PIECE_ROW_COST a name the runs find to intersect (2026-12-07:
# "fs-85218" 0.8 ms by its pieces, 1.6 whole, 0.47 by "85218" and its 1,764 names to check).
NAME_ROW_COST = 1.9


def _name_share(names: evidence.Trigrams, words: list[str]) -> float:
    """The share of the sample's names holding every word (at least evidence.UNSEEN of a name)."""
    return max(names.holding(words) or 0, evidence.UNSEEN) / names.texts


async def _name_parts(conn: Conn, word: str, names: evidence.Trigrams | None) -> tuple[list[str], list[str]]:
    """What the names' index looks up for the word: its parts (search.index_parts) to choose
    among, and its pieces (search.pieces) to look up all, when they pay (above) or the word has
    no parts but itself ("lt-527"); `names`: the sample's names, if this process has read them
    (else its parts as they are)."""
    parts = search.index_parts(word)
    pieces = search.pieces(word)
    if names is None or pieces == [word]:
        return parts, []
    if parts == [word]:
        return [], pieces
    rows = max(await _table_rows.get(conn), 1)
    pays = search.pieces_pay(
        word,
        parts,
        lambda w: _name_share(names, w),
        total=rows,
        row_cost=NAME_ROW_COST,
        piece_cost=evidence.PIECE_ROW_COST,
    )
    return ([], pieces) if pays else (parts, [])


# The NEAR step is skipped when the sample's names say it finds fewer than a page (_names_holding:
# at most so many of them hold some word, times NEAR): it would walk 1,000 names for nothing (1-2
# ms at a million incidents, twice that on a database aged by writes, or a slower machine) before
# the steps that find the page. The steps left then choose their parts by the sample's names
# instead of the NEAR names' counts, and the evidence's steps are told what a NEAR step that found
# too few would have told them (_NameSteps.near False), as the sample judges it. Measured in one
# process on fixed samples (two at a time, the 200 inputs of the benchmark's mix at a million
# incidents, the two ways alternating input by input, 2026-12-07): the sum of the inputs' medians
# 1,271 -> 1,082 ms, inputs above 15 ms 17 -> 11, none slower by more than noise; skipping it
# also where it expects fewer than two pages made mid-frequency words 1.5-2.7 ms slower
# ("impersonation", "registry"). The RECENT step is also skipped, on a search's first page (its
# days are the last days up to now: evidence.DAYS_BEFORE), when that share times the share of the
# sampled incidents active in those days (plus SAMPLE_SLACK each) of the table's rows is under a
# page: "rivera@contoso" is in 78 names of a million, 3 of them among the 19,047 incidents active
# in the last 7 days (2.7 ms for RECENT, then 9.5 for INDEXED). (It takes a word's names and
# their activity to be independent: a word that only this week's incidents hold is found by
# INDEXED, reading all of its names.) Measured the same way: 1,360 -> 1,322 and 1,445 -> 1,381 ms.
def _names_holding(words: list[str], names: evidence.Trigrams) -> float:
    """At most which share of the sample's names hold every word, plus SAMPLE_SLACK names."""
    return (min(_names_holding_at_most(word, words, names) for word in words) + SAMPLE_SLACK) / names.texts


def _names_holding_at_most(word: str, words: list[str], names: evidence.Trigrams) -> float:
    """At most how many of the sampled names hold the word (a word, or a part of one), from what
    costs nothing to know: its count (_name_counted), else the count of its rarest trigram
    (search.sampled_at_most), else all of them. Counting a common word's names on its first search
    cost about 1 ms ("on", "suspicious"), as much as the NEAR step that finds its page."""
    held = _name_counted(word, words, names)
    if held is None:
        held = search.sampled_at_most(word, names)
    return names.texts if held is None else held


def _name_counted(part: str, words: list[str], names: evidence.Trigrams) -> float | None:
    """How many of the sampled names hold a word of the search that has runs of its own
    (search.index_parts: "fs-54", "rivera@contoso"), or one of those runs ("rivera"), as
    _name_parts counted them (and the names keep); None for a word typed that is its own only
    part ("lateral"), or that has no trigram ("c2"), whose names were not counted."""
    counted = search.has_trigrams(part) and (part not in words or search.index_parts(part) != [part])
    return names.holding([part]) if counted else None


def _near_finds_few(words: list[str], names: evidence.Trigrams, limit: int) -> bool:
    """Whether the sample's names say that the NEAR step finds fewer than `limit` name matches."""
    return _names_holding(words, names) * NEAR < limit


async def _recent_finds_few(conn: Conn, queue: _Queue, words: list[str], names: evidence.Trigrams) -> bool:
    """Whether the sample's names say that the RECENT step of a first page finds fewer than a page."""
    if names.recent is None or not names.texts or queue.key is not None or queue.window.backward:
        return False
    active = (names.recent + SAMPLE_SLACK) / names.texts
    return _names_holding(words, names) * active * await _table_rows.get(conn) < queue.limit


async def _fetch(conn: Conn, queue: _Queue) -> _NameSteps:
    """The name steps (_NameSteps): the NEAR step (unless the sample's names say it finds too few),
    then _walk_both, then the steps left."""
    if queue.before_pin:
        return _NameSteps([])
    words = search.words(queue.flt.search)
    estimate = evidence.sample_read()  # (None before this process's first read: the parts as they are)
    sampled = None if estimate is None or not estimate.names.texts else estimate.names
    parts: list[str] = []
    kept: list[str] = []  # (pieces, all looked up: not chosen among the parts)
    small = any(search.has_trigrams(word) for word in words) and await _planner_chooses(conn)
    for word in words:
        if search.has_trigrams(word):
            chosen, pieces = await _name_parts(conn, word, sampled)
            if small and pieces:  # (the planner's one statement looks the word up whole)
                chosen, pieces = [word], []
            parts += [part for part in chosen if part not in parts]
            kept += [piece for piece in pieces if piece not in kept]
    # The typeahead's steps walk the order of last activity (a search has no other sort: _queue).
    if not (parts or kept) or (small and len(parts) == 1):
        sql, values = _step(queue, PLAIN)
        return _NameSteps(await conn.fetch(sql, *values))
    # Each part's share of the names, when known: of the NEAR names, counted there, or of the
    # sample's names when the NEAR step is skipped and _name_parts counted it (_name_counted).
    shares: dict[str, float] = {}
    if not small and sampled is not None and _near_finds_few(words, sampled, queue.limit):
        rows = []
        if len(parts) + bool(kept) > 1:
            floor = evidence.UNSEEN / sampled.texts

            def at_most(part: str) -> float:  # (a bound on its share of the names)
                return max(_names_holding_at_most(part, words, sampled) / sampled.texts, floor)

            counted = {p: _name_counted(p, words, sampled) for p in parts}
            shares = {p: n / sampled.texts for p, n in counted.items() if n is not None}  # (not bounds)
            # (the pieces are looked up anyway: the other parts only if they pay beside them)
            given = min((at_most(k) for k in kept), default=None)
            total = max(await _table_rows.get(conn), 1)
            parts = search.choose_by_share(parts, [at_most(p) for p in parts], total=total, given=given)
        indexed = frozenset(parts + kept)
    elif len(parts) + bool(kept) <= 1 or small:
        sql, values = _step(queue, NEAR_STEP)
        rows = await conn.fetch(sql, *values)
        indexed = frozenset(parts + kept)
    else:
        sql, values = _step(queue, NEAR_STEP, count_parts=parts + kept)
        counted = await conn.fetch(sql, *values)
        total, *counts = counted[0][-1]
        rows = [r[:-1] for r in counted if r[0] is not None]
        by_part = dict(zip(parts + kept, counts, strict=True))
        given = min(((by_part[k] + 1) / (NEAR + 1) for k in kept), default=None)
        chosen = search.choose_index_parts(parts, [by_part[p] for p in parts], sample=NEAR, total=total, given=given)
        indexed = frozenset(chosen + kept)
        shares = {part: by_part[part] / NEAR for part in parts}
    if _found(rows) >= queue.limit:
        return _NameSteps(rows, near=True)
    both, walked = await _walk_both(conn, queue)
    if both is not None:
        return _NameSteps(rows, both, near=False)
    steps = (PLAIN,) if small else (RECENT_STEP, INDEXED_STEP)
    estimate = None if small else evidence.sample_read()  # (read by now for a search with evidence words)
    if estimate is not None:  # (no names sampled: every part as it is, and RECENT kept)
        names = estimate.names
        indexed = frozenset(
            search.narrowed(
                {search.looked_up_by_trigram(part, names.share, shares.get(part) or None) for part in indexed},
                lambda words: (names.holding(words) or 0) / max(names.texts, 1),
                names.share,
            )
        )
        if await _few_hold(conn, indexed, names) or await _recent_finds_few(conn, queue, words, names):
            steps = (INDEXED_STEP,)
    # At a small table, after the NEAR step, the planner's one statement (SMALL_TABLE above).
    for step in steps:
        if _found(rows) >= queue.limit:
            break
        sql, values = _step(queue, step, None if step is PLAIN else indexed)
        rows = await conn.fetch(sql, *values)
    return _NameSteps(rows, walked=walked, near=False)


def _bound(params: Params, bound: tuple | None, window: pagination.Window) -> str:
    """The incidents no farther from the cursor than `bound` (the last name match of a full page)."""
    if bound is None:
        return "true"
    nearer = "<=" if window.backward else ">="
    return f"(i.last_activity_at, i.id) {nearer} ({params.add(bound[0])}, {params.add(bound[1])})"


def _evidence_step(
    queue: _Queue,
    words: list[str],
    walk: int,
    bound: tuple | None,
    estimate: evidence.Sample,
    names: bool = False,
    after: tuple | None = None,
) -> tuple[str, list]:
    """The evidence matches beyond the cursor, by walking up to `walk` of the newest incidents
    (with where it stopped as the last columns: _Walked) or, when 0, through the values' trigram
    index. `names`: the walk also lists the name matches (their matched evidence empty unless
    they have some). `after`: a walk goes on beyond this key (where an earlier walk stopped)
    instead of the cursor."""
    params = _filtered(queue.viewer, queue.flt)
    if queue.number is not None:
        params.where(f"i.id <> {params.add(queue.number)}")
    window = queue.window
    keyset = _keyset(params, queue.key if after is None else after, window)
    bound_sql = _bound(params, bound, window)
    limit = params.add(queue.limit)
    matched = MATCHED.format(
        incident="i",
        readable=evidence.readable_values(params, queue.viewer),
        holds=evidence.holds_words(params, words, "d.value_key"),
        most=evidence.MATCHED_MOST,
    )
    if walk:
        holds = evidence.holds_evidence(params, words, queue.viewer)
        if names:
            by_name = " AND ".join(_word_clauses(params, queue.flt, queue.viewer))
            matches = NAME_OR_EVIDENCE.format(names=by_name, holds=holds)
        else:
            matches = EVIDENCE_MATCHES.format(holds=holds)
        sql = EVIDENCE_WALK.format(
            columns=INCIDENT_COLUMNS,
            keyset=keyset,
            bound=bound_sql,
            order=window.order,
            walk=walk,
            matched=matched,
            matches=matches,
            where=params.conditions,
            limit=limit,
        )
    else:
        sql = EVIDENCE_VALUES.format(
            columns=INCIDENT_COLUMNS,
            may_hold=evidence.text_may_hold(params, words, "i"),
            has_evidence=evidence.incident_has_evidence(params, words, queue.viewer, estimate),
            where=params.conditions,
            keyset=keyset,
            bound=bound_sql,
            order=window.order,
            limit=limit,
            matched=matched,
        )
    if queue.alerts_first is not None:
        sql = WITH_FIRST_ALERTS.format(
            step=sql,
            alert_columns=ALERT_COLUMNS,
            readable=readable_alerts(params, queue.viewer),
            limit=params.add(queue.alerts_first + 1),
        )
    if walk:
        sql = WALKED.format(statement=sql, keyset=keyset, bound=bound_sql, order=window.order, walk=walk, limit=limit)
    return sql, params.values


async def _fetch_evidence(
    conn: Conn, queue: _Queue, name_matches: list[Incident], walked: _Walked | None = None, near: bool | None = None
) -> list:
    """The rows of the evidence matches that may be on the page: the incident's columns, the
    matched evidence's kinds and values, then the first alerts' columns if the queue asks.
    `walked`: the walk of _walk_both that did not fill the page; then a walk only if a longer one
    is worth it (evidence.longer_walk), going on from where it stopped with the evidence matches
    it found, else the values' index. `near`: where the name steps found the page's last name
    match (_NameSteps.near). Each statement
    reads its own snapshot (as the name steps do): an incident that activity brings from beyond
    where a walk stopped to before it, between two walks, is not on this page."""
    words = evidence.words_for_evidence(search.words(queue.flt.search))
    if queue.before_pin or not words:
        return []
    bound = None
    if len(name_matches) >= queue.limit:
        nearest = sorted(name_matches, key=BY_ACTIVITY.key, reverse=not queue.window.backward)
        bound = (nearest[queue.limit - 1].last_activity_at, nearest[queue.limit - 1].id)
    estimate = await evidence.sample(conn)
    # Walked so far beyond the cursor, up to `after`, and the evidence matches found there.
    done, after, found = 0, None, []
    if walked is not None:
        done, after = walked.size, walked.to
        found = [r for r in walked.rows if r[_INCIDENT_FIELDS] is not None]
    walk = evidence.longer_walk(estimate, words, done) if done else evidence.walk_size(estimate, words, queue.limit)
    async with _one_connection(conn) as c:
        most = evidence.most_walked(estimate, words)
        if bound is not None and most > walk:
            # The name matches filled the page: a walk stops at the last of them. When fewer
            # incidents lie before it than the walk could check for VALUES' cost, walk them all.
            # The NEAR step may tell how many lie there (REGION); else they are counted.
            if near is False:
                pass  # more than NEAR incidents lie before it (or so the sample says): no walk of them all
            elif near and most >= NEAR:
                walk = most + 1  # no more than NEAR do
            else:
                params = Params()
                keyset = _keyset(params, queue.key, queue.window)
                region = REGION.format(
                    keyset=keyset, bound=_bound(params, bound, queue.window), order=queue.window.order, most=most + 1
                )
                if await c.fetchval(region, *params.values) <= most:
                    walk = most + 1
        while walk > done:
            sql, values = _evidence_step(queue, words, walk - done, bound, estimate, after=after)
            step = _Walked.of(walk - done, await c.fetch(sql, *values))
            later = {r[0] for r in step.rows}  # (as this statement saw them, if a move changed one meanwhile)
            found = [r for r in found if r[0] not in later] + step.rows
            if _found(found) >= queue.limit or step.reached_end:
                return found
            done, after = walk, step.to
            walk = evidence.longer_walk(estimate, words, walk)
        sql, values = _evidence_step(queue, words, 0, bound, estimate)
        return await c.fetch(sql, *values)


_INCIDENT_FIELDS = len(fields(Incident))


def _matched(values) -> MatchedIncident:
    kinds, found = values[_INCIDENT_FIELDS] or (), values[_INCIDENT_FIELDS + 1] or ()
    return MatchedIncident(
        *values[:_INCIDENT_FIELDS], matched_evidence=tuple(Entity(k, v) for k, v in zip(kinds, found, strict=True))
    )


def _with_evidence(by_name: list[Incident], by_evidence: list[MatchedIncident]) -> list[Incident]:
    """Both kinds of matches, once each: an incident found both ways with its evidence."""
    found = {i.id: i for i in by_name}
    found.update({i.id: i for i in by_evidence})
    return list(found.values())


SEARCH_SORT_REFUSED = (
    "A search lists newest activity first; sort applies to the queue without a search. Leave sort out, or use "
    "LAST_ACTIVITY, with a search."
)


def sort_for(viewer: Viewer, name: str) -> Sort:
    """The sort by this name, if the viewer may have it (Sort.needs_every_scope)."""
    sort = SORTS[name]
    if sort.needs_every_scope and not viewer.reads_everything:
        raise InvalidArgument(
            "sort",
            f"Sorting by {name.replace('_', ' ')} needs a grant on every scope: it would order incidents by alerts "
            "you may not read. Sort by last activity or creation, or filter by severity.",
        )
    return sort


async def _queue(
    conn: Conn,
    viewer: Viewer,
    flt: IncidentFilter,
    paging: dict,
    alerts_first: int | None = None,
    sort_name: str = BY_ACTIVITY.name,
) -> _Queue:
    """The queue as the cursor leaves it (paging: first, after, last, before), with the pinned
    incident read if it comes now on a forward page (a backward page reads it once its rows run
    out: _pinned_of)."""
    if not viewer.can_view_incidents:
        raise NotAllowed("you may not view the incidents queue")
    window = pagination.window(**paging)
    sort = sort_for(viewer, sort_name)
    if sort is not BY_ACTIVITY and search.words(flt.search):
        # No index serves a search in another order: at 1M incidents it would read every match.
        raise InvalidArgument("sort", SEARCH_SORT_REFUSED)
    await pagination.ensure_sealing_key(conn)
    number = search.as_number(flt.search)
    key = None
    pinned: list[Incident] = []
    before_pin = False
    if window.cursor is not None and number is not None and window.cursor == pagination.encode("p", number):
        # The pinned row's cursor: forward, the name matches start now; backward, nothing is above it.
        before_pin = window.backward
    elif window.cursor is None and number is not None and not window.backward:
        pinned = await _read_pinned(conn, viewer, flt, number)
    else:
        key = pagination.unseal(window.cursor, sort.cursor_kind, sort.shape, window.cursor_argument)
    return _Queue(viewer, flt, window, number, pinned, key, alerts_first, before_pin, sort)


async def _read_pinned(conn: Conn, viewer: Viewer, flt: IncidentFilter, number: int) -> list[Incident]:
    params = _pinned(viewer, flt, number)
    row = await conn.fetchrow(PINNED_INCIDENT.format(columns=INCIDENT_COLUMNS, where=params.conditions), *params.values)
    return [models.incident(row)] if row else []


async def _pinned_of(conn: Conn, queue: _Queue, found: int) -> list[Incident]:
    """The pinned incident, if the page that read `found` rows reaches it: read with the queue
    for a forward first page; for a backward one, once its rows ran out before filling the page
    and one more (it then reaches the top of the queue, where the pinned incident is)."""
    if not queue.window.backward or queue.number is None or queue.before_pin or found >= queue.limit:
        return queue.pinned
    return await _read_pinned(conn, queue.viewer, queue.flt, queue.number)


async def list_incidents(
    *,
    conn: Conn,
    viewer: Viewer,
    flt: IncidentFilter,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    sort: str = BY_ACTIVITY.name,
) -> pagination.Page[Incident]:
    """The incidents queue, most recently active first (or in another of SORTS' orders): a page
    forward (first, after) or backward (last, before), as pagination.window takes them.

    A search that is an incident number puts that incident first (when it passes the other
    filters), then the incidents whose names contain every typed word.
    """
    paging = {"first": first, "after": after, "last": last, "before": before}
    queue = await _queue(conn, viewer, flt, paging, sort_name=sort)
    names, both = await _rows(conn, queue)
    rows = _with_evidence([Incident(*r) for r in names], [_matched(r) for r in both])
    return queue.page(rows, await _pinned_of(conn, queue, len(rows)))


async def list_incidents_with_alerts(
    *,
    conn: Conn,
    viewer: Viewer,
    flt: IncidentFilter,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    alerts_first: int,
    sort: str = BY_ACTIVITY.name,
) -> tuple[pagination.Page[Incident], dict[int, pagination.Page[Alert]]]:
    """list_incidents, and the first page of each listed incident's readable alerts (as
    alerts.first_alerts_of_incidents gives them), in one statement (the pinned number aside)."""
    pagination.check_first(alerts_first)
    paging = {"first": first, "after": after, "last": last, "before": before}
    queue = await _queue(conn, viewer, flt, paging, alerts_first, sort)
    found: dict[int, Incident] = {}
    by_incident: dict[int, list[Alert]] = {}
    names, both = await _rows(conn, queue)
    for r in names:
        values = list(r)
        incident = found.setdefault(values[0], Incident(*values[:_INCIDENT_FIELDS]))
        by_incident.setdefault(incident.id, [])
        if values[_INCIDENT_FIELDS] is not None:
            by_incident[incident.id].append(Alert(*values[_INCIDENT_FIELDS:]))
    matched: dict[int, MatchedIncident] = {}
    first_alert = _INCIDENT_FIELDS + 2
    for r in both:
        values = list(r)
        incident = matched.setdefault(values[0], _matched(values))
        alerts_of = by_incident.setdefault(incident.id, [])
        if values[first_alert] is not None and all(a.id != values[first_alert] for a in alerts_of):
            alerts_of.append(Alert(*values[first_alert:]))
    rows = _with_evidence(list(found.values()), list(matched.values()))
    page = queue.page(rows, await _pinned_of(conn, queue, len(rows)))
    alert_pages = {i: alerts_page(items, alerts_first) for i, items in by_incident.items()}  # (it sorts them)
    return page, alert_pages


async def count_incidents(*, conn: Conn, viewer: Viewer, flt: IncidentFilter) -> int:
    """How many incidents the queue holds for this filter (the pinned number included)."""
    if not viewer.can_view_incidents:
        raise NotAllowed("you may not view the incidents queue")
    number = search.as_number(flt.search)
    pinned = 0
    if number is not None:
        params = _pinned(viewer, flt, number)
        pinned = await conn.fetchval(COUNT_INCIDENTS.format(where=params.conditions), *params.values)
    params = _filtered(viewer, flt)
    words = evidence.words_for_evidence(search.words(flt.search))
    if words:
        # A name match or an evidence match.
        by_name = " AND ".join(_word_clauses(params, flt, viewer))
        estimate = await evidence.sample(conn)
        by_evidence = evidence.incident_has_evidence(params, words, viewer, estimate)
        params.where(f"(({by_name}) OR {by_evidence})")
    else:
        _where_words(params, flt, viewer)
    if number is not None:
        params.where(f"i.id <> {params.add(number)}")
    total = await conn.fetchval(COUNT_INCIDENTS.format(where=params.conditions), *params.values)
    return total + pinned
