"""GraphQL object types, enums and connections, built from the domain's records."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import Enum
from typing import Generic, TypeVar

import strawberry
from strawberry.types import Info

from app.api.context import Context
from app.domain import activity, alerts, incidents, models
from app.domain.pagination import Page

T = TypeVar("T")


@strawberry.enum
class Severity(Enum):
    INFORMATIONAL = "informational"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@strawberry.enum
class IncidentStatus(Enum):
    ACTIVE = "active"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    REDIRECTED = "redirected"


@strawberry.enum
class AlertStatus(Enum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"


@strawberry.enum
class EntityKind(Enum):
    DEVICE = "device"
    USER = "user"
    IP = "ip"
    MAILBOX = "mailbox"
    FILE = "file"
    URL = "url"


@strawberry.enum
class ActivityKind(Enum):
    ALERT_CORRELATED = "alert_correlated"
    ALERT_LINKED = "alert_linked"
    ALERT_UNLINKED = "alert_unlinked"
    INCIDENT_CREATED = "incident_created"
    INCIDENT_RESOLVED = "incident_resolved"
    INCIDENT_REOPENED = "incident_reopened"


@strawberry.enum
class Access(Enum):
    READ = "read"
    WRITE = "write"


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list holds, over all pages.")
    async def total_count(self) -> int:
        return await self.count()


def connection(page: Page, node: Callable, count: Callable[[], Awaitable[int]]) -> Connection:
    return Connection(
        edges=[Edge(cursor=c, node=node(item)) for c, item in zip(page.cursors, page.items, strict=True)],
        page_info=PageInfo(
            has_next_page=page.has_next, end_cursor=page.end_cursor
        ),
        count=count,
    )


@strawberry.type
class Entity:
    kind: EntityKind
    value: str


@strawberry.type(description="A single detection. It always belongs to exactly one incident.")
class Alert:
    id: strawberry.ID
    external_id: str
    title: str
    severity: Severity
    status: AlertStatus
    category: str
    scope: str
    detected_at: datetime
    model: strawberry.Private[models.Alert]

    @classmethod
    def of(cls, alert: models.Alert) -> Alert:
        return cls(
            id=strawberry.ID(str(alert.id)),
            external_id=alert.external_id,
            title=alert.title,
            severity=Severity(alert.severity),
            status=AlertStatus(alert.status),
            category=alert.category,
            scope=alert.scope,
            detected_at=alert.detected_at,
            model=alert,
        )

    @strawberry.field
    async def incident(self, info: Info[Context, None]) -> Incident:
        found = await info.context.loaders.incident.load(self.model.incident_id)
        if found is None:  # cannot happen: an incident holding a readable alert is visible
            raise LookupError(f"incident {self.model.incident_id} of alert {self.model.id} not visible")
        return Incident.of(found)

    @strawberry.field
    async def entities(self, info: Info[Context, None]) -> list[Entity]:
        found = await info.context.loaders.entities.load(self.model.id)
        return [Entity(kind=EntityKind(e.kind), value=e.value) for e in found]

    @strawberry.field(description="Whether the viewer may move this alert to another incident.")
    def viewer_can_link(self, info: Info[Context, None]) -> bool:
        viewer = info.context.viewer
        return viewer.can_view_incidents and viewer.can_write(self.model.scope)


@strawberry.type(description="One attack story: a group of alerts.")
class Incident:
    id: strawberry.ID = strawberry.field(description='The incident number as a decimal string, e.g. "1042".')
    name: str
    status: IncidentStatus
    severity: Severity = strawberry.field(description="The highest severity among its alerts (kept when it has none).")
    created_at: datetime
    last_activity_at: datetime = strawberry.field(
        description="The latest detectedAt among its alerts (kept when it has none)."
    )
    model: strawberry.Private[models.Incident]

    @classmethod
    def of(cls, incident: models.Incident) -> Incident:
        return cls(
            id=strawberry.ID(str(incident.id)),
            name=incident.name,
            status=IncidentStatus(incident.status),
            severity=Severity(incident.severity),
            created_at=incident.created_at,
            last_activity_at=incident.last_activity_at,
            model=incident,
        )

    @strawberry.field(description="The incident this one was merged into, when REDIRECTED.")
    async def redirect_incident(self, info: Info[Context, None]) -> Incident | None:
        if self.model.redirect_incident_id is None:
            return None
        found = await info.context.loaders.incident.load(self.model.redirect_incident_id)
        return Incident.of(found) if found else None

    @strawberry.field(description="How many of its alerts the viewer may read.")
    async def alert_count(self, info: Info[Context, None]) -> int:
        return await _readable_alert_count(self.model, info.context)

    @strawberry.field(description="Its alerts that the viewer may read, most recently detected first.")
    async def alerts(
        self, info: Info[Context, None], first: int | None = 50, after: str | None = None
    ) -> Connection[Alert]:
        ctx = info.context
        first = 50 if first is None else first
        if after is None:
            page = await ctx.loaders.first_alerts.load((self.model.id, first))
        else:
            page = await alerts.list_alerts(
                conn=ctx.pool, viewer=ctx.viewer, flt=alerts.AlertFilter(incident_id=self.model.id),
                first=first, after=after,
            )
        return connection(page, Alert.of, lambda: _readable_alert_count(self.model, ctx))

    @strawberry.field(description="Its activity log, newest first.")
    async def activity_log(
        self, info: Info[Context, None], first: int | None = 50, after: str | None = None
    ) -> Connection[ActivityLogEntry]:
        ctx = info.context
        first = 50 if first is None else first
        if after is None:
            page = await ctx.loaders.first_entries.load((self.model.id, first))
        else:
            page = await activity.entries_after(conn=ctx.pool, incident_id=self.model.id, first=first, after=after)
        return connection(
            page,
            lambda e: ActivityLogEntry.of(e, ctx),
            lambda: activity.count_entries(conn=ctx.pool, incident_id=self.model.id),
        )


async def _readable_alert_count(incident: models.Incident, ctx: Context) -> int:
    if incidents.reads_all_alerts(incident, ctx.viewer):
        return incident.alert_count
    return await ctx.loaders.readable_alert_count.load(incident.id)


@strawberry.type(description="One line of an incident's activity log.")
class ActivityLogEntry:
    id: strawberry.ID
    kind: ActivityKind
    created_at: datetime
    actor: str = strawberry.field(description='The user\'s name, or "system" for automatic correlation.')
    message: str = strawberry.field(description="A sentence a person reads in the log.")
    comment: str | None = strawberry.field(description="The comment given with a move.")
    model: strawberry.Private[models.ActivityEntry]

    @classmethod
    def of(cls, entry: models.ActivityEntry, ctx: Context) -> ActivityLogEntry:
        return cls(
            id=strawberry.ID(str(entry.id)),
            kind=ActivityKind(entry.kind),
            created_at=entry.created_at,
            actor=entry.actor,
            message=activity.message(entry, ctx.viewer),
            comment=entry.comment,
            model=entry,
        )

    @strawberry.field(description="Whose log this entry is in.")
    async def incident(self, info: Info[Context, None]) -> Incident:
        found = await info.context.loaders.incident.load(self.model.incident_id)
        if found is None:
            raise LookupError(f"incident {self.model.incident_id} of log entry {self.model.id} not visible")
        return Incident.of(found)

    @strawberry.field(description="The alert the entry is about, when the viewer may read it.")
    async def alert(self, info: Info[Context, None]) -> Alert | None:
        if self.model.alert_id is None:
            return None
        found = await info.context.loaders.alert.load(self.model.alert_id)
        return Alert.of(found) if found else None

    @strawberry.field(description="Where the alert came from (ALERT_LINKED) or went (ALERT_UNLINKED).")
    async def other_incident(self, info: Info[Context, None]) -> Incident | None:
        if self.model.other_incident_id is None:
            return None
        found = await info.context.loaders.incident.load(self.model.other_incident_id)
        return Incident.of(found) if found else None


@strawberry.type
class Grant:
    scope: str = strawberry.field(description='A scope name; "*" means every scope.')
    access: Access


@strawberry.type
class Viewer:
    name: str
    can_view_incidents: bool
    can_ingest: bool
    grants: list[Grant]
