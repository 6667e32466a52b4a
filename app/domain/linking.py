"""Moving alerts to another incident: the flow behind linkAlerts.

All-or-nothing: either every alert moves, or the caller's transaction is rolled back by the
Refused exception and nothing changes. Row locks are taken in a fixed order (alerts by id, then
incidents by id) so that concurrent moves of overlapping alerts queue up instead of deadlocking.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import asyncpg

from app.config import settings
from app.domain import activity, aggregates, models, moves, naming
from app.domain.activity import NewEntry
from app.domain.errors import Problem, ProblemCode, Refused
from app.domain.ids import ALERT, INCIDENT, parse_id
from app.domain.incidents import is_visible
from app.domain.models import (
    ALERT_COLUMNS,
    ENTRY_COLUMNS,
    INCIDENT_COLUMNS,
    SEVERITY_ORDER,
    ActivityEntry,
    ActivityKind,
    Alert,
    Incident,
    IncidentStatus,
)
from app.domain.text import storable
from app.domain.viewers import Viewer

MAX_COMMENT = 30_000

# The wait for the incidents (moves.WAITING: $3, the keys, and $4 its class; before any row
# lock, so that the move holds no transaction id while it waits), then the alerts $1 locked in id
# order, then their incidents and the target $2 (if any) in id order, in one statement: the
# advisory locks other moves queue on are held one round trip less (the row locks as before);
# the wait and the row locks share one statement_timeout. The alerts' rows are the latest
# (FOR UPDATE follows a row updated after the statement's snapshot), so the incidents are those
# of the alerts as locked, after any move that finished while this one waited for them, and
# lock_incidents (db/migrations/0006) reads them with a snapshot taken after that wait, so it
# also holds an incident such a move created.
LOCK = f"""
WITH w AS MATERIALIZED ({moves.WAITING.format(keys="$3", wait_class="$4")}),
a AS MATERIALIZED (
    SELECT {ALERT_COLUMNS} FROM alerts a WHERE a.id = ANY($1::bigint[]) AND (SELECT count(*) FROM w) >= 0
     ORDER BY a.id FOR UPDATE
)
SELECT (SELECT array_agg(a) FROM a) AS alerts,
       (SELECT array_agg(i) FROM (
            SELECT {INCIDENT_COLUMNS} FROM lock_incidents(ARRAY(SELECT a.incident_id FROM a) || $2::bigint) i
       ) i) AS incidents
"""
DEVICES = """
SELECT DISTINCT ON (value_key) value FROM alert_entities
 WHERE alert_id = ANY($1::bigint[]) AND kind = 'device' ORDER BY value_key, value
"""
CREATE_INCIDENT = f"""
INSERT INTO incidents AS i (name, severity, last_activity_at, name_scopes) VALUES ($1, $2::severity, $3, $4)
RETURNING {INCIDENT_COLUMNS}
"""
ALERTS_BY_ID = f"SELECT {ALERT_COLUMNS} FROM alerts a WHERE a.id = ANY($1::bigint[])"

# The move, in one statement (the movers hold their row locks for one round trip): the alerts'
# new incident; the incidents' derived fields and status (an incident left with no alerts is
# finished: resolved; alerts arriving in a resolved incident are unhandled work: reopened); and
# the log entries, in order: the given ones ($8-$14: the new incident's, then each alert's
# unlinked and linked), then each resolved source's, then the reopened target's.
# Every part reads the snapshot from before the move, so an incident's alerts are counted as
# they will be: its own but the moving ones, and for the target those too.
#   $1 the target and the sources, $2 the target, $3 the moving alerts, $4 the sources that
#   were open (active or in progress), $5 the actor, $6 the comment, $7 the source the reopened
#   entry names (or null: the target was not resolved).
_RECOMPUTE_AFTER_MOVE = aggregates.RECOMPUTE.format(
    alerts="""(
             SELECT a.severity, a.detected_at, a.scope FROM alerts a WHERE a.incident_id = t.id AND a.id <> ALL($3::bigint[])
             UNION ALL
             SELECT a.severity, a.detected_at, a.scope FROM alerts a WHERE t.id = $2 AND a.id = ANY($3::bigint[])
        ) a""",
    status=""",
       status = CASE WHEN i.id <> $2 AND s.n = 0 AND i.status IN ('active', 'in_progress') THEN 'resolved'::incident_status
                     WHEN i.id = $2 AND i.status = 'resolved' THEN 'active'::incident_status
                     ELSE i.status END""",
)
# The move is recorded in the same statement: the moves row ($15: it created its target), an item
# for each alert (its incident as the statement found it, before the update), the incidents it
# touched, and the move on every log entry.
MOVE = f"""
WITH moved AS (UPDATE alerts SET incident_id = $2 WHERE id = ANY($3::bigint[]) RETURNING id),
incident AS ({_RECOMPUTE_AFTER_MOVE}),
mv AS (
    INSERT INTO moves (kind, actor, comment, target_incident_id, created_target, alert_count, alert_scopes,
                       source_incident_ids)
    SELECT 'link', $5, $6, $2, $15, count(*), array_agg(DISTINCT a.scope ORDER BY a.scope),
           array_agg(DISTINCT a.incident_id ORDER BY a.incident_id)
      FROM alerts a WHERE a.id = ANY($3::bigint[])
    RETURNING id
),
item AS (
    INSERT INTO move_items (move_id, alert_id, from_incident_id, to_incident_id)
    SELECT mv.id, a.id, a.incident_id, $2 FROM mv, alerts a WHERE a.id = ANY($3::bigint[])
),
touched AS (INSERT INTO move_incidents (incident_id, move_id) SELECT t.id, mv.id FROM mv, unnest($1::bigint[]) t(id)),
l AS (
    INSERT INTO activity_log ({activity.INSERT_COLUMNS}, move_id)
    SELECT {activity.INSERT_COLUMNS}, (SELECT id FROM mv) FROM (
        SELECT 1 AS part, n, {activity.INSERT_COLUMNS} FROM unnest({activity.entry_parameters(8)})
             WITH ORDINALITY AS e({activity.INSERT_COLUMNS}, n)
        UNION ALL
        SELECT 2, i.id, i.id, 'incident_resolved'::activity_kind, $5::text, $6::text, NULL::bigint, $2, NULL::integer
          FROM incident i WHERE i.alert_count = 0 AND i.id = ANY($4::bigint[])
        UNION ALL
        SELECT 3, 0, $2, 'incident_reopened'::activity_kind, $5::text, $6::text, NULL::bigint, $7::bigint, NULL::integer
         WHERE $7::bigint IS NOT NULL
    ) e ORDER BY part, n
    RETURNING *
)
SELECT (SELECT array_agg(i) FROM incident i) AS incidents,
       (SELECT array_agg(e ORDER BY e.id) FROM (SELECT {ENTRY_COLUMNS} FROM l LEFT JOIN alerts la ON la.id = l.alert_id) e) AS entries,
       (SELECT id FROM mv) AS move_id
"""
INCIDENT_BY_ID = f"SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE i.id = $1"
# A move of a few alerts (an analyst's) plans its statements once per connection (generic
# plans) instead of at every call, as the app's connections do otherwise (app/db.py): a custom
# plan of MOVE took 0.7-0.9 ms of its 3.3-3.7 ms (a million incidents, one connection,
# 2026-12-04), time the movers spend holding the row locks others queue for. Every row these
# statements read is reached by a primary key or by alerts_incident, whatever the values; what a
# generic plan loses is the hashing of a constant array of GENERIC_PLANS_BELOW elements or more
# (`a.id <> ALL($3)` against each alert of the incidents a move touches), so larger moves keep
# their custom plans (the same statement either way: a move's statements do not depend on its size).
PLAN_MODE = "SELECT set_config('plan_cache_mode', $1, true)"
GENERIC_PLANS_BELOW = 9  # PostgreSQL's MIN_ARRAY_SIZE_FOR_HASHED_SAOP
OPEN = (IncidentStatus.ACTIVE, IncidentStatus.IN_PROGRESS)  # a source emptied by the move is resolved


@dataclass(frozen=True)
class Target:
    """Exactly one of: an existing incident's number, or create_new=True."""

    existing_incident_id: str | None = None
    create_new: bool | None = None


@dataclass(frozen=True)
class LinkResult:
    target: Incident | None  # None only in a replay, when the viewer can no longer see it
    sources: list[Incident]
    alerts: list[Alert]
    entries: list[ActivityEntry]
    move_id: int | None = None  # None when nothing moved


def check_comment(comment: str) -> tuple[str, list[Problem]]:
    """The comment trimmed, and what is wrong with it: every move, merge and revert asks for one."""
    text = comment.strip()
    if not text:
        return text, [Problem(ProblemCode.INVALID_INPUT, "A comment saying why is required.", "comment")]
    if not storable(text):
        return text, [Problem(ProblemCode.INVALID_INPUT, "The comment must not contain NUL characters.", "comment")]
    if len(text) > MAX_COMMENT:
        return text, [
            Problem(
                ProblemCode.INVALID_INPUT,
                f"The comment is limited to {MAX_COMMENT} characters; got {len(text)}.",
                "comment",
            )
        ]
    return text, []


def _check_input(
    viewer: Viewer, alert_ids: list[str], target: Target, comment: str
) -> tuple[list[str], str, list[Problem]]:
    """The distinct ids to look up (none when the list itself is refused), the trimmed comment,
    and the problems of the input itself."""
    problems: list[Problem] = []
    if not viewer.can_view_incidents:
        problems.append(
            Problem(ProblemCode.FORBIDDEN, "You may not view the incidents queue, so you may not move alerts.")
        )
    ids = list(dict.fromkeys(i.strip() for i in alert_ids))
    if not ids:
        problems.append(Problem(ProblemCode.INVALID_INPUT, "Select at least one alert.", "alertIds"))
    elif len(ids) > (most := settings().link_max_alerts):
        problems.append(
            Problem(ProblemCode.INVALID_INPUT, f"At most {most} alerts can move at once; got {len(ids)}.", "alertIds")
        )
        ids = []  # the limit bounds the work: so many are not looked up
    text, comment_problems = check_comment(comment)
    problems += comment_problems
    given = [target.existing_incident_id is not None, target.create_new is not None]
    if sum(given) != 1:
        problems.append(
            Problem(ProblemCode.INVALID_INPUT, "Give exactly one of existingIncidentId or createNew.", "target")
        )
    elif target.create_new is False:
        problems.append(
            Problem(
                ProblemCode.INVALID_INPUT,
                "createNew must be true; to use an existing incident give existingIncidentId.",
                "target.createNew",
            )
        )
    return ids, text, problems


async def link_alerts(
    *, conn: asyncpg.Connection, viewer: Viewer, alert_ids: list[str], target: Target, comment: str
) -> LinkResult:
    """Move alerts to an existing or a new incident, writing both incidents' logs.

    Must run inside a transaction owned by the caller; raises Refused with every problem found:
    the input's, the alerts' and the target's at once (the alerts and the target are looked up
    whatever the input's problems, with the statements a move runs anyway). The result shows
    only what the viewer may see after the move.
    """
    ids, comment, problems = _check_input(viewer, alert_ids, target, comment)
    ids = _distinct_alerts(ids)
    numbers = {i: n for i in ids if (n := parse_id(i, ALERT)) is not None}

    await conn.execute(PLAN_MODE, "force_generic_plan" if len(ids) < GENERIC_PLANS_BELOW else "force_custom_plan")
    # Permissions are decided before any lock is taken: waiting on the lock of an alert or an
    # incident the viewer may not see would tell, by its timing, that it exists.
    found = {r["id"]: models.alert(r) for r in await conn.fetch(ALERTS_BY_ID, sorted(numbers.values()))} if ids else {}
    # Unknown and unreadable alerts are reported alike, so nobody learns an unreadable one exists.
    not_found = [
        i for i in ids if i not in numbers or numbers[i] not in found or not viewer.can_read(found[numbers[i]].scope)
    ]
    forbidden = [i for i in ids if i not in not_found and not viewer.can_write(found[numbers[i]].scope)]
    if not_found:
        problems.append(
            Problem(
                ProblemCode.ALERT_NOT_FOUND, f"No alert found with id {', '.join(not_found)}.", "alertIds", not_found
            )
        )
    if forbidden:
        problems.append(
            Problem(ProblemCode.FORBIDDEN, f"You may read but not move {', '.join(forbidden)}.", "alertIds", forbidden)
        )
    target_id = _target_number(target)
    # Only a target given alone is looked up, and only for a viewer with the queue permission:
    # opening incidents by number is browsing the queue.
    if target.existing_incident_id is not None and target.create_new is None and viewer.can_view_incidents:
        problems += _target_problems(target, await _incident(conn, target_id), viewer)
    if problems:
        raise Refused(problems)

    selected_ids = [numbers[i] for i in ids]
    # The incidents as read above (a move that commits meanwhile changes them: the row locks decide).
    touched = [found[n].incident_id for n in selected_ids]
    waits = moves.wait_keys(touched if target_id is None else [*touched, target_id])
    row = await conn.fetchrow(LOCK, sorted(selected_ids), target_id, waits, moves.WAIT_CLASS)
    locked = {r[0]: Alert(*r) for r in row["alerts"] or []}
    selected = [locked[n] for n in selected_ids]  # as they are now that no one else can move them
    incidents = {r[0]: Incident(*r) for r in row["incidents"] or []}
    # The target may have changed before we locked it.
    if target.existing_incident_id is not None and (
        problems := _target_problems(target, incidents.get(target_id), viewer)
    ):
        raise Refused(problems)

    entries: list[NewEntry] = []
    if target.create_new:
        target_incident = await _create_incident(conn, selected)
        entries.append(
            NewEntry(target_incident.id, ActivityKind.INCIDENT_CREATED, viewer.name, comment, alert_count=len(selected))
        )
    else:
        target_incident = incidents[target_id]  # type: ignore[index]

    moving = [a for a in selected if a.incident_id != target_incident.id]
    if not moving:  # a replay: every alert is already there
        return LinkResult(target_incident, [], selected, [])

    for a in moving:
        entries.append(
            NewEntry(a.incident_id, ActivityKind.ALERT_UNLINKED, viewer.name, comment, a.id, target_incident.id)
        )
        entries.append(
            NewEntry(target_incident.id, ActivityKind.ALERT_LINKED, viewer.name, comment, a.id, a.incident_id)
        )
    moved_from = sorted({a.incident_id for a in moving})
    row = await conn.fetchrow(
        MOVE,
        sorted({target_incident.id, *moved_from}),
        target_incident.id,
        [a.id for a in moving],
        [i for i in moved_from if incidents[i].status in OPEN],
        viewer.name,
        comment,
        moved_from[0] if target_incident.status == IncidentStatus.RESOLVED else None,
        *activity.entry_arrays(entries),
        bool(target.create_new),
    )
    after = {r[0]: Incident(*r) for r in row["incidents"]}
    written = [ActivityEntry(*r) for r in row["entries"]]
    return visible_result(
        LinkResult(
            target=after[target_incident.id],
            sources=[after[i] for i in moved_from],
            # As they are now: locked since they were read, and only moved since.
            alerts=[dataclasses.replace(a, incident_id=target_incident.id) for a in selected],
            entries=written,
            move_id=row["move_id"],
        ),
        viewer,
    )


def visible_result(result: LinkResult, viewer: Viewer) -> LinkResult:
    """What the viewer may see of a move, now: a source left holding only alerts they may not
    read (and its log entries) is not shown, nor are its severity and activity, which come from
    those. A replayed move's target may have changed since: it is shown only while visible."""
    shown = {i.id for i in [result.target, *result.sources] if is_visible(i, viewer)}
    return LinkResult(
        target=result.target if result.target.id in shown else None,
        sources=[i for i in result.sources if i.id in shown],
        alerts=[a for a in result.alerts if viewer.can_read(a.scope)],
        entries=[e for e in result.entries if e.incident_id in shown],
        move_id=result.move_id,  # the payload shows it only to a viewer who may see it (its loader)
    )


def _distinct_alerts(ids: list[str]) -> list[str]:
    """The ids in order, once per alert: " alert_1" and "alert_1" name the same one."""
    seen: set[int] = set()
    kept = []
    for i in ids:
        if (n := parse_id(i, ALERT)) is not None:
            if n in seen:
                continue
            seen.add(n)
        kept.append(i)
    return kept


def _target_number(target: Target) -> int | None:
    if target.existing_incident_id is None:
        return None
    return parse_id(target.existing_incident_id, INCIDENT)


def _target_problems(target: Target, found: Incident | None, viewer: Viewer) -> list[Problem]:
    if found is None or not is_visible(found, viewer):
        return [
            Problem(
                ProblemCode.INCIDENT_NOT_FOUND,
                f"No incident found with id {target.existing_incident_id}.",
                "target.existingIncidentId",
            )
        ]
    if found.status == IncidentStatus.REDIRECTED:
        return [
            Problem(
                ProblemCode.TARGET_NOT_LINKABLE,
                # Not the number: the viewer may not see the incident it was merged into.
                f"Incident {found.node_id} was merged into another incident; move the alerts to its redirectIncident.",
                "target.existingIncidentId",
            )
        ]
    return []


async def _incident(conn: asyncpg.Connection, number: int | None) -> Incident | None:
    if number is None:
        return None
    row = await conn.fetchrow(INCIDENT_BY_ID, number)
    return models.incident(row) if row else None


async def _create_incident(conn: asyncpg.Connection, alerts: list[Alert]) -> Incident:
    by_time = sorted(alerts, key=lambda a: (a.detected_at, a.id))
    devices = [r["value"] for r in await conn.fetch(DEVICES, [a.id for a in alerts])]
    name = naming.incident_name([a.title for a in by_time], [a.category for a in by_time], devices)
    severity = max((a.severity for a in alerts), key=SEVERITY_ORDER.index)
    row = await conn.fetchrow(
        CREATE_INCIDENT, name, severity, max(a.detected_at for a in alerts), sorted({a.scope for a in alerts})
    )
    return models.incident(row)
