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
        likes = " AND ".join(f"t.title ILIKE {p}" for p in with_trigrams)
        clause += " AND " + TITLE_INDEXED.format(likes=likes)
    return f"({clause})"


def _filtered(viewer: Viewer, flt: AlertFilter) -> Params:
    """Alerts the viewer may read that match the filter: every word in the title, or in the value
    of one of its entities (evidence.words_for_evidence)."""
    params = Params()
    params.where(readable(params, viewer))
    words = search.words(flt.search)
    by_evidence = evidence.words_for_evidence(words)
    if by_evidence:
        # In an OR the planner walks the alerts either way (no index serves both sides): the
        # title is read with the row, as before 0029, and no probe of alert_titles is added.
        in_title = _title_has(params, words, indexed=False)
        params.where(f"({in_title} OR {evidence.alert_has_evidence(params, by_evidence)})")
    elif words:
        params.where(_title_has(params, words, indexed=True))
    if flt.entity is not None:
        params.where(evidence.alert_has_entity(params, flt.entity))
    if flt.incident_id is not None:
        params.where(f"a.incident_id = {params.add(flt.incident_id)}")
    params.where_any("a.status", flt.statuses, "alert_status")
    params.where_any("a.severity", flt.severities, "severity")
    return params


ALERTS = """
SELECT {columns} FROM alerts a WHERE {where}
 ORDER BY a.detected_at {order}, a.id {order} LIMIT {limit}
"""


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
    params = _filtered(viewer, flt)
    if key is not None:
        params.where(f"(a.detected_at, a.id) {window.beyond} ({params.add(key[0])}, {params.add(key[1])})")
    sql = ALERTS.format(
        columns=ALERT_COLUMNS, where=params.conditions, order=window.order, limit=params.add(window.rows)
    )
    rows = await conn.fetch(sql, *params.values)
    return pagination.page_of([models.alert(r) for r in rows], window, _cursor)


COUNT_ALERTS = "SELECT count(*) FROM alerts a WHERE {where}"


async def count_alerts(*, conn: Conn, viewer: Viewer, flt: AlertFilter) -> int:
    params = _filtered(viewer, flt)
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
