"""Reading alerts and their evidence. A viewer reads only alerts in scopes granted to them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from app.domain import evidence, models, pagination, search
from app.domain.models import ALERT_COLUMNS, Alert, Entity
from app.domain.params import Params
from app.domain.viewers import Viewer

Conn = asyncpg.Connection | asyncpg.Pool


def readable(params: Params, viewer: Viewer, alias: str = "a") -> str:
    """The alerts `a` (or the rows `alias` with an alert scope) in scopes the viewer may read."""
    everything, scopes = params.add(viewer.reads_everything), params.add(viewer.readable_scopes)
    return f"({everything} OR {alias}.scope = ANY({scopes}::text[]))"


ALERTS_BY_ID = "SELECT {columns} FROM alerts a WHERE a.id = ANY({ids}::bigint[]) AND {readable}"

ENTITIES = """
SELECT alert_id, kind::text AS kind, value FROM alert_entities
 WHERE alert_id = ANY($1::bigint[]) ORDER BY alert_id, kind, value
"""

# The first (or last) page of alerts of many incidents at once.
END_ALERTS_OF_INCIDENTS = """
SELECT {columns}
  FROM unnest({incident_ids}::bigint[]) AS t(incident_id)
  CROSS JOIN LATERAL (
      SELECT * FROM alerts a
       WHERE a.incident_id = t.incident_id AND {readable}
       ORDER BY a.detected_at {order}, a.id {order} LIMIT {limit}
  ) a
"""


@dataclass(frozen=True)
class AlertFilter:
    search: str | None = None
    incident_id: int | None = None
    statuses: list[str] | None = None
    severities: list[str] | None = None
    entity: evidence.EntityMatch | None = None  # only alerts holding it


def _cursor(alert: Alert) -> str:
    return pagination.encode("a", alert.detected_at, alert.id)


def first_page(rows: list[Alert], first: int) -> pagination.Page[Alert]:
    """The first page of an incident's alerts from up to first+1 of them, newest first."""
    rows = sorted(rows, key=lambda a: (a.detected_at, a.id), reverse=True)
    return pagination.page_of(rows, pagination.Window(first), _cursor)


async def get_alerts(*, conn: Conn, viewer: Viewer, ids: list[int]) -> dict[int, Alert]:
    """The alerts with these ids that the viewer may read."""
    params = Params()
    sql = ALERTS_BY_ID.format(columns=ALERT_COLUMNS, ids=params.add(ids), readable=readable(params, viewer))
    rows = await conn.fetch(sql, *params.values)
    return {r["id"]: models.alert(r) for r in rows}


async def entities_of(*, conn: Conn, alert_ids: list[int]) -> dict[int, list[Entity]]:
    found: dict[int, list[Entity]] = defaultdict(list)
    for row in await conn.fetch(ENTITIES, alert_ids):
        found[row["alert_id"]].append(Entity(kind=row["kind"], value=row["value"]))
    return found


# A title holds every word (ILIKE on alerts.title, read with the row) and, when a word has
# trigrams and the search is by title alone, the titles' trigram index may find them first: it
# is on alert_titles (db/migrations/0029: kept out of alerts so that moves never write into it),
# given to the planner as a semi-join it may start from, or probe by primary key.
TITLE_INDEXED = "EXISTS (SELECT 1 FROM alert_titles t WHERE t.alert_id = a.id AND {likes})"


def _title_has(params: Params, words: list[str], indexed: bool) -> str:
    """Every word in the alert's title, in any order, case-insensitively."""
    patterns = [params.add(search.like_pattern(word)) for word in words]
    clause = " AND ".join(f"a.title ILIKE {p}" for p in patterns)
    with_trigrams = [p for word, p in zip(words, patterns, strict=True) if search.has_trigrams(word)]
    if indexed and with_trigrams:
        clause += " AND " + TITLE_INDEXED.format(likes=_titles_hold(with_trigrams))
    return f"({clause})"


def _titles_hold(patterns: list[str]) -> str:
    """alert_titles' row `t` holds every pattern (placeholders), as its trigram index can serve."""
    return " AND ".join(f"t.title ILIKE {p}" for p in patterns)


def _unsearched(viewer: Viewer, flt: AlertFilter) -> Params:
    """Alerts the viewer may read that match the filter's every condition but its search."""
    params = Params()
    params.where(readable(params, viewer))
    if flt.entity is not None:
        params.where(evidence.alert_has_entity(params, flt.entity))
    if flt.incident_id is not None:
        params.where(f"a.incident_id = {params.add(flt.incident_id)}")
    params.where_any("a.status", flt.statuses, "alert_status")
    params.where_any("a.severity", flt.severities, "severity")
    return params


def _matches(params: Params, words: list[str], by_evidence: list[str], probe: bool) -> str:
    """The alert matches the search: every word in its title, or in the value of one of its
    entities (evidence.words_for_evidence: `by_evidence`, when every word may be). `probe`: the
    entities are probed alert by alert (evidence.alert_has_evidence)."""
    if by_evidence:
        # In an OR no index serves both sides: the title is read with the row, as before 0029,
        # and no probe of alert_titles is added.
        in_title = _title_has(params, words, indexed=False)
        return f"({in_title} OR {evidence.alert_has_evidence(params, by_evidence, probe)})"
    return _title_has(params, words, indexed=True)


def _filtered(viewer: Viewer, flt: AlertFilter, probe: bool = True) -> Params:
    """Alerts the viewer may read that match the filter, search included."""
    params = _unsearched(viewer, flt)
    words = search.words(flt.search)
    if words:
        params.where(_matches(params, words, evidence.words_for_evidence(words), probe))
    return params


ALERTS = """
SELECT {columns} FROM alerts a WHERE {where}
 ORDER BY a.detected_at {order}, a.id {order} LIMIT {limit}
"""

# A search whose words may be evidence, over all the alerts (not one incident's): no index serves
# the OR of title and evidence, and the one statement read every alert, or every entity row
# (12.7M at a million incidents), for a word that matches few (1.1-1.7 s a page, 4-5 s for its
# count; 3.6 s a page for a word matching none). A page is the newest of two pages, each found
# the way that suits its side (their union's first rows are the first rows of the union of each
# side's first rows):
# - the titles: the title-only search's statement (ALERTS with _title_has), whose way PostgreSQL
#   chooses from the titles' statistics: walking the newest alerts for a common word
#   ("powershell", in one alert of ten), the titles' trigram index (alert_titles, 0029) for a
#   rare one;
# - the evidence: for a fragment the evidence sample (evidence.Sample) finds in at most
#   INDEXED_EVIDENCE_MOST of the incidents, the alerts of the incidents holding a readable value
#   holding it (incident_evidence's trigram index, 0024: INDEXED_EVIDENCE), each probed by its
#   own entities; for a commoner one, the newest alerts probed one by one until the page is full
#   (ALERTS with the probe). At a million incidents the index's candidates cost about 3
#   microseconds each (5 alerts an incident), the walk about 2 an alert, and a fragment in a
#   share s of the incidents fills a page of 21 within about 100 / s alerts: the two meet near
#   s = 0.005. The estimate chooses the way, never the answer.
INDEXED_EVIDENCE_MOST = 0.005
INDEXED_EVIDENCE = """
WITH candidates AS MATERIALIZED (
    SELECT c.id FROM alerts c
     WHERE c.incident_id IN (SELECT d.incident_id FROM incident_evidence d WHERE {lookup} AND {readable})
)
SELECT {columns} FROM candidates c JOIN alerts a ON a.id = c.id WHERE {where}
 ORDER BY a.detected_at {order}, a.id {order} LIMIT {limit}
"""


def _keyset(params: Params, key: tuple | None, window: pagination.Window) -> None:
    if key is not None:
        params.where(f"(a.detected_at, a.id) {window.beyond} ({params.add(key[0])}, {params.add(key[1])})")


def _evidence_lookup(params: Params, words: list[str], viewer: Viewer, estimate: evidence.Sample) -> dict[str, str]:
    """The incidents holding a readable value that holds the words, through the values' trigram index."""
    return {
        "lookup": evidence.index_lookup(params, words, estimate),
        "readable": evidence.readable_values(params, viewer),
    }


def _searches_every_alert(flt: AlertFilter, words: list[str]) -> bool:
    """The search may be evidence, over every alert (not one incident's): _search_all, COUNT_INDEXED."""
    return flt.incident_id is None and bool(evidence.words_for_evidence(words))


async def _page_rows(conn: Conn, statement: str, params: Params, window: pagination.Window, **ways: str) -> list[Alert]:
    """Up to window.rows alerts of a statement of ALERTS' shape (its `where` the params' conditions)."""
    sql = statement.format(
        columns=ALERT_COLUMNS, where=params.conditions, order=window.order, limit=params.add(window.rows), **ways
    )
    return [models.alert(r) for r in await conn.fetch(sql, *params.values)]


async def _search_all(
    conn: Conn, viewer: Viewer, flt: AlertFilter, words: list[str], window: pagination.Window, key: tuple | None
) -> list[Alert]:
    """Up to window.rows alerts matching a search whose words may be evidence, from the cursor:
    the titles' page and the evidence's, merged."""
    params = _unsearched(viewer, flt)
    _keyset(params, key, window)
    params.where(_title_has(params, words, indexed=True))
    found = {a.id: a for a in await _page_rows(conn, ALERTS, params, window)}

    estimate = await evidence.sample(conn)
    params = _unsearched(viewer, flt)
    _keyset(params, key, window)
    params.where(evidence.alert_has_evidence(params, words, probe=True))
    if estimate.incidents_share(words) <= INDEXED_EVIDENCE_MOST:
        ways = _evidence_lookup(params, words, viewer, estimate)
        found.update((a.id, a) for a in await _page_rows(conn, INDEXED_EVIDENCE, params, window, **ways))
    else:
        found.update((a.id, a) for a in await _page_rows(conn, ALERTS, params, window))
    newest_first = window.order == "DESC"
    return sorted(found.values(), key=lambda a: (a.detected_at, a.id), reverse=newest_first)[: window.rows]


async def list_alerts(
    *,
    conn: Conn,
    viewer: Viewer,
    flt: AlertFilter,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> pagination.Page[Alert]:
    """Alerts the viewer may read, most recently detected first: a page forward (first, after)
    or backward (last, before), as pagination.window takes them."""
    window = pagination.window(first=first, after=after, last=last, before=before)
    key = pagination.decode(window.cursor, "a", (datetime, int), window.cursor_argument)
    words = search.words(flt.search)
    if _searches_every_alert(flt, words):
        found = await _search_all(conn, viewer, flt, words, window, key)
    else:  # one incident's alerts (its index), or a title search (alert_titles' index may serve)
        params = _filtered(viewer, flt)
        _keyset(params, key, window)
        found = await _page_rows(conn, ALERTS, params, window)
    return pagination.page_of(found, window, _cursor)


COUNT_ALERTS = "SELECT count(*) FROM alerts a WHERE {where}"
# The count of a search whose evidence the sample finds rare: the alerts whose title's trigrams
# hold the words and those of the incidents holding a readable value holding them, each checked
# by the rule. A commoner one is counted over every alert (COUNT_ALERTS), its entities read once
# in a hash rather than probed alert by alert.
COUNT_INDEXED = """
WITH candidates AS MATERIALIZED (
    SELECT t.alert_id AS id FROM alert_titles t WHERE {in_titles}
    UNION
    SELECT c.id FROM alerts c
     WHERE c.incident_id IN (SELECT d.incident_id FROM incident_evidence d WHERE {lookup} AND {readable})
)
SELECT count(*) FROM candidates c JOIN alerts a ON a.id = c.id WHERE {where}
"""


async def count_alerts(*, conn: Conn, viewer: Viewer, flt: AlertFilter) -> int:
    words = search.words(flt.search)
    if _searches_every_alert(flt, words):
        estimate = await evidence.sample(conn)
        if estimate.incidents_share(words) <= INDEXED_EVIDENCE_MOST:
            params = _unsearched(viewer, flt)
            params.where(_matches(params, words, words, probe=True))
            in_titles = _titles_hold([params.add(search.like_pattern(w)) for w in words])
            sql = COUNT_INDEXED.format(
                where=params.conditions, in_titles=in_titles, **_evidence_lookup(params, words, viewer, estimate)
            )
            return await conn.fetchval(sql, *params.values)
    params = _filtered(viewer, flt, probe=False)
    return await conn.fetchval(COUNT_ALERTS.format(where=params.conditions), *params.values)


async def first_alerts_of_incidents(
    *, conn: Conn, viewer: Viewer, incident_ids: list[int], first: int | None = None, last: int | None = None
) -> dict[int, pagination.Page[Alert]]:
    """The first page of readable alerts of each incident (with `last`, the last page), in one query."""
    window = pagination.window(first=first, last=last)
    params = Params()
    sql = END_ALERTS_OF_INCIDENTS.format(
        columns=ALERT_COLUMNS,
        incident_ids=params.add(incident_ids),
        readable=readable(params, viewer),
        order=window.order,
        limit=params.add(window.rows),
    )
    rows = await conn.fetch(sql, *params.values)
    grouped: dict[int, list[Alert]] = {i: [] for i in incident_ids}
    for row in rows:
        grouped[row["incident_id"]].append(models.alert(row))
    return {i: pagination.page_of(items, window, _cursor) for i, items in grouped.items()}
