"""The incidents' activity logs: writing entries and reading them, newest first.

Messages are rendered when read, for the viewer who reads them: an alert the viewer may not
read appears as "an alert you cannot view", never by its title.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from app.domain import incidents, models, pagination
from app.domain.models import ENTRY_COLUMNS, ENTRY_FROM, SUMMARY_KINDS, ActivityEntry, ActivityKind, Incident, Move
from app.domain.viewers import SYSTEM_ACTOR, Viewer

Conn = asyncpg.Connection | asyncpg.Pool

INSERT_COLUMNS = "incident_id, kind, actor, comment, alert_id, other_incident_id, alert_count"


def entry_parameters(first: int) -> str:
    """New entries as 7 array parameters from ${first} on, which entry_arrays gives."""
    types = ["bigint", "activity_kind", "text", "text", "bigint", "bigint", "integer"]
    return ", ".join(f"${first + n}::{t}[]" for n, t in enumerate(types))


# The entries as stored, in one statement: the alerts it joins are read as the transaction's
# earlier statements left them (this one writes only the log).
INSERT_ENTRIES = f"""
WITH l AS (
    INSERT INTO activity_log ({INSERT_COLUMNS}) SELECT * FROM unnest({entry_parameters(1)}) RETURNING *
)
SELECT {ENTRY_COLUMNS} FROM l LEFT JOIN alerts la ON la.id = l.alert_id ORDER BY l.id
"""

ENTRIES_BY_ID = f"SELECT {ENTRY_COLUMNS} FROM {ENTRY_FROM} WHERE l.id = ANY($1::bigint[]) ORDER BY l.id"

# The newest (or oldest) entries of each incident's log; and entries of one log beyond a cursor.
# {order} and {beyond}: pagination.Window's.
END_ENTRIES_OF_INCIDENTS = f"""
SELECT e.* FROM unnest($1::bigint[]) AS t(incident_id)
 CROSS JOIN LATERAL (
     SELECT {ENTRY_COLUMNS} FROM {ENTRY_FROM}
      WHERE l.incident_id = t.incident_id ORDER BY l.id {{order}} LIMIT $2
 ) e
"""

ENTRIES_BEYOND = f"""
SELECT {ENTRY_COLUMNS} FROM {ENTRY_FROM}
 WHERE l.incident_id = $1 AND l.id {{beyond}} $2 ORDER BY l.id {{order}} LIMIT $3
"""

COUNT_ENTRIES = "SELECT count(*) FROM activity_log WHERE incident_id = $1"


@dataclass(frozen=True)
class NewEntry:
    incident_id: int
    kind: str
    actor: str
    comment: str | None = None
    alert_id: int | None = None
    other_incident_id: int | None = None
    alert_count: int | None = None


async def write(*, conn: asyncpg.Connection, entries: list[NewEntry]) -> list[ActivityEntry]:
    """Append entries in the given order and return them as stored."""
    if not entries:
        return []
    rows = await conn.fetch(INSERT_ENTRIES, *entry_arrays(entries))
    return [models.entry(r) for r in rows]


def entry_arrays(entries: list[NewEntry]) -> list[list]:
    """The entries as the 7 parameters of entry_parameters."""
    return [
        [e.incident_id for e in entries],
        [e.kind for e in entries],
        [e.actor for e in entries],
        [e.comment for e in entries],
        [e.alert_id for e in entries],
        [e.other_incident_id for e in entries],
        [e.alert_count for e in entries],
    ]


async def entries_by_id(*, conn: Conn, ids: list[int]) -> list[ActivityEntry]:
    return [models.entry(r) for r in await conn.fetch(ENTRIES_BY_ID, ids)]


def _cursor(entry: ActivityEntry) -> str:
    return pagination.encode("l", entry.id)


async def first_entries_of_incidents(
    *, conn: Conn, incident_ids: list[int], first: int | None = None, last: int | None = None
) -> dict[int, pagination.Page[ActivityEntry]]:
    """The newest entries of each incident's log (with `last`, the oldest), in one query."""
    window = pagination.window(first=first, last=last)
    grouped: dict[int, list[ActivityEntry]] = {i: [] for i in incident_ids}
    for row in await conn.fetch(END_ENTRIES_OF_INCIDENTS.format(order=window.order), incident_ids, window.rows):
        grouped[row["incident_id"]].append(models.entry(row))
    return {i: pagination.page_of(items, window, _cursor) for i, items in grouped.items()}


async def entries_page(
    *,
    conn: Conn,
    incident_id: int,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> pagination.Page[ActivityEntry]:
    """A page of an incident's log, newest first: forward (first, after) or backward (last,
    before), as pagination.window takes them."""
    window = pagination.window(first=first, after=after, last=last, before=before)
    if window.cursor is None:
        return (await first_entries_of_incidents(conn=conn, incident_ids=[incident_id], first=first, last=last))[
            incident_id
        ]
    (entry_id,) = pagination.decode(window.cursor, "l", (int,), window.cursor_argument)
    sql = ENTRIES_BEYOND.format(beyond=window.beyond, order=window.order)
    rows = await conn.fetch(sql, incident_id, entry_id, window.rows)
    return pagination.page_of([models.entry(r) for r in rows], window, _cursor)


async def count_entries(*, conn: Conn, incident_id: int) -> int:
    return await conn.fetchval(COUNT_ENTRIES, incident_id)


def _reads_alert(entry: ActivityEntry, viewer: Viewer) -> bool:
    return entry.alert_scope is not None and viewer.can_read(entry.alert_scope)


def _alert_ref(entry: ActivityEntry, viewer: Viewer) -> str:
    if entry.alert_id is None:
        return "an alert"
    if _reads_alert(entry, viewer):
        return f'alert #{entry.alert_id} "{entry.alert_title}"'
    return "an alert you cannot view"


def reads_subject(entry: ActivityEntry, viewer: Viewer, incident: Incident, move: Move | None = None) -> bool:
    """Whether the viewer may read every alert the entry speaks of: its alert; for a merge's or a
    revert's summary, every alert of its move; for an incident created by a move, the alerts it
    was named after (the alerts moved); for a resolved or reopened incident, all of its alerts."""
    if entry.alert_id is not None:
        return _reads_alert(entry, viewer)
    if entry.kind in SUMMARY_KINDS:
        return move is not None and (viewer.reads_everything or all(viewer.can_read(s) for s in move.alert_scopes))
    if entry.kind == ActivityKind.INCIDENT_CREATED:
        return incidents.name_seen_by(incident, viewer) == incident.name
    return incidents.reads_all_alerts(incident, viewer)


def comment(entry: ActivityEntry, viewer: Viewer, incident: Incident, move: Move | None = None) -> str | None:
    """The mover's comment, unless the entry speaks of alerts the viewer may not read: the
    comment says why they moved, and may name what is in them."""
    return entry.comment if reads_subject(entry, viewer, incident, move) else None


def _alerts(entry: ActivityEntry, counted: bool) -> str:
    """A summary's alerts: how many, only to a viewer who may read them all."""
    if not counted:
        return "alerts"
    n = entry.alert_count or 0
    return f"{n} alert{'s' if n != 1 else ''}"


def _words(value: str | None) -> str:
    """A stored value as words: in_progress is "In progress"."""
    return (value or "none").replace("_", " ").capitalize()


def _classification(classification: str | None, determination: str | None) -> str:
    if classification in (None, "unknown"):
        return "Unknown (no classification)"
    words = _words(classification)
    return words if determination in (None, "unknown") else f"{words}, {_words(determination).lower()}"


def message(
    entry: ActivityEntry, viewer: Viewer, incident: Incident, other_visible: bool, move: Move | None = None
) -> str:
    """The sentence a person reads in the log, as this viewer may read it (incident: whose log it
    is in). other_visible: whether the viewer may see the other incident (where the alert came
    from or went); its number is named only then. move: the move that wrote a summary entry."""
    alert = _alert_ref(entry, viewer)
    subject = alert[:1].upper() + alert[1:]  # the same words, opening a sentence
    other = f"incident {entry.other_incident_id}" if other_visible else "an incident you cannot view"
    by = "" if entry.actor == SYSTEM_ACTOR else f" by {entry.actor}"
    match entry.kind:
        case ActivityKind.ALERT_CORRELATED:
            return f"{subject} was correlated with this incident by shared evidence."
        case ActivityKind.ALERT_LINKED:
            return f"{subject} was moved here from {other}{by}."
        case ActivityKind.ALERT_UNLINKED:
            return f"{subject} was moved to {other}{by}."
        case ActivityKind.INCIDENT_CREATED if entry.actor == SYSTEM_ACTOR:
            return f"Incident created for {alert}."
        case ActivityKind.INCIDENT_CREATED if not reads_subject(entry, viewer, incident):
            return f"Incident created{by} to hold alerts moved from other incidents."
        case ActivityKind.INCIDENT_CREATED:
            n = entry.alert_count or 0
            return f"Incident created{by} to hold {n} alert{'s' if n != 1 else ''} moved from other incidents."
        case ActivityKind.INCIDENT_RESOLVED:
            return f"Incident resolved automatically: its last alert was moved to {other}{by}."
        case ActivityKind.INCIDENT_REOPENED:
            return f"Incident reopened: alerts were moved here from {other}{by}."
        case ActivityKind.INCIDENT_MERGED:
            alerts = _alerts(entry, reads_subject(entry, viewer, incident, move))
            return f"{other[:1].upper() + other[1:]} was merged into this incident{by}: its {alerts} moved here."
        case ActivityKind.INCIDENT_REDIRECTED:
            alerts = _alerts(entry, reads_subject(entry, viewer, incident, move))
            return f"Merged into {other}{by}: this incident's {alerts} moved there."
        case ActivityKind.ALERTS_RETURNED:
            alerts = _alerts(entry, reads_subject(entry, viewer, incident, move))
            return f"{alerts[:1].upper() + alerts[1:]} moved back here from {other}{by}, reverting a move."
        case ActivityKind.ALERTS_SENT_BACK:
            alerts = _alerts(entry, reads_subject(entry, viewer, incident, move))
            return f"{alerts[:1].upper() + alerts[1:]} moved back to {other}{by}, reverting a move."
        case ActivityKind.INCIDENT_UNMERGED:
            return f"No longer merged into {other}: the merge was reverted{by}."
        case ActivityKind.STATUS_CHANGED:
            return f"Status changed from {_words(entry.old_status)} to {_words(entry.new_status)}{by}."
        case ActivityKind.ASSIGNED if entry.new_assignee is None:
            return f"Unassigned from {entry.old_assignee}{by}."
        case ActivityKind.ASSIGNED:
            return f"Assigned to {entry.new_assignee}{by}."
        case ActivityKind.CLASSIFIED:
            return f"Classified as {_classification(entry.new_classification, entry.new_determination)}{by}."
        case ActivityKind.COMMENTED:
            return f"Comment{by}."
    return entry.kind.replace("_", " ").capitalize() + "."
