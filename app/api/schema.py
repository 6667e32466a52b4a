"""The schema: queries, mutations and the extensions every request goes through.

`python -m app.api.schema` prints the SDL that is committed as schema.graphql.
"""

from __future__ import annotations

import strawberry
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.types import Info

from app.api import ids
from app.api.context import Context
from app.api.errors import ErrorPolicy
from app.api.limits import Limits, extensions
from app.api.mutations.ingest_alerts import IngestAlertsPayload, ingest_alerts
from app.api.mutations.link_alerts import LinkAlertsPayload, link_alerts
from app.api.types import (
    Access,
    Alert,
    AlertStatus,
    Connection,
    Grant,
    Incident,
    IncidentStatus,
    Severity,
    Viewer,
    connection,
)
from app.domain import alerts, incidents


@strawberry.input(description="Typeahead and filters for the incidents queue.")
class IncidentFilter:
    search: str | None = strawberry.field(
        default=None,
        description="Every word must appear in the name, in any order, case-insensitively. "
        "An incident number puts that incident first.",
    )
    status: list[IncidentStatus] | None = None
    severity: list[Severity] | None = None


@strawberry.input(description="Search and filters for alerts.")
class AlertFilter:
    search: str | None = strawberry.field(
        default=None, description="Every word must appear in the title, in any order, case-insensitively."
    )
    incident_id: strawberry.ID | None = None
    status: list[AlertStatus] | None = None
    severity: list[Severity] | None = None


def _values(items):
    return None if items is None else [i.value for i in items]


@strawberry.type
class Query:
    @strawberry.field(description="Who is asking, and what they may do.")
    def viewer(self, info: Info[Context, None]) -> Viewer:
        v = info.context.viewer
        return Viewer(
            name=v.name,
            can_view_incidents=v.can_view_incidents,
            can_ingest=v.can_ingest,
            grants=[Grant(scope=s, access=Access(a)) for s, a in sorted(v.grants.items())],
        )

    @strawberry.field(description="An incident by number, or null when there is none the viewer may see.")
    async def incident(self, info: Info[Context, None], id: strawberry.ID) -> Incident | None:
        found = await info.context.loaders.incident.load(ids.number(id, "id"))
        return Incident.of(found) if found else None

    @strawberry.field(description="The incidents queue, most recently active first.")
    async def incidents(
        self, info: Info[Context, None], filter: IncidentFilter | None = None, first: int | None = 20,
        after: str | None = None,
    ) -> Connection[Incident]:
        ctx = info.context
        first = 20 if first is None else first
        flt = incidents.IncidentFilter(
            search=filter.search if filter else None,
            statuses=_values(filter.status) if filter else None,
            severities=_values(filter.severity) if filter else None,
        )
        page = await incidents.list_incidents(conn=ctx.pool, viewer=ctx.viewer, flt=flt, first=first, after=after)
        return connection(
            page, Incident.of, lambda: incidents.count_incidents(conn=ctx.pool, viewer=ctx.viewer, flt=flt)
        )

    @strawberry.field(description="An alert by id, or null when there is none the viewer may read.")
    async def alert(self, info: Info[Context, None], id: strawberry.ID) -> Alert | None:
        found = await info.context.loaders.alert.load(ids.number(id, "id"))
        return Alert.of(found) if found else None

    @strawberry.field(description="Alerts the viewer may read, most recently detected first.")
    async def alerts(
        self, info: Info[Context, None], filter: AlertFilter | None = None, first: int | None = 50,
        after: str | None = None,
    ) -> Connection[Alert]:
        ctx = info.context
        first = 50 if first is None else first
        flt = alerts.AlertFilter(
            search=filter.search if filter else None,
            incident_id=ids.number(filter.incident_id, "filter.incidentId") if filter and filter.incident_id is not None else None,
            statuses=_values(filter.status) if filter else None,
            severities=_values(filter.severity) if filter else None,
        )
        page = await alerts.list_alerts(conn=ctx.pool, viewer=ctx.viewer, flt=flt, first=first, after=after)
        return connection(page, Alert.of, lambda: alerts.count_alerts(conn=ctx.pool, viewer=ctx.viewer, flt=flt))


@strawberry.type
class Mutation:
    link_alerts: LinkAlertsPayload = strawberry.mutation(resolver=link_alerts)
    ingest_alerts: IngestAlertsPayload = strawberry.mutation(resolver=ingest_alerts)


def build_schema(limits: Limits | None = None) -> strawberry.Schema:
    """The schema with its extensions: error policy, parser and validation caches, limits."""
    before, after = extensions(limits or Limits())
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=[ErrorPolicy, *before, ParserCache, ValidationCache, *after],
    )


if __name__ == "__main__":
    print(build_schema().as_str())
