"""GraphQL object types and enums. Their objects are the domain's records.

A field without a resolver reads the record's attribute of the same Python name; a field with
one resolves through app/api/fields.py, where its behaviour is written once for both execution
paths. The enums wrap the domain's own (app/domain/models.py).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Generic, TypeVar

import strawberry
from strawberry.types import Info

from app.api import fields
from app.api.context import Context
from app.domain import models

T = TypeVar("T")

E = TypeVar("E", bound=Enum)


def _enum(domain: type[E], description: str, values: dict[E, str]) -> type[E]:
    """The domain's enum as a GraphQL enum, its type and each value described here, by member:
    the domain keeps its values, and one it adds without a description here fails at import."""
    wrapped = strawberry.enum(domain, name=domain.__name__, description=description)
    for value in wrapped.__strawberry_definition__.values:
        value.description = values[domain[value.name]]
    return wrapped


Severity = _enum(
    models.Severity,
    "How severe a detection is, from the lowest to the highest. An incident's severity is the highest of its alerts'.",
    {
        models.Severity.INFORMATIONAL: "Not a threat in itself, but worth knowing about. The lowest.",
        models.Severity.LOW: "A common threat, such as widespread malware or a hacking tool, with no sign of a "
        "targeted attack.",
        models.Severity.MEDIUM: "Suspicious behaviour that may be part of an attack in progress.",
        models.Severity.HIGH: "Likely an active attack that can do serious damage. The highest.",
    },
)
IncidentStatus = _enum(
    models.IncidentStatus,
    "Where an incident stands. ACTIVE and IN_PROGRESS incidents are open: ingestion correlates new alerts into them.",
    {
        models.IncidentStatus.ACTIVE: "Open, and nobody is working on it yet. New incidents start here, and a "
        "RESOLVED incident returns here when alerts are moved into it.",
        models.IncidentStatus.IN_PROGRESS: "Open, and someone is working on it.",
        models.IncidentStatus.RESOLVED: "Closed: handled, or resolved automatically when a move took its last "
        "alert. Ingestion adds no alerts to it; moving alerts into it reopens it (ACTIVE).",
        models.IncidentStatus.REDIRECTED: "Merged into another incident, its redirectIncident. It takes no "
        "alerts: neither from ingestion nor from moves (TARGET_NOT_LINKABLE).",
    },
)
AlertStatus = _enum(
    models.AlertStatus,
    "Where an alert stands in an analyst's work.",
    {
        models.AlertStatus.NEW: "Nobody has looked at it yet; ingested alerts start here.",
        models.AlertStatus.IN_PROGRESS: "Someone is investigating it.",
        models.AlertStatus.RESOLVED: "Handled.",
    },
)
EntityKind = _enum(
    models.EntityKind,
    "What an entity, a piece of evidence of an alert, names.",
    {
        models.EntityKind.DEVICE: "A device, by its host name (WS-1234).",
        models.EntityKind.USER: "A user account, by its name (alice or alice@contoso.com).",
        models.EntityKind.IP: "An IP address, v4 or v6.",
        models.EntityKind.MAILBOX: "A mailbox, by its email address.",
        models.EntityKind.FILE: "A file, by its name, path or hash.",
        models.EntityKind.URL: "A URL.",
    },
)
ActivityKind = _enum(
    models.ActivityKind,
    "What an activity log entry records.",
    {
        models.ActivityKind.ALERT_CORRELATED: "Ingestion added an alert to this incident: it shares evidence with "
        "an alert already here. The actor is system.",
        models.ActivityKind.ALERT_LINKED: "A move brought an alert here; otherIncident is where it came from.",
        models.ActivityKind.ALERT_UNLINKED: "A move took an alert away; otherIncident is where it went.",
        models.ActivityKind.INCIDENT_CREATED: "The incident was created: by ingestion for the alert that opened it "
        "(the actor is system, alert is that alert), or by a move to a new incident (with the mover's comment).",
        models.ActivityKind.INCIDENT_RESOLVED: "A move took the incident's last alert, so it was resolved; "
        "otherIncident is where that alert went.",
        models.ActivityKind.INCIDENT_REOPENED: "A move brought alerts into this RESOLVED incident, so it is ACTIVE "
        "again; otherIncident is the lowest-numbered incident they came from.",
        models.ActivityKind.INCIDENT_MERGED: "A merge brought another incident's alerts here (one entry per source, "
        "not one per alert: the move's items list them); otherIncident is that source, now REDIRECTED here.",
        models.ActivityKind.INCIDENT_REDIRECTED: "A merge moved this incident's alerts to otherIncident and made "
        "this incident REDIRECTED to it.",
        models.ActivityKind.ALERTS_RETURNED: "A revert brought alerts back here from otherIncident, where the "
        "reverted move had taken them (one entry per incident they came from).",
        models.ActivityKind.ALERTS_SENT_BACK: "A revert took alerts from here back to otherIncident, where they "
        "were before the reverted move (one entry per incident they went to).",
        models.ActivityKind.INCIDENT_UNMERGED: "A revert of a merge: this incident is no longer REDIRECTED to "
        "otherIncident, and is open again (RESOLVED when it holds no alert).",
        models.ActivityKind.STATUS_CHANGED: "updateIncident changed the status: oldStatus and newStatus.",
        models.ActivityKind.ASSIGNED: "updateIncident changed who is assigned: oldAssignee and newAssignee (null: "
        "nobody).",
        models.ActivityKind.CLASSIFIED: "updateIncident changed the classification or the determination: "
        "oldClassification, newClassification, oldDetermination and newDetermination.",
        models.ActivityKind.COMMENTED: "A note (addComment, or updateIncident with a comment and no change): the "
        "comment.",
    },
)
Classification = _enum(
    models.Classification,
    "What an incident turned out to be (Microsoft Graph's incident classification). Resolving needs one other "
    "than UNKNOWN.",
    {
        models.Classification.UNKNOWN: "Not classified yet. Every incident starts here.",
        models.Classification.TRUE_POSITIVE: "A real threat.",
        models.Classification.FALSE_POSITIVE: "No threat: the detection was wrong.",
        models.Classification.INFORMATIONAL_EXPECTED_ACTIVITY: "Real activity, but expected or harmless (a test, "
        "an admin at work).",
    },
)
_DETERMINES = {c: ", ".join(sorted(d.upper() for d in ds)) for c, ds in models.DETERMINATIONS.items() if ds}
Determination = _enum(
    models.Determination,
    "Why, in more detail (Microsoft Graph's determination). Each goes with some classifications only: "
    + "; ".join(f"{c.upper()}: {d}" for c, d in _DETERMINES.items())
    + ". Another pair is INVALID_INPUT.",
    {
        models.Determination.UNKNOWN: "Not determined; goes with any classification.",
        models.Determination.MALWARE: "Malware (TRUE_POSITIVE).",
        models.Determination.PHISHING: "Phishing (TRUE_POSITIVE).",
        models.Determination.COMPROMISED_ACCOUNT: "A compromised account (TRUE_POSITIVE).",
        models.Determination.MULTI_STAGED_ATTACK: "A multi-staged attack (TRUE_POSITIVE).",
        models.Determination.MALICIOUS_USER_ACTIVITY: "A user acting maliciously (TRUE_POSITIVE).",
        models.Determination.UNWANTED_SOFTWARE: "Unwanted software (TRUE_POSITIVE).",
        models.Determination.SECURITY_TESTING: "Security testing (INFORMATIONAL_EXPECTED_ACTIVITY).",
        models.Determination.SECURITY_PERSONNEL: "Security personnel at work (INFORMATIONAL_EXPECTED_ACTIVITY).",
        models.Determination.LINE_OF_BUSINESS_APPLICATION: "A line-of-business application "
        "(INFORMATIONAL_EXPECTED_ACTIVITY).",
        models.Determination.CONFIRMED_ACTIVITY: "Activity confirmed as intended (INFORMATIONAL_EXPECTED_ACTIVITY).",
        models.Determination.NOT_MALICIOUS: "Not malicious (FALSE_POSITIVE).",
        models.Determination.NOT_ENOUGH_DATA_TO_VALIDATE: "Not enough data to validate (FALSE_POSITIVE).",
        models.Determination.OTHER: "Another reason (any classification but UNKNOWN).",
    },
)
MoveKind = _enum(
    models.MoveKind,
    "Which operation made a move.",
    {
        models.MoveKind.LINK: "A linkAlerts call that moved at least one alert.",
        models.MoveKind.MERGE: "A mergeIncidents call: its sources' alerts moved to the target, and the sources "
        "became REDIRECTED.",
        models.MoveKind.REVERT: "A revertMove call: it put the alerts of another move (`reverts`) back where they "
        "came from.",
    },
)
MergeReason = _enum(
    models.MergeReason,
    "Why incidents were merged, as flags (Microsoft Graph's mergeReasons): any number of them.",
    {
        models.MergeReason.DUPLICATE: "The incidents tell the same story twice.",
        models.MergeReason.SAME_ACTOR: "The same attacker or account is behind them.",
        models.MergeReason.SAME_CAMPAIGN: "They belong to the same campaign.",
        models.MergeReason.SAME_ASSET: "They concern the same device, user or mailbox.",
        models.MergeReason.OTHER: "Another reason, which the comment gives.",
    },
)
IncidentSort = _enum(
    models.IncidentSort,
    "The incidents queue's orders, each newest or highest first, ties by number, newest first. Paging backward "
    "(`last`) reads the same order from its other end. Each is served by an index at any size.",
    {
        models.IncidentSort.LAST_ACTIVITY: "Most recently active first (lastActivityAt). The default.",
        models.IncidentSort.SEVERITY: "Highest severity first, then most recently active. Needs a grant on every "
        'scope ("*"): an incident\'s own severity may come from alerts the viewer may not read (BAD_USER_INPUT '
        "otherwise).",
        models.IncidentSort.ALERT_COUNT: "Most alerts first, then most recently active. Needs a grant on every "
        'scope ("*"), as SEVERITY.',
        models.IncidentSort.CREATED: "Newest first, by number (numbers are given in creation order).",
    },
)
Access = _enum(
    models.Access,
    "What a grant allows on its scope.",
    {
        models.Access.READ: "Reading the scope's alerts, and seeing the incidents that hold them.",
        models.Access.WRITE: "Reading, and moving the scope's alerts to other incidents (with the queue permission).",
    },
)


@strawberry.type(description="Where a page of a connection stands in its list (Relay's PageInfo).")
class PageInfo:
    has_next: bool = strawberry.field(
        name="hasNextPage",
        description="Whether items follow this page. Paging forward (`first`), looked up; paging backward "
        "(`last`), true when the page was asked for with `before` (the item at that cursor follows it; not looked "
        "up again), false at the end of the list.",
    )
    has_previous: bool = strawberry.field(
        name="hasPreviousPage",
        description="Whether items come before this page. Paging backward (`last`), looked up; paging forward "
        "(`first`), true when the page was asked for with `after` (the items up to that cursor came before it; "
        "not looked up again), false on a first page.",
    )
    start_cursor: str | None = strawberry.field(
        description="The cursor of the page's first edge, to pass as `before` for the page before it; null when "
        "the page is empty."
    )
    end_cursor: str | None = strawberry.field(
        description="The cursor of the page's last edge, to pass as `after` for the next page; null when the "
        "page is empty."
    )


@strawberry.type(description="One item of a list, with its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(
        description="The item's place in the list, opaque: pass it as `after` for the items that follow it, or as "
        "`before` for those before it."
    )
    node: T = strawberry.field(description="The item.")


@strawberry.type(description="A page of a list (Relay's cursor connection): its items and where it stands.")
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The page's items with their cursors, in the list's order.")
    page_info: PageInfo = strawberry.field(
        description="Whether more items follow or come before, and the cursors to get them."
    )

    @strawberry.field(description="How many items the whole list holds, over all pages.")
    async def total_count(self, info: Info[Context, None]) -> int:
        return await fields.resolve(self, info)


# A page is read forward (first, after) or backward (last, before), never both: Relay's clients
# send the other direction's arguments as null, which is not mixing. `first` has no default in
# the schema, so that `last` alone is not mixed with it; the batch applies it (fields.PAGE_SIZES).
def first_argument(default: int):
    """The `first` argument of a connection whose pages hold `default` items unless asked."""
    return strawberry.argument(
        description="How many items the page holds, from the start of the list or after `after`: 1 to "
        f"MAX_PAGE_SIZE (100 unless the server says otherwise); {default} when neither `first` nor `last` is "
        "given. Outside that range, or with `last` or `before`: BAD_USER_INPUT."
    )


def last_argument(default: int):
    """The `last` argument of a connection whose pages hold `default` items unless asked."""
    return strawberry.argument(
        description="How many items the page holds, paging backward: the list's last ones, or the ones just "
        "before `before`, in the list's own order. 1 to MAX_PAGE_SIZE; "
        f"{default} when `before` is given without it. Outside that range, or with `first` or `after`: "
        "BAD_USER_INPUT."
    )


AFTER_ARGUMENT = strawberry.argument(
    description="A cursor of this list (an edge's cursor, or pageInfo.endCursor): the page holds the items after "
    "it; null: from the start. A malformed or altered cursor, or one with `last` or `before`, is BAD_USER_INPUT."
)
BEFORE_ARGUMENT = strawberry.argument(
    description="A cursor of this list (an edge's cursor, or pageInfo.startCursor): the page holds the items just "
    "before it; null: up to the end. A malformed or altered cursor, or one with `first` or `after`, is "
    "BAD_USER_INPUT."
)


@strawberry.interface(
    description="An object with an id unique across every type, stable for its life, that `node(id:)` and "
    "`nodes(ids:)` refetch (Relay's global object identification)."
)
class Node:
    node_id: strawberry.ID = strawberry.field(
        name="id",
        description='Unique across types: a kind and a number, such as "inc_1042", "alert_57" or "log_9". '
        "Readable on purpose, but take ids from answers rather than building them.",
    )


def _is_record(record_type: type):
    """is_type_of for a schema type whose objects are the domain's records of record_type: how
    graphql-core tells which type implements Node for a record it was handed."""

    def is_type_of(cls, obj, info) -> bool:
        return isinstance(obj, record_type)

    return classmethod(is_type_of)


@strawberry.type(description="A piece of evidence an alert involves; correlation groups alerts that share one.")
class Entity:
    kind: EntityKind = strawberry.field(description="What the value names.")
    value: str = strawberry.field(description="As the detection source sent it, without surrounding spaces.")


@strawberry.type(description="A single detection. It always belongs to exactly one incident.")
class Alert(Node):
    is_type_of = _is_record(models.Alert)

    number: int = strawberry.field(description="The alert's number, for people (its id is alert_<number>).")
    external_id: str = strawberry.field(
        description="The detection source's own id for the alert, unique within its scope."
    )
    title: str = strawberry.field(description="What was detected, as the source put it.")
    severity: Severity = strawberry.field(description="How severe the detection is, as the source rated it.")
    status: AlertStatus = strawberry.field(description="Where the alert stands in an analyst's work.")
    category: str = strawberry.field(
        description="The kind of activity, such as a MITRE ATT&CK tactic (Execution, LateralMovement)."
    )
    scope: str = strawberry.field(
        description="The part of the organisation the alert belongs to; grants on it say who may read it and "
        "who may move it."
    )
    detected_at: datetime = strawberry.field(
        description="When the source detected it (when it was ingested, if the source did not say)."
    )

    @strawberry.field(
        description="The incident it belongs to now; every alert belongs to exactly one. Readable without the queue "
        "permission."
    )
    async def incident(self, info: Info[Context, None]) -> Incident:
        return await fields.resolve(self, info)

    @strawberry.field(description="The evidence it involves, by kind, then value.")
    async def entities(self, info: Info[Context, None]) -> list[Entity]:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="Whether the viewer may move this alert to another incident: a write grant on its scope and "
        "the queue permission."
    )
    def viewer_can_link(self, info: Info[Context, None]) -> bool:
        return fields.resolve_now(self, info)

    @strawberry.field(
        description="Every incident the alert has been in, oldest first, each with the move that took it there "
        "(null for where ingestion put it); the last is where it is now. Needs the queue permission (FORBIDDEN "
        "without)."
    )
    async def history(self, info: Info[Context, None]) -> list[AlertPlacement]:
        return await fields.resolve(self, info)


@strawberry.type(description="One attack story: a group of alerts.")
class Incident(Node):
    is_type_of = _is_record(models.Incident)

    number: int = strawberry.field(
        description="The incident's number, for people and tickets (its id is inc_<number>); "
        "`incident(number:)` finds it."
    )
    status: IncidentStatus = strawberry.field(description="Where the incident stands: open, resolved or merged.")
    created_at: datetime = strawberry.field(description="When the incident was created.")
    assigned_to: str | None = strawberry.field(
        description="The name of the user working on it (updateIncident's assignedTo); null: nobody."
    )
    classification: Classification = strawberry.field(
        description="What it turned out to be; UNKNOWN until someone classifies it (resolving needs it)."
    )
    determination: Determination = strawberry.field(description="Why, in more detail; UNKNOWN until given.")

    @strawberry.field(
        description="Whether the viewer may change it (updateIncident, addComment): the queue permission and a "
        "write grant on the scope of at least one of its alerts (of those it last held, when it holds none)."
    )
    def viewer_can_update(self, info: Info[Context, None]) -> bool:
        return fields.resolve_now(self, info)

    updated_at: datetime = strawberry.field(
        description="When the incident or one of its alerts last changed (a move, a merge, a revert, ingestion, or "
        "any other change): the time its transaction started. Changes to alerts the viewer may not read count "
        "too, as their entries in the activity log do."
    )

    @strawberry.field(
        description='Named after its first alerts; "Incident <number>" to a viewer who may not read the alerts '
        "it was named after."
    )
    def name(self, info: Info[Context, None]) -> str:
        return fields.resolve_now(self, info)

    @strawberry.field(
        description="The highest severity among its alerts (kept when it has none); to a viewer who may read "
        "only some of them, among those."
    )
    async def severity(self, info: Info[Context, None]) -> Severity:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="The latest detectedAt among its alerts (kept when it has none); to a viewer who may read "
        "only some of them, among those."
    )
    async def last_activity_at(self, info: Info[Context, None]) -> datetime:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="The incident this one was merged into, when REDIRECTED. That incident may have been merged "
        "into another since (B into A, then A into C: B still points at A, as it happened): follow redirectIncident "
        "until an incident that is not REDIRECTED to find where the alerts are now. Redirects never loop (an "
        "incident is never merged into one that is REDIRECTED at the time), so that ends within the number of "
        "incidents."
    )
    async def redirect_incident(self, info: Info[Context, None]) -> Incident | None:
        return await fields.resolve(self, info)

    @strawberry.field(description="How many of its alerts the viewer may read.")
    async def alert_count(self, info: Info[Context, None]) -> int:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="Why a search (incidents(filter: {search})) listed it by its evidence: the entities of its alerts "
        "the viewer may read whose values hold the search's words, at most 10, by kind, then value. Empty for an "
        "incident listed for its name or number, and outside a search."
    )
    def matched_evidence(self, info: Info[Context, None]) -> list[Entity]:
        return fields.resolve_now(self, info)

    @strawberry.field(description="Its alerts that the viewer may read, most recently detected first.")
    async def alerts(
        self,
        info: Info[Context, None],
        first: Annotated[int | None, first_argument(fields.ALERTS_PAGE)] = None,
        after: Annotated[str | None, AFTER_ARGUMENT] = None,
        last: Annotated[int | None, last_argument(fields.ALERTS_PAGE)] = None,
        before: Annotated[str | None, BEFORE_ARGUMENT] = None,
    ) -> Connection[Alert]:
        return await fields.resolve(self, info)

    @strawberry.field(description="Its activity log, newest first.")
    async def activity_log(
        self,
        info: Info[Context, None],
        first: Annotated[int | None, first_argument(fields.LOG_PAGE)] = None,
        after: Annotated[str | None, AFTER_ARGUMENT] = None,
        last: Annotated[int | None, last_argument(fields.LOG_PAGE)] = None,
        before: Annotated[str | None, BEFORE_ARGUMENT] = None,
    ) -> Connection[ActivityLogEntry]:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="The moves, merges and reverts that took alerts into or out of it (or redirected it), newest "
        "first. Needs the queue permission."
    )
    async def moves(
        self,
        info: Info[Context, None],
        first: Annotated[int | None, first_argument(fields.MOVES_PAGE)] = None,
        after: Annotated[str | None, AFTER_ARGUMENT] = None,
        last: Annotated[int | None, last_argument(fields.MOVES_PAGE)] = None,
        before: Annotated[str | None, BEFORE_ARGUMENT] = None,
    ) -> Connection[Move]:
        return await fields.resolve(self, info)


@strawberry.type(description="One line of an incident's activity log.")
class ActivityLogEntry(Node):
    is_type_of = _is_record(models.ActivityEntry)

    kind: ActivityKind = strawberry.field(description="What happened.")
    created_at: datetime = strawberry.field(description="When it happened.")
    actor: str = strawberry.field(description='The user\'s name, or "system" for automatic correlation.')
    old_status: IncidentStatus | None = strawberry.field(description="STATUS_CHANGED: the status before; else null.")
    new_status: IncidentStatus | None = strawberry.field(description="STATUS_CHANGED: the status after; else null.")
    old_assignee: str | None = strawberry.field(
        description="ASSIGNED: who was assigned before (null: nobody); null for other kinds."
    )
    new_assignee: str | None = strawberry.field(
        description="ASSIGNED: who is assigned now (null: nobody); null for other kinds."
    )
    old_classification: Classification | None = strawberry.field(
        description="CLASSIFIED: the classification before; else null."
    )
    new_classification: Classification | None = strawberry.field(
        description="CLASSIFIED: the classification after; else null."
    )
    old_determination: Determination | None = strawberry.field(
        description="CLASSIFIED: the determination before; else null."
    )
    new_determination: Determination | None = strawberry.field(
        description="CLASSIFIED: the determination after; else null."
    )

    @strawberry.field(
        description="The comment given with a move; null when the entry speaks of alerts the viewer may not read."
    )
    async def comment(self, info: Info[Context, None]) -> str | None:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="A sentence a person reads in the log. It names alerts and incidents the viewer may see, "
        "and no others."
    )
    async def message(self, info: Info[Context, None]) -> str:
        return await fields.resolve(self, info)

    @strawberry.field(description="Whose log this entry is in.")
    async def incident(self, info: Info[Context, None]) -> Incident:
        return await fields.resolve(self, info)

    @strawberry.field(description="The alert the entry is about, when the viewer may read it.")
    async def alert(self, info: Info[Context, None]) -> Alert | None:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="The other incident: where the alert came from (ALERT_LINKED) or went (ALERT_UNLINKED), the "
        "source or target of a merge, where a revert's alerts went or came from; null when the viewer cannot "
        "see it."
    )
    async def other_incident(self, info: Info[Context, None]) -> Incident | None:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="The move, merge or revert that wrote this entry; null for ingestion's entries (and for "
        "entries written before moves were recorded)."
    )
    async def move(self, info: Info[Context, None]) -> Move | None:
        return await fields.resolve(self, info)


@strawberry.type(
    description="One linkAlerts, mergeIncidents or revertMove call that changed something: who, when, why, and "
    "each alert it moved. Seen by a viewer with the queue permission who may see one of the incidents it touched."
)
class Move(Node):
    is_type_of = _is_record(models.Move)

    number: int = strawberry.field(description="The move's number (its id is move_<number>).")
    kind: MoveKind = strawberry.field(description="Which operation made it.")
    actor: str = strawberry.field(description="The user who made it.")
    created_at: datetime = strawberry.field(description="When it was made.")
    reasons: list[MergeReason] = strawberry.field(description="A merge's reasons, as given; empty for other moves.")

    @strawberry.field(
        description="The comment given with it; null when it moved alerts the viewer may not read (as a log "
        "entry's comment)."
    )
    def comment(self, info: Info[Context, None]) -> str | None:
        return fields.resolve_now(self, info)

    @strawberry.field(description="How many of the alerts it moved the viewer may read.")
    async def alert_count(self, info: Info[Context, None]) -> int:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="Each alert it moved that the viewer may read, with where it came from and where it went, "
        "by alert number."
    )
    async def items(
        self,
        info: Info[Context, None],
        first: Annotated[int | None, first_argument(fields.ITEMS_PAGE)] = None,
        after: Annotated[str | None, AFTER_ARGUMENT] = None,
        last: Annotated[int | None, last_argument(fields.ITEMS_PAGE)] = None,
        before: Annotated[str | None, BEFORE_ARGUMENT] = None,
    ) -> Connection[MoveItem]:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="Where the alerts went (a merge's target); null for a REVERT, whose alerts go back to "
        "several incidents (see items), and when the viewer cannot see it."
    )
    async def target(self, info: Info[Context, None]) -> Incident | None:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="The incidents alerts left (a merge's sources, a revert's: where the reverted move had put "
        "them), those the viewer may see, by number."
    )
    async def sources(self, info: Info[Context, None]) -> list[Incident]:
        return await fields.resolve(self, info)

    @strawberry.field(description="For a REVERT: the move it undid.")
    async def reverts(self, info: Info[Context, None]) -> Move | None:
        return await fields.resolve(self, info)

    @strawberry.field(description="The REVERT that undid this move, if any: a move is reverted at most once.")
    async def reverted_by(self, info: Info[Context, None]) -> Move | None:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="Whether revertMove would take it now, as far as a cheap look tells: not reverted yet, every "
        "alert the viewer's to move, none of them moved since, and no incident it would send alerts back to or "
        "merge again changed since (INCIDENT_MERGED_SINCE, INCIDENT_CHANGED_SINCE). revertMove checks again under "
        "its locks."
    )
    async def viewer_can_revert(self, info: Info[Context, None]) -> bool:
        return await fields.resolve(self, info)


@strawberry.type(description="One alert a move moved: where it came from, where it went.")
class MoveItem:
    @strawberry.field(description="The alert.")
    async def alert(self, info: Info[Context, None]) -> Alert:
        return await fields.resolve(self, info)

    @strawberry.field(name="from", description="The incident it left; null when the viewer cannot see it now.")
    async def from_incident(self, info: Info[Context, None]) -> Incident | None:
        return await fields.resolve(self, info)

    @strawberry.field(name="to", description="The incident it reached; null when the viewer cannot see it now.")
    async def to_incident(self, info: Info[Context, None]) -> Incident | None:
        return await fields.resolve(self, info)


@strawberry.type(description="An incident an alert was in, and how it got there.")
class AlertPlacement:
    at: datetime = strawberry.field(description="When it got there: the move's time, or the alert's ingestion.")

    @strawberry.field(description="The incident; null when the viewer cannot see it now.")
    async def incident(self, info: Info[Context, None]) -> Incident | None:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="The move that took the alert there; null for where ingestion put it (or when the viewer "
        "cannot see the move)."
    )
    async def move(self, info: Info[Context, None]) -> Move | None:
        return await fields.resolve(self, info)


@strawberry.type(description="Access to the alerts of one scope.")
class Grant:
    scope: str = strawberry.field(description='A scope name; "*" means every scope.')
    access: Access = strawberry.field(description="What the grant allows there.")


@strawberry.type(description="The user the request's token belongs to, and what they may do.")
class Viewer:
    name: str = strawberry.field(
        description="The user's name, which the activity log shows as the actor of their moves."
    )
    can_view_incidents: bool = strawberry.field(
        description="The queue permission: whether they may browse incidents (incidents, incident, node and nodes "
        "for incidents and log entries) and move alerts."
    )
    can_ingest: bool = strawberry.field(description="Whether they may send alerts with ingestAlerts.")

    @strawberry.field(
        description="Their access, one grant per scope, by scope name. Alerts of scopes they hold no grant on "
        '(nor "*") are hidden from them.'
    )
    def grants(self, info: Info[Context, None]) -> list[Grant]:
        return fields.resolve_now(self, info)
