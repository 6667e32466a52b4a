"""GraphQL object types and enums. Their objects are the domain's records.

A field without a resolver reads the record's attribute of the same Python name; a field with
one resolves through app/api/fields.py, where its behaviour is written once for both execution
paths. The enums wrap the domain's own (app/domain/models.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

import strawberry
from strawberry.types import Info

from app.api import fields
from app.api.context import Context
from app.domain import models

T = TypeVar("T")

Severity = strawberry.enum(models.Severity, name="Severity")
IncidentStatus = strawberry.enum(models.IncidentStatus, name="IncidentStatus")
AlertStatus = strawberry.enum(models.AlertStatus, name="AlertStatus")
EntityKind = strawberry.enum(models.EntityKind, name="EntityKind")
ActivityKind = strawberry.enum(models.ActivityKind, name="ActivityKind")
Access = strawberry.enum(models.Access, name="Access")


@strawberry.type(description="Where a page of a connection stands in its list (Relay's PageInfo).")
class PageInfo:
    has_next: bool = strawberry.field(name="hasNextPage", description="Whether more items follow this page.")
    has_previous: bool = strawberry.field(
        name="hasPreviousPage",
        description="Whether items come before this page: true when it was asked for with `after` (the items up "
        "to that cursor came before it; not looked up again), false on a first page. Lists page forward only "
        "(`first` and `after`).",
    )
    start_cursor: str | None = strawberry.field(
        description="The cursor of the page's first edge; null when the page is empty."
    )
    end_cursor: str | None = strawberry.field(
        description="The cursor of the page's last edge, to pass as `after` for the next page; null when the "
        "page is empty."
    )


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @strawberry.field(description="How many items the whole list holds, over all pages.")
    async def total_count(self, info: Info[Context, None]) -> int:
        return await fields.resolve(self, info)


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


@strawberry.type
class Entity:
    kind: EntityKind
    value: str


@strawberry.type(description="A single detection. It always belongs to exactly one incident.")
class Alert(Node):
    is_type_of = _is_record(models.Alert)

    number: int = strawberry.field(description="The alert's number, for people (its id is alert_<number>).")
    external_id: str
    title: str
    severity: Severity
    status: AlertStatus
    category: str
    scope: str
    detected_at: datetime

    @strawberry.field
    async def incident(self, info: Info[Context, None]) -> Incident:
        return await fields.resolve(self, info)

    @strawberry.field
    async def entities(self, info: Info[Context, None]) -> list[Entity]:
        return await fields.resolve(self, info)

    @strawberry.field(description="Whether the viewer may move this alert to another incident.")
    def viewer_can_link(self, info: Info[Context, None]) -> bool:
        return fields.resolve_now(self, info)


@strawberry.type(description="One attack story: a group of alerts.")
class Incident(Node):
    is_type_of = _is_record(models.Incident)

    number: int = strawberry.field(
        description="The incident's number, for people and tickets (its id is inc_<number>); "
        "`incident(number:)` finds it."
    )
    status: IncidentStatus
    created_at: datetime

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

    @strawberry.field(description="The incident this one was merged into, when REDIRECTED.")
    async def redirect_incident(self, info: Info[Context, None]) -> Incident | None:
        return await fields.resolve(self, info)

    @strawberry.field(description="How many of its alerts the viewer may read.")
    async def alert_count(self, info: Info[Context, None]) -> int:
        return await fields.resolve(self, info)

    @strawberry.field(description="Its alerts that the viewer may read, most recently detected first.")
    async def alerts(
        self, info: Info[Context, None], first: int | None = fields.ALERTS_PAGE, after: str | None = None
    ) -> Connection[Alert]:
        return await fields.resolve(self, info)

    @strawberry.field(description="Its activity log, newest first.")
    async def activity_log(
        self, info: Info[Context, None], first: int | None = fields.LOG_PAGE, after: str | None = None
    ) -> Connection[ActivityLogEntry]:
        return await fields.resolve(self, info)


@strawberry.type(description="One line of an incident's activity log.")
class ActivityLogEntry(Node):
    is_type_of = _is_record(models.ActivityEntry)

    kind: ActivityKind
    created_at: datetime
    actor: str = strawberry.field(description='The user\'s name, or "system" for automatic correlation.')

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

    @strawberry.field(description="Where the alert came from (ALERT_LINKED) or went (ALERT_UNLINKED).")
    async def other_incident(self, info: Info[Context, None]) -> Incident | None:
        return await fields.resolve(self, info)


@strawberry.type
class Grant:
    scope: str = strawberry.field(description='A scope name; "*" means every scope.')
    access: Access


@strawberry.type
class Viewer:
    name: str
    can_view_incidents: bool
    can_ingest: bool

    @strawberry.field
    def grants(self, info: Info[Context, None]) -> list[Grant]:
        return fields.resolve_now(self, info)
