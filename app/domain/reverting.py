"""Reverting a move: the flow behind revertMove.

Every alert of the move goes back to the incident it came from, in one transaction, or nothing
changes. Refused when any of them has moved since (ALERT_MOVED_SINCE names the alerts and the
later moves): reverting then would undo someone's later work. A move is reverted at most once
(moves.reverts_move_id is UNIQUE); reverting a revert is a new move that puts the alerts back.

The merge a revert undoes (or, reverting a revert, redoes) is found by following `reverts` to the
first move: a merge's sources are open again after its revert (ACTIVE, or RESOLVED when they hold
no alert), and REDIRECTED again after a revert of that revert. A REDIRECTED incident holds no
alert (the database says so too): a revert that would merge again a source that holds alerts the
revert does not take out (brought in since the merge was reverted) is refused
(INCIDENT_CHANGED_SINCE), as a whole.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import asyncpg

from app.domain import moves
from app.domain.activity import NewEntry
from app.domain.errors import Problem, ProblemCode, Refused
from app.domain.ids import ALERT, INCIDENT, MOVE, parse_id, typed_id
from app.domain.incidents import get_incidents, is_visible
from app.domain.linking import check_comment
from app.domain.models import (
    ALERT_COLUMNS,
    ActivityEntry,
    ActivityKind,
    Alert,
    Incident,
    IncidentStatus,
    Move,
    MoveKind,
)
from app.domain.viewers import Viewer

ITEMS = """
SELECT mi.alert_id, mi.from_incident_id, mi.to_incident_id, a.scope
  FROM move_items mi JOIN alerts a ON a.id = mi.alert_id WHERE mi.move_id = $1 ORDER BY mi.alert_id
"""
# The first move of a chain of reverts, and how many reverts lie between it and this one.
ORIGIN = """
WITH RECURSIVE chain AS (
    SELECT id, kind, reverts_move_id, target_incident_id, source_incident_ids, 0 AS depth FROM moves WHERE id = $1
    UNION ALL
    SELECT m.id, m.kind, m.reverts_move_id, m.target_incident_id, m.source_incident_ids, chain.depth + 1
      FROM moves m JOIN chain ON m.id = chain.reverts_move_id
)
SELECT kind::text AS kind, target_incident_id, source_incident_ids, depth FROM chain ORDER BY depth DESC LIMIT 1
"""
REVERTED = "SELECT id FROM moves WHERE reverts_move_id = $1"
# The merges since the move that redirected an incident the revert would send alerts to.
MERGED_SINCE = """
SELECT m.id, t.incident_id FROM move_incidents t JOIN moves m ON m.id = t.move_id
 WHERE t.incident_id = ANY($1::bigint[]) AND t.move_id > $2 AND m.kind = 'merge'
   AND t.incident_id = ANY(m.source_incident_ids)
"""
ALERTS = f"SELECT {ALERT_COLUMNS} FROM alerts a WHERE a.id = ANY($1::bigint[])"
# The alerts in these incidents (locked by the caller, so none can arrive) but those of the move.
STAYING = """
SELECT a.id, a.incident_id, a.scope FROM alerts a
 WHERE a.incident_id = ANY($1::bigint[]) AND a.id <> ALL($2::bigint[]) ORDER BY a.id
"""
# The first move of each move's chain of reverts, and how many reverts lie between (viewerCanRevert).
ORIGINS = """
WITH RECURSIVE chain AS (
    SELECT id AS start, kind, reverts_move_id, target_incident_id, source_incident_ids, 0 AS depth
      FROM moves WHERE id = ANY($1::bigint[])
    UNION ALL
    SELECT chain.start, m.kind, m.reverts_move_id, m.target_incident_id, m.source_incident_ids, chain.depth + 1
      FROM moves m JOIN chain ON m.id = chain.reverts_move_id
)
SELECT DISTINCT ON (start) start, kind::text AS kind, target_incident_id, source_incident_ids, depth
  FROM chain ORDER BY start, depth DESC
"""
STATES = "SELECT id, status::text AS status, alert_count FROM incidents WHERE id = ANY($1::bigint[])"


@dataclass(frozen=True)
class RevertResult:
    move_id: int | None
    reverted_id: int | None
    incidents: list[Incident]
    alerts: list[Alert]
    entries: list[ActivityEntry]


def _ids(kind: str, numbers) -> list[str]:
    return [typed_id(kind, n) for n in numbers]


def _effects(origin) -> tuple[dict[int, int], set[int]]:
    """What reverting a move does to the redirects of the merge at the start of its chain (`origin`):
    (sources redirected again -> target, sources no longer redirected)."""
    if origin["kind"] != MoveKind.MERGE:
        return {}, set()
    sources = list(origin["source_incident_ids"])
    if origin["depth"] % 2 == 0:  # the move left them redirected: its revert opens them again
        return {}, set(sources)
    return dict.fromkeys(sources, origin["target_incident_id"]), set()


async def _redirects(conn: asyncpg.Connection, move: Move) -> tuple[dict[int, int], set[int]]:
    return _effects(await conn.fetchrow(ORIGIN, move.id))


async def refused_since(*, conn, candidates: list[Move]) -> set[int]:
    """The moves (none of whose alerts moved since) that revertMove would refuse now because an
    incident changed since, as a cheap look tells (two statements, whatever the number of alerts):
    an incident the alerts would go back to, or that would be merged again, is REDIRECTED
    (INCIDENT_MERGED_SINCE); or the sources a revert would merge again hold more alerts than it
    takes out of them (INCIDENT_CHANGED_SINCE). revertMove checks again under its locks."""
    if not candidates:
        return set()
    origins = {r["start"]: r for r in await conn.fetch(ORIGINS, [m.id for m in candidates])}
    effects = {m.id: _effects(origins[m.id]) for m in candidates}
    wanted = set()
    for m in candidates:
        redirects, _ = effects[m.id]
        wanted |= set(m.source_incident_ids) | set(redirects) | set(redirects.values())
    states = {r["id"]: r for r in await conn.fetch(STATES, sorted(wanted))}
    refused = set()
    for m in candidates:
        redirects, unredirects = effects[m.id]
        destinations = (set(m.source_incident_ids) | set(redirects) | set(redirects.values())) - unredirects
        merged_since = any(states[n]["status"] == IncidentStatus.REDIRECTED for n in destinations if n in states)
        # None of its alerts moved since: they are all in the sources it would merge again.
        changed_since = sum(states[n]["alert_count"] for n in redirects if n in states) > m.alert_count
        if merged_since or (redirects and changed_since):
            refused.add(m.id)
    return refused


async def revert_move(*, conn: asyncpg.Connection, viewer: Viewer, move_id: str, comment: str) -> RevertResult:
    """Put every alert of a move back where it came from.

    Must run inside a transaction owned by the caller; raises Refused with every problem found.
    The result shows only what the viewer may see after the revert.
    """
    problems: list[Problem] = []
    if not viewer.can_view_incidents:
        problems.append(
            Problem(ProblemCode.FORBIDDEN, "You may not view the incidents queue, so you may not revert moves.")
        )
    comment, comment_problems = check_comment(comment)
    problems += comment_problems
    number = parse_id(move_id, MOVE)
    found = (await moves.get_moves(conn=conn, viewer=viewer, ids=[number])).get(number) if number else None
    if found is None:
        if viewer.can_view_incidents:
            problems.append(Problem(ProblemCode.MOVE_NOT_FOUND, f"No move found with id {move_id.strip()}.", "moveId"))
        raise Refused(problems)
    items = await conn.fetch(ITEMS, found.id)
    # Permissions before any lock: every alert of the move must be the viewer's to move.
    unwritable = [r for r in items if not viewer.can_write(r["scope"])]
    if unwritable:
        named = [r["alert_id"] for r in unwritable if viewer.can_read(r["scope"])]
        problems.append(
            Problem(
                ProblemCode.FORBIDDEN,
                f"You may not move every alert of {found.node_id}"
                + (f": {', '.join(_ids(ALERT, named))}." if named else "."),
                "moveId",
                _ids(ALERT, named),
            )
        )
    redirects, unredirects = await _redirects(conn, found)
    # Every incident whose alerts, status or redirect the revert changes must be one the viewer
    # sees (as a merge's incidents must): a merge of emptied sources moves no alert, and its
    # revert would otherwise reopen an incident the viewer cannot see. Named by none of its ids.
    changed = {r["from_incident_id"] for r in items} | set(redirects) | unredirects
    if changed and len(await get_incidents(conn=conn, viewer=viewer, ids=sorted(changed))) < len(changed):
        problems.append(
            Problem(
                ProblemCode.FORBIDDEN,
                f"Reverting {found.node_id} would change an incident you may not see.",
                "moveId",
            )
        )
    if problems:
        raise Refused(problems)

    touched = {r["from_incident_id"] for r in items} | {r["to_incident_id"] for r in items}
    touched |= set(redirects) | set(redirects.values()) | unredirects
    if found.kind == MoveKind.MERGE:
        touched.add(found.target_incident_id)
    await moves.wait_for_incidents(conn, sorted(touched))  # holding no transaction id, as a move does
    alerts = {r["id"]: r for r in await conn.fetch(moves.LOCK_ALERTS, [r["alert_id"] for r in items])}
    locked = await moves.lock_incidents(conn, sorted(touched))

    # Under the locks: nothing can change what these checks read until the revert commits.
    if (reverted_by := await conn.fetchval(REVERTED, found.id)) is not None:
        raise Refused(
            [
                Problem(
                    ProblemCode.ALREADY_REVERTED,
                    f"{found.node_id} was reverted already; revert that revert to put the alerts back.",
                    "moveId",
                    move_ids=[typed_id(MOVE, reverted_by)],
                )
            ]
        )
    later = (await moves.moved_since(conn=conn, move_ids=[found.id]))[found.id]
    # (Moved away and back by moves that were not reverts: where the move put it, yet moved since.)
    elsewhere = [r["alert_id"] for r in items if alerts[r["alert_id"]]["incident_id"] != r["to_incident_id"]]
    later += [(a, found.id) for a in elsewhere if a not in {alert for alert, _ in later}]
    if later:
        shown_moves = await moves.get_moves(conn=conn, viewer=viewer, ids=sorted({m for _, m in later} - {found.id}))
        readable = sorted({a for a, _ in later if viewer.can_read(alerts[a]["scope"])})
        problems.append(
            Problem(
                ProblemCode.ALERT_MOVED_SINCE,
                f"{len({a for a, _ in later})} alert(s) of {found.node_id} moved again since; revert the later "
                "moves first.",
                "moveId",
                _ids(ALERT, readable),
                move_ids=_ids(MOVE, sorted(shown_moves)),
            )
        )
    destinations = {r["from_incident_id"] for r in items} | set(redirects.values()) | set(redirects)
    merged = [n for n in sorted(destinations) if n not in unredirects and locked[n].status == IncidentStatus.REDIRECTED]
    if merged:
        merges = {r["id"] for r in await conn.fetch(MERGED_SINCE, merged, found.id)}
        shown = [n for n in merged if is_visible(locked[n], viewer)]
        problems.append(
            Problem(
                ProblemCode.INCIDENT_MERGED_SINCE,
                "An incident the revert would send alerts to was merged into another since; revert that merge first.",
                "moveId",
                incident_ids=_ids(INCIDENT, shown),
                move_ids=_ids(MOVE, sorted(await moves.get_moves(conn=conn, viewer=viewer, ids=sorted(merges)))),
            )
        )
    if redirects:
        # A REDIRECTED incident holds no alert: the sources merged again must be left empty.
        leaving = [r["alert_id"] for r in items if r["to_incident_id"] in redirects]
        staying = await conn.fetch(STAYING, sorted(redirects), leaving)
        arriving = [r["alert_id"] for r in items if r["from_incident_id"] in redirects]
        if staying or arriving:
            holding = sorted(
                {r["incident_id"] for r in staying}
                | {r["from_incident_id"] for r in items if r["alert_id"] in arriving}
            )
            scopes = {r["id"]: r["scope"] for r in staying} | {r["alert_id"]: r["scope"] for r in items}
            held = sorted({r["id"] for r in staying} | set(arriving))
            problems.append(
                Problem(
                    ProblemCode.INCIDENT_CHANGED_SINCE,
                    f"{len(held)} alert(s) were brought into an incident the revert would merge again since its "
                    "merge was reverted; move them out first (a merged incident holds no alert).",
                    "moveId",
                    _ids(ALERT, [a for a in held if viewer.can_read(scopes[a])]),
                    incident_ids=_ids(INCIDENT, [n for n in holding if is_visible(locked[n], viewer)]),
                )
            )
    if problems:
        raise Refused(problems)

    steps = [moves.Step(r["alert_id"], r["to_incident_id"], r["from_incident_id"], r["scope"]) for r in items]
    entries = _summaries(steps, redirects, unredirects, locked, viewer.name, comment)
    sources = sorted(
        {s.from_id for s in steps} | ({found.target_incident_id} if found.kind == MoveKind.MERGE else set())
    )
    applied = await moves.apply(
        conn=conn,
        kind=MoveKind.REVERT,
        actor=viewer.name,
        comment=comment,
        steps=steps,
        locked=locked,
        reverts=found.id,
        sources=sources,
        redirects=redirects,
        unredirects=unredirects,
        entries=entries,
    )
    shown = {n for n, i in applied.incidents.items() if is_visible(i, viewer)}
    moved = {r["id"]: r for r in await conn.fetch(ALERTS, [s.alert_id for s in steps])}
    return RevertResult(
        move_id=applied.move_id,
        reverted_id=found.id,
        incidents=[applied.incidents[n] for n in sorted(shown)],
        alerts=[Alert(**dict(moved[s.alert_id])) for s in steps if viewer.can_read(s.scope)],
        entries=[e for e in applied.entries if e.incident_id in shown],
    )


def _summaries(
    steps: list[moves.Step],
    redirects: dict[int, int],
    unredirects: set[int],
    locked: dict[int, Incident],
    actor: str,
    comment: str,
) -> list[NewEntry]:
    """One entry per incident and counterpart on each side: alerts sent back, alerts returned;
    then each source no longer merged, and each merged again."""
    pairs: dict[tuple[int, int], int] = defaultdict(int)
    for s in steps:
        pairs[(s.from_id, s.to_id)] += 1
    entries = []
    for (left, to), n in sorted(pairs.items()):
        entries.append(NewEntry(left, ActivityKind.ALERTS_SENT_BACK, actor, comment, None, to, n))
        entries.append(NewEntry(to, ActivityKind.ALERTS_RETURNED, actor, comment, None, left, n))
    for source in sorted(unredirects):
        back = sum(n for (_, to), n in pairs.items() if to == source)
        entries.append(
            NewEntry(
                source, ActivityKind.INCIDENT_UNMERGED, actor, comment, None, locked[source].redirect_incident_id, back
            )
        )
    for source, target in sorted(redirects.items()):
        n = sum(c for (left, _), c in pairs.items() if left == source)
        entries.append(NewEntry(source, ActivityKind.INCIDENT_REDIRECTED, actor, comment, None, target, n))
        entries.append(NewEntry(target, ActivityKind.INCIDENT_MERGED, actor, comment, None, source, n))
    return entries
