"""Triage: an incident's lifecycle, behind updateIncident and addComment.

Who may change an incident: a viewer with the queue permission who may see it and holds a write
grant on the scope of at least one of its alerts (those it last held, when it holds none). An
incident none of whose alerts the viewer may write is someone else's work: they may read it,
not change it.

Every change writes a typed entry in the incident's log (STATUS_CHANGED, ASSIGNED, CLASSIFIED,
COMMENTED) with the actor and the old and new values, in the transaction of the change; a value
set to what it already is writes nothing, so a retried field change writes nothing again (a
comment is written again unless the call carries an idempotency key). Resolving needs a
classification. The incident is checked without a lock, then its row is locked and checked
again (moves lock alerts, then incidents: this takes no alert lock, so it cannot deadlock with them).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from app.domain import models
from app.domain.errors import Problem, ProblemCode, Refused
from app.domain.ids import INCIDENT, parse_id
from app.domain.incidents import get_incidents, is_visible
from app.domain.linking import check_comment
from app.domain.models import (
    DETERMINATIONS,
    ENTRY_COLUMNS,
    INCIDENT_COLUMNS,
    ActivityEntry,
    ActivityKind,
    Classification,
    Determination,
    Incident,
    IncidentStatus,
)
from app.domain.text import only_storable
from app.domain.users import NAME_PATTERN
from app.domain.viewers import Viewer

ME = "me"
# What updateIncident may set: REDIRECTED is a merge's to set.
SETTABLE_STATUSES = (IncidentStatus.ACTIVE, IncidentStatus.IN_PROGRESS, IncidentStatus.RESOLVED)

LOCK_INCIDENT = f"SELECT {INCIDENT_COLUMNS} FROM lock_incidents(ARRAY[$1::bigint]) i"
ASSIGNABLE = "SELECT name FROM users WHERE name = $1 AND enabled AND can_view_incidents"
UPDATE = f"""
UPDATE incidents i SET status = $2::incident_status, assigned_to = $3,
       classification = $4::incident_classification, determination = $5::incident_determination
 WHERE i.id = $1
RETURNING {INCIDENT_COLUMNS}
"""
WRITE_ENTRIES = f"""
WITH l AS (
    INSERT INTO activity_log (incident_id, kind, actor, comment, old_value, new_value)
    SELECT $1, e.kind, $2, $3, e.old_value, e.new_value
      FROM unnest($4::activity_kind[], $5::text[], $6::text[]) WITH ORDINALITY AS e(kind, old_value, new_value, n)
     ORDER BY e.n
    RETURNING *
)
SELECT {ENTRY_COLUMNS} FROM l LEFT JOIN alerts la ON la.id = l.alert_id ORDER BY l.id
"""

UNSET = object()  # an argument not given: that value stays as it is


@dataclass(frozen=True)
class Changes:
    """What updateIncident asks for: UNSET for each value it leaves as it is."""

    status: object = UNSET
    assigned_to: object = UNSET  # a user's name, ME, or None (nobody)
    classification: object = UNSET
    determination: object = UNSET


@dataclass(frozen=True)
class TriageResult:
    incident: Incident
    entries: list[ActivityEntry]


def may_change(incident: Incident, viewer: Viewer) -> bool:
    """The rule: the queue permission, and a write grant on one of the incident's alerts' scopes
    (its last alerts', when it holds none; a "*" write grant for one that never held any). A
    REDIRECTED incident is changed through the one it was merged into."""
    if incident.status == IncidentStatus.REDIRECTED:
        return False
    if not viewer.can_view_incidents or not is_visible(incident, viewer):
        return False
    if not incident.alert_scopes:
        return viewer.can_write("*")
    return any(viewer.can_write(s) for s in incident.alert_scopes)


def _not_found(incident_id: str, field: str) -> Problem:
    return Problem(ProblemCode.INCIDENT_NOT_FOUND, f"No incident found with id {incident_id.strip()}.", field)


async def _locked_incident(
    conn: asyncpg.Connection, viewer: Viewer, incident_id: str, field: str, action: str, problems: list[Problem]
) -> Incident:
    """The incident, locked, once the viewer may change it; Refused, with the input's problems
    too, otherwise."""
    if not viewer.can_view_incidents:
        # Not looked up: waiting on an incident's lock would tell that it exists.
        refusal = Problem(ProblemCode.FORBIDDEN, f"You may not view the incidents queue, so you may not {action}.")
        raise Refused([refusal, *problems])
    number = parse_id(incident_id, INCIDENT)
    # Looked up before any lock: waiting on the lock of an incident the viewer may not see would
    # tell that it exists (and how busy it is).
    seen = await get_incidents(conn=conn, viewer=viewer, ids=[number]) if number is not None else {}
    if number not in seen:
        raise Refused([_not_found(incident_id, field), *problems])
    _check_may_change(seen[number], viewer, field, action, problems)
    # The lock, then the same checks on what it holds: a move or a merge may have changed the
    # incident's alerts, or redirected it, meanwhile.
    row = await conn.fetchrow(LOCK_INCIDENT, number)
    incident = models.incident(row) if row else None
    if incident is None or not is_visible(incident, viewer):
        raise Refused([_not_found(incident_id, field), *problems])
    _check_may_change(incident, viewer, field, action, problems)
    return incident


def _check_may_change(incident: Incident, viewer: Viewer, field: str, action: str, problems: list[Problem]) -> None:
    if incident.status == IncidentStatus.REDIRECTED:
        refusal = Problem(
            ProblemCode.ALREADY_REDIRECTED,
            f"Incident {incident.node_id} was merged into another incident; change that one instead.",
            field,
            incident_ids=[incident.node_id],
        )
        raise Refused([refusal, *problems])
    if not may_change(incident, viewer):
        refusal = Problem(
            ProblemCode.FORBIDDEN,
            f"You may not {action}: none of its alerts is yours to change (a write grant on its scope).",
            field,
            incident_ids=[incident.node_id],
        )
        raise Refused([refusal, *problems])


async def _write(
    conn: asyncpg.Connection,
    incident_id: int,
    actor: str,
    comment: str | None,
    entries: list[tuple[str, str | None, str | None]],
) -> list[ActivityEntry]:
    if not entries:
        return []
    kinds, olds, news = (list(column) for column in zip(*entries, strict=True))
    rows = await conn.fetch(WRITE_ENTRIES, incident_id, actor, comment, kinds, olds, news)
    return [models.entry(r) for r in rows]


def _classified(classification: str, determination: str) -> str:
    return classification if determination == Determination.UNKNOWN else f"{classification}:{determination}"


async def _assignee(conn: asyncpg.Connection, viewer: Viewer, given: object) -> tuple[str | None, list[Problem]]:
    if given is None:
        return None, []
    name = str(given).strip()
    if name.lower() == ME:
        return viewer.name, []
    # A name no user can have (users.name's rule) is not looked up: NUL would not even reach the query.
    if not NAME_PATTERN.match(name) or await conn.fetchval(ASSIGNABLE, name) is None:
        return None, [
            Problem(
                ProblemCode.ASSIGNEE_NOT_FOUND,
                f'No user named "{only_storable(name)[:64]}" may work on incidents (an enabled user with the queue '
                "permission).",
                "assignedTo",
            )
        ]
    return name, []


async def update_incident(
    *, conn: asyncpg.Connection, viewer: Viewer, incident_id: str, changes: Changes, comment: str | None = None
) -> TriageResult:
    """Change an incident's status, assignee, classification and determination at once, writing
    one log entry per value that changed (each with the comment, when one is given; a comment
    alone is a COMMENTED entry).

    Must run inside a transaction owned by the caller; raises Refused with every problem found.
    """
    problems: list[Problem] = []
    text = None
    if comment is not None:
        text, problems = check_comment(comment)
    if changes.status is not UNSET and changes.status not in SETTABLE_STATUSES:
        problems.append(
            Problem(
                ProblemCode.INVALID_INPUT,
                "status must be ACTIVE, IN_PROGRESS or RESOLVED; an incident is REDIRECTED by mergeIncidents.",
                "status",
            )
        )
    incident = await _locked_incident(conn, viewer, incident_id, "id", "change this incident", problems)

    status = incident.status if changes.status is UNSET else str(changes.status)
    assigned_to = incident.assigned_to
    if changes.assigned_to is not UNSET:
        assigned_to, assignee_problems = await _assignee(conn, viewer, changes.assigned_to)
        problems += assignee_problems
    classification = incident.classification
    determination = incident.determination
    if changes.classification is not UNSET:
        classification = str(changes.classification or Classification.UNKNOWN)
        # A new classification starts without a determination unless one is given.
        if classification != incident.classification:
            determination = Determination.UNKNOWN
    if changes.determination is not UNSET:
        determination = str(changes.determination or Determination.UNKNOWN)
    if determination != Determination.UNKNOWN and determination not in DETERMINATIONS[classification]:
        problems.append(
            Problem(
                ProblemCode.INVALID_INPUT,
                f"The determination {determination.upper()} does not go with the classification "
                f"{classification.upper()}.",
                "determination",
            )
        )
    # Checked on a change only: an incident emptied by moves is resolved with no classification,
    # and taking it or writing a note on it must still work.
    resolving = status != incident.status or classification != incident.classification
    if status == IncidentStatus.RESOLVED and classification == Classification.UNKNOWN and resolving:
        problems.append(
            Problem(
                ProblemCode.CLASSIFICATION_REQUIRED,
                "Resolving an incident needs a classification: say whether it was a true positive, a false "
                "positive or expected activity.",
                "classification",
            )
        )
    if problems:
        raise Refused(problems)

    entries: list[tuple[str, str | None, str | None]] = []
    if status != incident.status:
        entries.append((ActivityKind.STATUS_CHANGED, incident.status, status))
    if assigned_to != incident.assigned_to:
        entries.append((ActivityKind.ASSIGNED, incident.assigned_to, assigned_to))
    before = _classified(incident.classification, incident.determination)
    after = _classified(classification, determination)
    if after != before:
        entries.append((ActivityKind.CLASSIFIED, before, after))
    if not entries and text is not None:
        entries.append((ActivityKind.COMMENTED, None, None))
    if not entries:
        return TriageResult(incident, [])
    row = await conn.fetchrow(UPDATE, incident.id, status, assigned_to, classification, determination)
    written = await _write(conn, incident.id, viewer.name, text, entries)
    return TriageResult(models.incident(row), written)


async def add_comment(*, conn: asyncpg.Connection, viewer: Viewer, incident_id: str, text: str) -> TriageResult:
    """A note in the incident's log (COMMENTED), outside any change. Same rule as a change."""
    comment, problems = check_comment(text)
    for p in problems:
        p.field = "text"
    incident = await _locked_incident(conn, viewer, incident_id, "incidentId", "comment on this incident", problems)
    if problems:
        raise Refused(problems)
    return TriageResult(
        incident, await _write(conn, incident.id, viewer.name, comment, [(ActivityKind.COMMENTED, None, None)])
    )
