"""Moves: what every linkAlerts, mergeIncidents and revertMove call changed, alert by alert.

A move is recorded with its items (each alert, the incident it left, the incident it reached) and
the incidents it touched, in the transaction that makes it. So an alert's history is its items in
move order, after the incident ingestion put it in; and a revert knows where each alert came from.

Who sees a move: a viewer with the queue permission who may see at least one incident it touched
(as an incident's log shows its entries). Its comment, alert count and items are shown as far as
the viewer may read its alerts, as an activity log entry's are.

`apply` is the set-based statement pair that merges and reverts run (one statement per step,
whatever the number of alerts); linkAlerts records its moves inside its own single statement
(app/domain/linking.py), where the movers hold their locks for one round trip.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import asyncpg

from app.domain import activity, aggregates, models, pagination
from app.domain.activity import NewEntry
from app.domain.alerts import readable as readable_alerts
from app.domain.incidents import visible as visible_incidents
from app.domain.models import ENTRY_COLUMNS, MOVE_COLUMNS, ActivityEntry, ActivityKind, Incident, IncidentStatus, Move
from app.domain.params import Params
from app.domain.viewers import Viewer

Conn = asyncpg.Connection | asyncpg.Pool

OPEN = (IncidentStatus.ACTIVE, IncidentStatus.IN_PROGRESS)

# --- reading ----------------------------------------------------------------------------------

MOVES_BY_ID = """
SELECT {columns} FROM moves m
 WHERE m.id = ANY({ids}::bigint[])
   AND EXISTS (SELECT 1 FROM move_incidents mi JOIN incidents i ON i.id = mi.incident_id
                WHERE mi.move_id = m.id AND {visible})
"""


async def get_moves(*, conn: Conn, viewer: Viewer, ids: list[int]) -> dict[int, Move]:
    """The moves with these numbers that the viewer may see (none without the queue permission)."""
    if not viewer.can_view_incidents or not ids:
        return {}
    params = Params()
    sql = MOVES_BY_ID.format(columns=MOVE_COLUMNS, ids=params.add(ids), visible=visible_incidents(params, viewer))
    return {r["id"]: models.move(r) for r in await conn.fetch(sql, *params.values)}


def reads_all_alerts(move: Move, viewer: Viewer) -> bool:
    """Whether the viewer may read every alert the move moved: then its comment and count are theirs."""
    return viewer.reads_everything or all(viewer.can_read(s) for s in move.alert_scopes)


READABLE_COUNTS = """
SELECT mi.move_id, count(*)::integer AS n FROM move_items mi JOIN alerts a ON a.id = mi.alert_id
 WHERE mi.move_id = ANY({ids}::bigint[]) AND {readable} GROUP BY mi.move_id
"""


async def readable_counts(*, conn: Conn, viewer: Viewer, move_ids: list[int]) -> dict[int, int]:
    """How many alerts of each move the viewer may read."""
    params = Params()
    sql = READABLE_COUNTS.format(ids=params.add(move_ids), readable=readable_alerts(params, viewer))
    found = {r["move_id"]: r["n"] for r in await conn.fetch(sql, *params.values)}
    return {m: found.get(m, 0) for m in move_ids}


# A move's items, by alert id, beyond the cursor's alert: the primary key's range.
ITEMS = """
SELECT mi.move_id, mi.alert_id, mi.from_incident_id, mi.to_incident_id
  FROM move_items mi JOIN alerts a ON a.id = mi.alert_id
 WHERE mi.move_id = {move} AND {readable} AND {beyond}
 ORDER BY mi.alert_id {order} LIMIT {limit}
"""
COUNT_ITEMS = """
SELECT count(*) FROM move_items mi JOIN alerts a ON a.id = mi.alert_id WHERE mi.move_id = {move} AND {readable}
"""


def _item_cursor(item: models.MoveItem) -> str:
    return pagination.encode("mi", item.alert_id)


async def items_page(
    *,
    conn: Conn,
    viewer: Viewer,
    move_id: int,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> pagination.Page[models.MoveItem]:
    """A page of the move's items whose alerts the viewer may read, by alert id (the lowest first)."""
    window = pagination.window(first=first, after=after, last=last, before=before)
    key = pagination.decode(window.cursor, "mi", (int,), window.cursor_argument)
    params = Params()
    # This list runs upwards (lowest alert first): forward reads above the cursor, backward below it.
    beyond = "true" if key is None else f"mi.alert_id {'<' if window.backward else '>'} {params.add(key[0])}"
    sql = ITEMS.format(
        move=params.add(move_id),
        readable=readable_alerts(params, viewer),
        beyond=beyond,
        order="DESC" if window.backward else "ASC",
        limit=params.add(window.rows),
    )
    rows = await conn.fetch(sql, *params.values)
    return pagination.page_of([models.MoveItem(*r) for r in rows], window, _item_cursor)


async def count_items(*, conn: Conn, viewer: Viewer, move_id: int) -> int:
    params = Params()
    sql = COUNT_ITEMS.format(move=params.add(move_id), readable=readable_alerts(params, viewer))
    return await conn.fetchval(sql, *params.values)


# Each alert's placements: where ingestion put it (its first item's origin, or where it is), then
# each item, in move order (move_items_alert's range per alert).
HISTORY = """
SELECT a.id AS alert_id, a.created_at, a.incident_id, mi.move_id, mi.from_incident_id, mi.to_incident_id,
       m.created_at AS moved_at
  FROM alerts a
  LEFT JOIN move_items mi ON mi.alert_id = a.id
  LEFT JOIN moves m ON m.id = mi.move_id
 WHERE a.id = ANY($1::bigint[])
 ORDER BY a.id, mi.move_id
"""


async def histories(*, conn: Conn, alert_ids: list[int]) -> dict[int, list[models.Placement]]:
    """Every incident each alert has been in, oldest first; the last is where it is now."""
    found: dict[int, list[models.Placement]] = defaultdict(list)
    for r in await conn.fetch(HISTORY, alert_ids):
        placements = found[r["alert_id"]]
        if not placements:
            first = r["from_incident_id"] if r["move_id"] is not None else r["incident_id"]
            placements.append(models.Placement(r["alert_id"], first, None, r["created_at"]))
        if r["move_id"] is not None:
            placements.append(models.Placement(r["alert_id"], r["to_incident_id"], r["move_id"], r["moved_at"]))
    return {a: found.get(a, []) for a in alert_ids}


# The moves into and out of an incident, newest first: move_incidents' primary key range.
INCIDENT_MOVES = f"""
SELECT {MOVE_COLUMNS} FROM move_incidents t JOIN moves m ON m.id = t.move_id
 WHERE t.incident_id = $1 AND {{beyond}} ORDER BY t.move_id {{order}} LIMIT $2
"""
COUNT_INCIDENT_MOVES = "SELECT count(*) FROM move_incidents WHERE incident_id = $1"


def _move_cursor(move: Move) -> str:
    return pagination.encode("m", move.id)


async def incident_moves_page(
    *,
    conn: Conn,
    incident_id: int,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> pagination.Page[Move]:
    """A page of the moves that touched a visible incident (each is visible with it), newest first."""
    window = pagination.window(first=first, after=after, last=last, before=before)
    key = pagination.decode(window.cursor, "m", (int,), window.cursor_argument)
    args: list = [incident_id, window.rows]
    beyond = "true"
    if key is not None:
        beyond = f"t.move_id {window.beyond} $3"
        args.append(key[0])
    rows = await conn.fetch(INCIDENT_MOVES.format(beyond=beyond, order=window.order), *args)
    return pagination.page_of([models.move(r) for r in rows], window, _move_cursor)


async def count_incident_moves(*, conn: Conn, incident_id: int) -> int:
    return await conn.fetchval(COUNT_INCIDENT_MOVES, incident_id)


# The later moves of the alerts of these moves, and what each of them reverts.
MOVED_SINCE = """
SELECT mi.move_id, later.alert_id, later.move_id AS later_move_id, m.reverts_move_id
  FROM move_items mi
  JOIN move_items later ON later.alert_id = mi.alert_id AND later.move_id > mi.move_id
  JOIN moves m ON m.id = later.move_id
 WHERE mi.move_id = ANY($1::bigint[])
 ORDER BY mi.move_id, later.alert_id, later.move_id
"""


def _uncancelled(later: list[tuple[int, int | None]]) -> list[int]:
    """The later moves of one alert (with what each reverts, in move order) that still count: a
    move and its revert, both later, cancel out (so a later move that was reverted does not
    block reverting an earlier one; a revert that was reverted again still does)."""
    reverted_in = {reverts: move for move, reverts in later if reverts is not None}
    paired: set[int] = set()
    for move, _ in later:
        if move not in paired and (reverter := reverted_in.get(move)) is not None and reverter not in paired:
            paired |= {move, reverter}
    return [move for move, _ in later if move not in paired]


async def moved_since(*, conn: Conn, move_ids: list[int]) -> dict[int, list[tuple[int, int]]]:
    """For each move, the (alert, later move) pairs of its alerts that moved again since and
    were not put back by reverting those later moves."""
    grouped: dict[tuple[int, int], list[tuple[int, int | None]]] = defaultdict(list)
    for r in await conn.fetch(MOVED_SINCE, move_ids):
        grouped[(r["move_id"], r["alert_id"])].append((r["later_move_id"], r["reverts_move_id"]))
    found: dict[int, list[tuple[int, int]]] = {m: [] for m in move_ids}
    for (move, alert), later in grouped.items():
        found[move] += [(alert, m) for m in _uncancelled(later)]
    return found


# --- applying a merge or a revert ----------------------------------------------------------------

# Step 1: the move, its items (each alert's incident as the statement finds it: before the update)
# and the incidents it touched; the alerts' new incidents.
#   $1 alerts, $2 their destinations, $3 kind, $4 actor, $5 comment, $6 reasons, $7 target,
#   $8 the move reverted, $9 the alerts' scopes, $10 the incidents alerts left, $11 every incident touched.
APPLY_ITEMS = """
WITH item AS (SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS t(alert_id, to_id)),
mv AS (
    INSERT INTO moves (kind, actor, comment, reasons, target_incident_id, reverts_move_id, alert_count,
                       alert_scopes, source_incident_ids)
    VALUES ($3::move_kind, $4, $5, $6::merge_reason[], $7, $8, cardinality($1::bigint[]), $9, $10)
    RETURNING id
),
recorded AS (
    INSERT INTO move_items (move_id, alert_id, from_incident_id, to_incident_id)
    SELECT mv.id, a.id, a.incident_id, item.to_id FROM mv, item JOIN alerts a ON a.id = item.alert_id
),
touched AS (INSERT INTO move_incidents (incident_id, move_id) SELECT t.id, mv.id FROM mv, unnest($11::bigint[]) t(id)),
moved AS (UPDATE alerts a SET incident_id = item.to_id FROM item WHERE a.id = item.alert_id)
SELECT id FROM mv
"""
# Step 2, which reads the alerts where step 1 put them: the touched incidents' derived fields, their
# status ($2) and, for those whose redirect changes only ($3, $4), their redirect, in the same row
# update as their alert count (so incidents_redirected_empty holds row by row; and an unchanged
# redirect, to an incident merged since, is not written again), and the log entries, each naming the
# move ($5).
_RECOMPUTE_AFTER_APPLY = aggregates.RECOMPUTE.format(
    incidents="$1",
    alerts="(SELECT a.severity, a.detected_at, a.scope FROM alerts a WHERE a.incident_id = t.id) a",
    status=""",
       status = (SELECT st.status FROM unnest($1::bigint[], $2::incident_status[]) st(id, status) WHERE st.id = i.id),
       redirect_incident_id = CASE WHEN i.id = ANY($3::bigint[])
           THEN (SELECT r.redirect FROM unnest($3::bigint[], $4::bigint[]) r(id, redirect) WHERE r.id = i.id)
           ELSE i.redirect_incident_id END""",
)
APPLY_AFTER = f"""
WITH incident AS ({_RECOMPUTE_AFTER_APPLY}),
l AS (
    INSERT INTO activity_log ({activity.INSERT_COLUMNS}, move_id)
    SELECT e.*, $5::bigint FROM unnest({activity.entry_parameters(6)}) AS e
    RETURNING *
)
SELECT (SELECT array_agg(i) FROM incident i) AS incidents,
       (SELECT array_agg(e ORDER BY e.id) FROM (SELECT {ENTRY_COLUMNS} FROM l LEFT JOIN alerts la ON la.id = l.alert_id) e) AS entries
"""


CACHED_PLANS = "SET LOCAL plan_cache_mode = auto"


@dataclass(frozen=True)
class Step:
    """One alert of a merge or a revert: where it is (locked), where it goes."""

    alert_id: int
    from_id: int
    to_id: int
    scope: str


@dataclass(frozen=True)
class Applied:
    move_id: int
    incidents: dict[int, Incident]  # every incident touched, as it is after
    entries: list[ActivityEntry]


async def apply(
    *,
    conn: asyncpg.Connection,
    kind: str,
    actor: str,
    comment: str,
    steps: list[Step],
    locked: dict[int, Incident],
    target: int | None = None,
    reasons: list[str] | None = None,
    reverts: int | None = None,
    sources: list[int],
    redirects: dict[int, int] | None = None,
    unredirects: set[int] | None = None,
    entries: list[NewEntry],
) -> Applied:
    """Move each alert to its destination, in two statements whatever their number, and record the move.

    `locked`: every incident touched, locked by the caller (as are the alerts). The incidents'
    statuses follow the rules of a move: an open incident left with no alerts is RESOLVED; a
    RESOLVED one that alerts reach is reopened (ACTIVE); `redirects` (source -> target) become
    REDIRECTED; `unredirects` are open again (ACTIVE, or RESOLVED when they hold no alert). The
    log gets `entries` (the caller's summaries), then INCIDENT_RESOLVED for each incident resolved
    (naming where its alerts went) and INCIDENT_REOPENED for each reopened (naming where they came
    from), all pointing at the move.
    """
    redirects = redirects or {}
    unredirects = unredirects or set()
    left: dict[int, list[Step]] = defaultdict(list)
    arrived: dict[int, list[Step]] = defaultdict(list)
    for s in steps:
        left[s.from_id].append(s)
        arrived[s.to_id].append(s)
    touched = sorted(locked)
    statuses, generated = [], []
    redirect_changes: dict[int, int | None] = {}
    for n in touched:
        incident = locked[n]
        after = incident.alert_count - len(left[n]) + len(arrived[n])
        status, redirect = incident.status, incident.redirect_incident_id
        if n in redirects:
            status, redirect = IncidentStatus.REDIRECTED, redirects[n]
        elif n in unredirects:
            status, redirect = (IncidentStatus.ACTIVE if after else IncidentStatus.RESOLVED), None
        elif after == 0 and left[n] and status in OPEN:
            status = IncidentStatus.RESOLVED
            went = min(s.to_id for s in left[n])
            generated.append(NewEntry(n, ActivityKind.INCIDENT_RESOLVED, actor, comment, other_incident_id=went))
        elif arrived[n] and status == IncidentStatus.RESOLVED:
            status = IncidentStatus.ACTIVE
            came = min(s.from_id for s in arrived[n])
            generated.append(NewEntry(n, ActivityKind.INCIDENT_REOPENED, actor, comment, other_incident_id=came))
        statuses.append(str(status))
        if redirect != incident.redirect_incident_id:
            redirect_changes[n] = redirect
    # The foreign keys of thousands of moved alerts are checked by a cached plan, not one planned
    # for each row (the connections' force_custom_plan is for searches): 45 us a row -> 15.
    await conn.execute(CACHED_PLANS)
    move_id = await conn.fetchval(
        APPLY_ITEMS,
        [s.alert_id for s in steps],
        [s.to_id for s in steps],
        kind,
        actor,
        comment,
        reasons or [],
        target,
        reverts,
        sorted({s.scope for s in steps}),
        sources,
        touched,
    )
    row = await conn.fetchrow(
        APPLY_AFTER,
        touched,
        statuses,
        list(redirect_changes),
        list(redirect_changes.values()),
        move_id,
        *activity.entry_arrays(entries + generated),
    )
    return Applied(
        move_id=move_id,
        incidents={r[0]: Incident(*r) for r in row["incidents"]},
        entries=[ActivityEntry(*r) for r in row["entries"] or []],
    )


# Locks for a merge or a revert, in the global order linkAlerts takes them too: alerts by id, then
# incidents by id (lock_incidents: with a snapshot taken after the alerts' locks).
LOCK_ALERTS = (
    "SELECT a.id, a.incident_id, a.scope FROM alerts a WHERE a.id = ANY($1::bigint[]) ORDER BY a.id FOR UPDATE"
)
LOCK_ALERTS_OF = """
SELECT a.id, a.incident_id, a.scope FROM alerts a WHERE a.incident_id = ANY($1::bigint[]) ORDER BY a.id FOR UPDATE
"""
LOCK_INCIDENTS = f"SELECT {models.INCIDENT_COLUMNS} FROM lock_incidents($1::bigint[]) i"


# Before it locks anything, a move (linkAlerts, a merge, a revert) waits for the incidents it is
# about to change, on transaction-level advisory locks (the two-key form: WAIT_CLASS and the
# incident's number, a key space of their own), which need no transaction id. A move waiting for
# another then holds none, so it does not hold back the stream of changes: that stream waits for
# every running transaction with an id below the one it delivers (app/domain/changes.py), and a
# move that had locked its first alert rows had one while it waited for the rest (issue 13: under
# the bench's 16 movers, 130 ms median and 400 ms p95 from commit to subscriber, with no
# subscriber load). The row locks taken next still decide who writes what; these only move the
# waiting before the first write, in the same global order (incidents by number). A move of more
# than WAIT_MAX incidents skips them (PostgreSQL's lock table is shared and bounded) and waits on
# its rows. Merges and reverts wait in a statement of their own (wait_for_incidents); linkAlerts
# in its one statement, before its first row lock (linking.SESSION_SQL).
WAIT_CLASS = 7341
WAIT_MAX = 64
# {keys} and {wait_class}: the parameters of wait_keys() and WAIT_CLASS.
WAITING = "SELECT pg_advisory_xact_lock({wait_class}::int, k) FROM (SELECT DISTINCT k FROM unnest({keys}::int[]) k ORDER BY k) s"
WAIT_FOR_INCIDENTS = WAITING.format(keys="$1", wait_class="$2")


def wait_keys(ids: list[int]) -> list[int]:
    """The advisory keys a move of these incidents waits on: none when there are more than
    WAIT_MAX, or a number is not 32-bit (db/migrations/0013; it skips the waiting, not the move)."""
    wanted = sorted(set(ids))
    if 0 < len(wanted) <= WAIT_MAX and wanted[0] > 0 and wanted[-1] <= 2**31 - 1:
        return wanted
    return []


async def wait_for_incidents(conn: asyncpg.Connection, ids: list[int]) -> None:
    """Wait, holding no transaction id, until no other move waits for or changes these incidents.
    Call before the transaction's first write or lock."""
    if wanted := wait_keys(ids):
        await conn.execute(WAIT_FOR_INCIDENTS, wanted, WAIT_CLASS)


async def lock_incidents(conn: asyncpg.Connection, ids: list[int]) -> dict[int, Incident]:
    return {r["id"]: models.incident(r) for r in await conn.fetch(LOCK_INCIDENTS, sorted(set(ids)))}
