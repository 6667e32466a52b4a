"""Moving alerts to another incident: the flow behind linkAlerts.

All-or-nothing: either every alert moves, or nothing changes (Refused is raised before the move's
one statement, or after it wrote nothing). Row locks are taken in a fixed order (alerts by id,
then incidents by id) so that concurrent moves of overlapping alerts queue up instead of
deadlocking.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import asyncpg

from app.config import settings
from app.domain import activity, aggregates, models, moves, naming
from app.domain.errors import Problem, ProblemCode, Refused
from app.domain.ids import ALERT, INCIDENT, parse_id
from app.domain.incidents import VISIBLE, is_visible
from app.domain.models import (
    ALERT_COLUMNS,
    ENTRY_COLUMNS,
    INCIDENT_COLUMNS,
    SEVERITY_ORDER,
    ActivityEntry,
    Alert,
    Incident,
    IncidentStatus,
)
from app.domain.text import storable
from app.domain.viewers import Viewer

MAX_COMMENT = 30_000

DEVICES = """
SELECT DISTINCT ON (value_key) value FROM alert_entities
 WHERE alert_id = ANY($1::bigint[]) AND kind = 'device' ORDER BY value_key, value
"""
ALERTS_BY_ID = f"SELECT {ALERT_COLUMNS} FROM alerts a WHERE a.id = ANY($1::bigint[])"
INCIDENT_BY_ID = f"SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE i.id = $1"

# The move is one statement from the wait to the log: a function of the session (SESSION_SQL,
# which app/db.py runs on every connection the pool opens), so that the advisory locks other
# moves queue on, and the row locks, are held for no round trip to the server but the COMMIT's.
# Written in two statements with the server between them and a COMMIT, the 16 movers spent
# 1.4 ms a move idle in a transaction holding their incidents, against 3.5-4 ms running; called
# outside a transaction, so that it commits as it ends, the function took them from 189 to 204
# moves/s, and inside one it gained nothing (docs/benchmarks.md, 2026-12-06 late evening): it is
# COMMIT's round trip that the others wait for. A function in pg_temp, made from this module's
# SQL, rather than a migration: the statement stays beside the rules it shares
# (aggregates.RECOMPUTE, incidents.VISIBLE, the column lists), and two versions of the server
# never share one definition.
#
# Its statements, each with a snapshot of its own (PL/pgSQL, in READ COMMITTED):
#   1. the plan mode: generic plans (planned once per connection) for a move of fewer than
#      GENERIC_PLANS_BELOW alerts: a custom plan of the move took 0.7-0.9 ms of its 3.3-3.7 ms
#      (a million incidents, 2026-12-04), time spent holding the locks. Every row the statements
#      read is reached by a primary key or by alerts_incident, whatever the values; what a
#      generic plan loses is the hashing of a constant array of 9 elements or more
#      (`a.id <> ALL(...)` against each alert of the incidents a move touches).
#   2. the wait for the incidents (moves.WAITING), before any row lock, so that the move holds
#      no transaction id while it waits; then the alerts locked in id order; then their
#      incidents and the target in id order (lock_incidents, db/migrations/0006). Each reads the
#      rows as the one before left them locked: after any move that committed meanwhile, and
#      holding an incident such a move created.
#   3. the target's check, again now that it is locked: an incident the viewer may see
#      (incidents.VISIBLE) that is not REDIRECTED; else nothing is written and `refused` says so.
#   4. a new target, when asked for: named by the caller (from the alerts as read before the
#      wait: their titles, categories and devices do not move), created after the wait.
#   5. the alerts that move (those not in the target already: none is a replay, nothing written)
#      and what the move needs of their incidents.
#   6. the move, in one statement: the alerts' new incident; the incidents' derived fields and
#      status (an incident left with no alerts is finished: resolved; alerts arriving in a
#      resolved incident are unhandled work: reopened); the moves row, an item for each alert,
#      the incidents it touched; and the log entries, in order: the new incident's, then each
#      alert's unlinked and linked (in the order the caller gave them), then each resolved
#      source's, then the reopened target's, all naming the move. Every part reads the snapshot
#      from before the move, so an incident's alerts are counted as they will be: its own but
#      the moving ones, and for the target those too.
# It answers one row: refused; the target as it was before the move; the alerts, locked, as they
# were before the move; the touched incidents after it; the entries written; the move's id.
_RECOMPUTE_AFTER_MOVE = aggregates.RECOMPUTE.format(
    incidents="v_touched",
    alerts="""(
             SELECT a.severity, a.detected_at, a.scope FROM alerts a WHERE a.incident_id = t.id AND a.id <> ALL(v_moving)
             UNION ALL
             SELECT a.severity, a.detected_at, a.scope FROM alerts a WHERE t.id = v_target AND a.id = ANY(v_moving)
        ) a""",
    status=""",
       status = CASE WHEN i.id <> v_target AND s.n = 0 AND i.status IN ('active', 'in_progress')
                     THEN 'resolved'::incident_status
                     WHEN i.id = v_target AND i.status = 'resolved' THEN 'active'::incident_status
                     ELSE i.status END""",
)
_TARGET = f"(SELECT t FROM (SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE i.id = v_target) t)"
_ALERTS = (
    f"(SELECT array_agg(a ORDER BY a.id) FROM (SELECT {ALERT_COLUMNS} FROM alerts a WHERE a.id = ANY(p_alerts)) a)"
)
_ENTRY = "p_actor, p_comment"
SESSION_SQL = f"""
CREATE OR REPLACE FUNCTION pg_temp.link_alerts(
    p_alerts bigint[], p_target bigint, p_wait_keys integer[], p_wait_class integer, p_generic boolean,
    p_actor text, p_comment text, p_reads_everything boolean, p_readable text[],
    p_name text, p_severity severity, p_last_activity_at timestamptz, p_name_scopes text[]
) RETURNS SETOF record LANGUAGE plpgsql AS $link$
DECLARE
    v_target bigint := p_target;
    v_moving bigint[];
    v_sources bigint[];
    v_touched bigint[];
    v_open bigint[];
    v_reopened_from bigint;
BEGIN
    PERFORM set_config('plan_cache_mode', CASE WHEN p_generic THEN 'force_generic_plan' ELSE 'force_custom_plan' END,
                       true);
    PERFORM {moves.WAITING.format(keys="p_wait_keys", wait_class="p_wait_class").removeprefix("SELECT ")};
    PERFORM 1 FROM alerts a WHERE a.id = ANY(p_alerts) ORDER BY a.id FOR UPDATE;
    PERFORM 1 FROM lock_incidents(ARRAY(SELECT a.incident_id FROM alerts a WHERE a.id = ANY(p_alerts)) || p_target);
    IF p_target IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM incidents i
         WHERE i.id = p_target AND i.status <> 'redirected'
           AND {VISIBLE.format(everything="p_reads_everything", scopes="p_readable")}
    ) THEN
        RETURN QUERY SELECT true, {_TARGET}, NULL::record[], NULL::record[], NULL::record[], NULL::bigint;
        RETURN;
    END IF;
    IF p_target IS NULL THEN
        INSERT INTO incidents (name, severity, last_activity_at, name_scopes)
        VALUES (p_name, p_severity, p_last_activity_at, p_name_scopes) RETURNING id INTO v_target;
    END IF;
    SELECT array_agg(a.id ORDER BY o.n), array_agg(DISTINCT a.incident_id ORDER BY a.incident_id)
      INTO v_moving, v_sources
      FROM unnest(p_alerts) WITH ORDINALITY AS o(id, n) JOIN alerts a ON a.id = o.id
     WHERE a.incident_id <> v_target;
    IF v_moving IS NULL THEN
        RETURN QUERY SELECT false, {_TARGET}, {_ALERTS}, NULL::record[], NULL::record[], NULL::bigint;
        RETURN;
    END IF;
    SELECT array_agg(i.id ORDER BY i.id) FILTER (WHERE i.id <> v_target AND i.status IN ('active', 'in_progress')),
           CASE WHEN bool_or(i.id = v_target AND i.status = 'resolved') THEN v_sources[1] END,
           array_agg(i.id ORDER BY i.id)
      INTO v_open, v_reopened_from, v_touched
      FROM incidents i WHERE i.id = ANY(v_sources || v_target);
    RETURN QUERY
    WITH moved AS (UPDATE alerts SET incident_id = v_target WHERE id = ANY(v_moving) RETURNING id),
    incident AS ({_RECOMPUTE_AFTER_MOVE}),
    mv AS (
        INSERT INTO moves (kind, actor, comment, target_incident_id, created_target, alert_count, alert_scopes,
                           source_incident_ids)
        SELECT 'link', p_actor, p_comment, v_target, p_target IS NULL, count(*),
               array_agg(DISTINCT a.scope ORDER BY a.scope), array_agg(DISTINCT a.incident_id ORDER BY a.incident_id)
          FROM alerts a WHERE a.id = ANY(v_moving)
        RETURNING id
    ),
    item AS (
        INSERT INTO move_items (move_id, alert_id, from_incident_id, to_incident_id)
        SELECT mv.id, a.id, a.incident_id, v_target FROM mv, alerts a WHERE a.id = ANY(v_moving)
    ),
    touched AS (INSERT INTO move_incidents (incident_id, move_id) SELECT t.id, mv.id FROM mv, unnest(v_touched) t(id)),
    l AS (
        INSERT INTO activity_log ({activity.INSERT_COLUMNS}, move_id)
        SELECT {activity.INSERT_COLUMNS}, (SELECT id FROM mv) FROM (
            SELECT 1 AS part, 0::bigint AS n, v_target AS incident_id, 'incident_created'::activity_kind AS kind,
                   p_actor AS actor, p_comment AS comment, NULL::bigint AS alert_id, NULL::bigint AS other_incident_id,
                   cardinality(p_alerts) AS alert_count
             WHERE p_target IS NULL
            UNION ALL
            SELECT 1, 2 * o.n - 1, a.incident_id, 'alert_unlinked', {_ENTRY}, a.id, v_target, NULL
              FROM unnest(v_moving) WITH ORDINALITY AS o(id, n) JOIN alerts a ON a.id = o.id
            UNION ALL
            SELECT 1, 2 * o.n, v_target, 'alert_linked', {_ENTRY}, a.id, a.incident_id, NULL
              FROM unnest(v_moving) WITH ORDINALITY AS o(id, n) JOIN alerts a ON a.id = o.id
            UNION ALL
            SELECT 2, i.id, i.id, 'incident_resolved', {_ENTRY}, NULL, v_target, NULL
              FROM incident i WHERE i.alert_count = 0 AND i.id = ANY(v_open)
            UNION ALL
            SELECT 3, 0, v_target, 'incident_reopened', {_ENTRY}, NULL, v_reopened_from, NULL
             WHERE v_reopened_from IS NOT NULL
        ) e ORDER BY part, n
        RETURNING *
    )
    SELECT false, {_TARGET}, {_ALERTS}, (SELECT array_agg(i) FROM incident i),
           (SELECT array_agg(e ORDER BY e.id) FROM (SELECT {ENTRY_COLUMNS} FROM l LEFT JOIN alerts la ON la.id = l.alert_id) e),
           (SELECT id FROM mv);
END
$link$
"""
LINK = """
SELECT * FROM pg_temp.link_alerts($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    AS m(refused boolean, target record, alerts record[], incidents record[], entries record[], move_id bigint)
"""
GENERIC_PLANS_BELOW = 9  # PostgreSQL's MIN_ARRAY_SIZE_FOR_HASHED_SAOP


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


@dataclass(frozen=True)
class LinkPlan:
    """A move checked and ready to apply: apply_link's one statement's arguments."""

    target: Target
    viewer: Viewer
    selected_ids: list[int]  # in the order given, once each
    arguments: tuple


async def link_alerts(
    *, conn: asyncpg.Connection, viewer: Viewer, alert_ids: list[str], target: Target, comment: str
) -> LinkResult:
    """Move alerts to an existing or a new incident, writing both incidents' logs: plan_link,
    then apply_link, in the caller's transaction."""
    plan = await plan_link(conn=conn, viewer=viewer, alert_ids=alert_ids, target=target, comment=comment)
    return await apply_link(conn, plan)


async def plan_link(
    *, conn: asyncpg.Connection, viewer: Viewer, alert_ids: list[str], target: Target, comment: str
) -> LinkPlan:
    """The move's checks, by statements that write nothing: raises Refused with every problem
    found, the input's, the alerts' and the target's at once (the alerts and the target are
    looked up whatever the input's problems, with the statements a move runs anyway)."""
    ids, comment, problems = _check_input(viewer, alert_ids, target, comment)
    ids = _distinct_alerts(ids)
    numbers = {i: n for i in ids if (n := parse_id(i, ALERT)) is not None}

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
    new = await _new_incident(conn, [found[n] for n in selected_ids]) if target.create_new else _NO_NEW_INCIDENT
    arguments = (
        selected_ids,
        target_id,
        moves.wait_keys(touched if target_id is None else [*touched, target_id]),
        moves.WAIT_CLASS,
        len(selected_ids) < GENERIC_PLANS_BELOW,
        viewer.name,
        comment,
        viewer.reads_everything,
        viewer.readable_scopes,
        *new,
    )
    return LinkPlan(target, viewer, selected_ids, arguments)


async def apply_link(conn: asyncpg.Connection, plan: LinkPlan) -> LinkResult:
    """The move, in one statement (LINK): in the caller's transaction, or in none, when it
    commits as it ends. Raises Refused, having written nothing, when the target changed since
    plan_link read it. The result shows only what the viewer may see after the move."""
    target, viewer, selected_ids = plan.target, plan.viewer, plan.selected_ids
    row = await conn.fetchrow(LINK, *plan.arguments)
    before = Incident(*row["target"]) if row["target"] is not None else None
    if row["refused"]:  # the target changed before it was locked; nothing was written
        if not (problems := _target_problems(target, before, viewer)):
            raise RuntimeError(f"the move refused target {target.existing_incident_id}, which this viewer may link to")
        raise Refused(problems)
    locked = {r[0]: Alert(*r) for r in row["alerts"]}
    selected = [locked[n] for n in selected_ids]  # as they are now that no one else can move them
    if row["move_id"] is None:  # a replay: every alert is already there
        return LinkResult(before, [], selected, [])
    after = {r[0]: Incident(*r) for r in row["incidents"]}
    return visible_result(
        LinkResult(
            target=after[before.id],
            sources=[incident for number, incident in sorted(after.items()) if number != before.id],
            # As they are now: locked since they were read, and only moved since.
            alerts=[dataclasses.replace(a, incident_id=before.id) for a in selected],
            entries=[ActivityEntry(*r) for r in row["entries"]],
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


# No new incident: the function's last four arguments.
_NO_NEW_INCIDENT = (None, None, None, None)


async def _new_incident(conn: asyncpg.Connection, alerts: list[Alert]) -> tuple:
    """The new incident's name, severity, last activity and name scopes, from the alerts as read
    before the wait (their titles, categories, devices and scopes do not move; the severity and
    last activity are recomputed by the move itself)."""
    by_time = sorted(alerts, key=lambda a: (a.detected_at, a.id))
    devices = [r["value"] for r in await conn.fetch(DEVICES, [a.id for a in alerts])]
    name = naming.incident_name([a.title for a in by_time], [a.category for a in by_time], devices)
    severity = max((a.severity for a in alerts), key=SEVERITY_ORDER.index)
    return name, severity, max(a.detected_at for a in alerts), sorted({a.scope for a in alerts})
