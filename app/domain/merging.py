"""Merging incidents: the flow behind mergeIncidents.

Every source's alerts move to the target, and each source becomes REDIRECTED to it, in one
transaction: all of it, or (Refused) nothing. The log gets one summary entry per source on each
side (INCIDENT_REDIRECTED on the source, INCIDENT_MERGED on the target, with the alert count),
not two per alert: a 10,000-alert merge stays fast and its log readable, and each alert's
provenance is in the move's items.

Locks follow linkAlerts' global order, alerts by id and then incidents by id, so merges and moves
over the same alerts queue up; the sources' alerts are read again once their incidents are
locked, since a move may have brought one in meanwhile, and none can move in or out after that.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from app.config import settings
from app.domain import moves
from app.domain.activity import NewEntry
from app.domain.errors import Problem, ProblemCode, Refused
from app.domain.ids import INCIDENT, parse_id, typed_id
from app.domain.incidents import is_visible
from app.domain.linking import INCIDENT_BY_ID, check_comment
from app.domain.models import ActivityEntry, ActivityKind, Incident, IncidentStatus, MergeReason, MoveKind
from app.domain.viewers import Viewer

MIN_INCIDENTS, MAX_INCIDENTS = 2, 50

INCIDENTS = INCIDENT_BY_ID.replace("i.id = $1", "i.id = ANY($1::bigint[])")


@dataclass(frozen=True)
class MergeResult:
    target: Incident | None  # None only when the viewer cannot see it (a replay)
    sources: list[Incident]
    entries: list[ActivityEntry]
    move_id: int | None


def _names(numbers: list[int]) -> str:
    return ", ".join(typed_id(INCIDENT, n) for n in numbers)


def _check_input(
    viewer: Viewer, incident_ids: list[str], target_id: str | None, comment: str, reasons: list[str]
) -> tuple[list[int], int | None, str, list[Problem]]:
    """The distinct incidents named, the target's number, the trimmed comment and the input's problems."""
    problems: list[Problem] = []
    if not viewer.can_view_incidents:
        problems.append(
            Problem(ProblemCode.FORBIDDEN, "You may not view the incidents queue, so you may not merge incidents.")
        )
    given = list(dict.fromkeys(i.strip() for i in incident_ids))
    numbers = {i: parse_id(i, INCIDENT) for i in given}
    malformed = [i for i in given if numbers[i] is None]
    if malformed:
        problems.append(
            Problem(
                ProblemCode.INCIDENT_NOT_FOUND,
                f"No incident found with id {', '.join(malformed)}.",
                "incidentIds",
                malformed,
            )
        )
    distinct = list(dict.fromkeys(n for n in numbers.values() if n is not None))
    if not MIN_INCIDENTS <= len(given) <= MAX_INCIDENTS:
        problems.append(
            Problem(
                ProblemCode.INVALID_INPUT,
                f"Merge {MIN_INCIDENTS} to {MAX_INCIDENTS} distinct incidents; got {len(given)}.",
                "incidentIds",
            )
        )
        distinct = []  # the limit bounds the work: so many are not looked up
    target = None
    if target_id is not None:
        target = parse_id(target_id, INCIDENT)
        if target is None or target not in distinct:
            problems.append(
                Problem(
                    ProblemCode.INVALID_INPUT,
                    "targetIncidentId must be one of incidentIds.",
                    "targetIncidentId",
                )
            )
            target = None
    text, comment_problems = check_comment(comment)
    problems += comment_problems
    if any(r not in set(MergeReason) for r in reasons):  # (the API's enum admits none other)
        problems.append(Problem(ProblemCode.INVALID_INPUT, "Unknown merge reason.", "reasons"))
    return distinct, target, text, problems


def _writes_all(scopes: list[str], viewer: Viewer) -> bool:
    return all(viewer.can_write(s) for s in scopes)


def _choose(
    found: dict[int, Incident], numbers: list[int], target: int | None, viewer: Viewer, scopes: dict[int, list[str]]
) -> tuple[int, list[Problem]]:
    """The target (given, or the incident with the most alerts, the oldest of equals; but an
    incident holding alerts the viewer may not move cannot be a source, so the oldest such one is),
    and the problems: REDIRECTED incidents, and sources holding alerts the viewer may not move."""
    if target is None:
        stuck = [n for n in numbers if not _writes_all(scopes[n], viewer)]
        # Among incidents holding alerts the viewer may not move, the oldest: their counts include
        # alerts the viewer may not read, which must not decide what they see.
        target = min(stuck) if stuck else min(numbers, key=lambda n: (-found[n].alert_count, n))
    problems: list[Problem] = []
    redirected = [n for n in numbers if found[n].status == IncidentStatus.REDIRECTED]
    if redirected:
        problems.append(
            Problem(
                ProblemCode.ALREADY_REDIRECTED,
                f"Already merged into another incident: {_names(redirected)}; merge its redirectIncident instead.",
                "incidentIds",
                [typed_id(INCIDENT, n) for n in redirected],
            )
        )
    forbidden = [n for n in numbers if n != target and not _writes_all(scopes[n], viewer)]
    if forbidden:
        problems.append(
            Problem(
                ProblemCode.FORBIDDEN,
                f"You may not move every alert of {_names(forbidden)}, so you may not merge "
                f"{'it' if len(forbidden) == 1 else 'them'} into another incident.",
                "incidentIds",
                [typed_id(INCIDENT, n) for n in forbidden],
            )
        )
    return target, problems


def _too_many(count: int) -> list[Problem]:
    if count > (most := settings().merge_max_alerts):
        return [
            Problem(
                ProblemCode.TOO_MANY_ALERTS,
                # Not how many: the count may include alerts the viewer may not read.
                f"A merge moves at most {most} alerts; these sources hold more.",
                "incidentIds",
            )
        ]
    return []


async def merge_incidents(
    *,
    conn: asyncpg.Connection,
    viewer: Viewer,
    incident_ids: list[str],
    target_incident_id: str | None,
    comment: str,
    reasons: list[str],
) -> MergeResult:
    """Merge incidents into one: every source's alerts move to the target, and the sources are
    REDIRECTED to it.

    Must run inside a transaction owned by the caller; raises Refused with every problem found.
    The result shows only what the viewer may see after the merge.
    """
    reasons = list(dict.fromkeys(str(r) for r in reasons))
    numbers, target, comment, problems = _check_input(viewer, incident_ids, target_incident_id, comment, reasons)
    # Looked up before any lock, and only for a viewer with the queue permission: waiting on an
    # incident they may not see would tell that it exists.
    found: dict[int, Incident] = {}
    if numbers and viewer.can_view_incidents:
        found = {r["id"]: Incident(**dict(r)) for r in await conn.fetch(INCIDENTS, numbers)}
        unseen = [n for n in numbers if n not in found or not is_visible(found[n], viewer)]
        if unseen:
            problems.append(
                Problem(
                    ProblemCode.INCIDENT_NOT_FOUND,
                    f"No incident found with id {_names(unseen)}.",
                    "incidentIds",
                    [typed_id(INCIDENT, n) for n in unseen],
                )
            )
        else:
            # An incident's alert_scopes are its alerts' scopes (those it last held, when empty).
            scopes = {n: found[n].alert_scopes if found[n].alert_count else [] for n in numbers}
            target, choice_problems = _choose(found, numbers, target, viewer, scopes)
            problems += choice_problems
            problems += _too_many(sum(found[n].alert_count for n in numbers if n != target))
    if problems:
        raise Refused(problems)
    assert target is not None
    sources = sorted(n for n in numbers if n != target)

    # The locks, then the same checks on what they hold; first the wait for the incidents, holding
    # no transaction id (moves.wait_for_incidents).
    await moves.wait_for_incidents(conn, numbers)
    await conn.fetch(moves.LOCK_ALERTS_OF, sources)
    locked = await moves.lock_incidents(conn, numbers)
    alerts = await conn.fetch(moves.LOCK_ALERTS_OF, sources)  # with any that a move brought in meanwhile
    scopes: dict[int, list[str]] = {n: [] for n in numbers}
    for a in alerts:
        scopes[a["incident_id"]].append(a["scope"])
    _, problems = _choose(locked, numbers, target, viewer, scopes)
    problems += _too_many(len(alerts))
    if problems:
        raise Refused(problems)

    steps = [moves.Step(a["id"], a["incident_id"], target, a["scope"]) for a in alerts]
    counts = {n: len(scopes[n]) for n in sources}
    entries: list[NewEntry] = []
    for n in sources:
        entries.append(NewEntry(n, ActivityKind.INCIDENT_REDIRECTED, viewer.name, comment, None, target, counts[n]))
        entries.append(NewEntry(target, ActivityKind.INCIDENT_MERGED, viewer.name, comment, None, n, counts[n]))
    applied = await moves.apply(
        conn=conn,
        kind=MoveKind.MERGE,
        actor=viewer.name,
        comment=comment,
        steps=steps,
        locked=locked,
        target=target,
        reasons=reasons,
        sources=sources,
        redirects=dict.fromkeys(sources, target),
        entries=entries,
    )
    return visible_result(
        MergeResult(
            target=applied.incidents[target],
            sources=[applied.incidents[n] for n in sources],
            entries=applied.entries,
            move_id=applied.move_id,
        ),
        viewer,
    )


def visible_result(result: MergeResult, viewer: Viewer) -> MergeResult:
    """What the viewer may see of a merge, now."""
    shown = {i.id for i in [result.target, *result.sources] if i is not None and is_visible(i, viewer)}
    return MergeResult(
        target=result.target if result.target is not None and result.target.id in shown else None,
        sources=[i for i in result.sources if i.id in shown],
        entries=[e for e in result.entries if e.incident_id in shown],
        move_id=result.move_id,
    )
