"""The schema: queries, mutations and the extensions every request goes through.

`python -m app.api.schema` prints the SDL that is committed as schema.graphql.
"""

from __future__ import annotations

from collections.abc import Iterator

import strawberry
from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.types import Info

from app.api import fields
from app.api.context import Context
from app.api.errors import ErrorPolicy
from app.api.limits import Limits, extensions
from app.api.mutations.ingest_alerts import IngestAlertsPayload, ingest_alerts
from app.api.mutations.link_alerts import LinkAlertsPayload, link_alerts
from app.api.types import (
    ActivityLogEntry,
    Alert,
    AlertStatus,
    Connection,
    Incident,
    IncidentStatus,
    Node,
    Severity,
    Viewer,
)


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


# Each resolver's arguments declare the schema; the body is the field's batch (app/api/fields.py),
# which reads the arguments as graphql-core coerced them, as the lean path does.
@strawberry.type
class Query:
    @strawberry.field(description="Who is asking, and what they may do.")
    def viewer(self, info: Info[Context, None]) -> Viewer:
        return fields.resolve_now(self, info)

    @strawberry.field(
        description="An incident by id or by number (exactly one of them), or null when there is none the viewer "
        "may see. Needs the queue permission."
    )
    async def incident(
        self, info: Info[Context, None], id: strawberry.ID | None = None, number: int | None = None
    ) -> Incident | None:
        return await fields.resolve(self, info)

    @strawberry.field(description="The incidents queue, most recently active first.")
    async def incidents(
        self,
        info: Info[Context, None],
        filter: IncidentFilter | None = None,
        first: int | None = fields.QUEUE_PAGE,
        after: str | None = None,
    ) -> Connection[Incident]:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="An alert by id or by number (exactly one of them), or null when there is none the viewer may read."
    )
    async def alert(
        self, info: Info[Context, None], id: strawberry.ID | None = None, number: int | None = None
    ) -> Alert | None:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="The object with this id, or null when there is none the viewer may see (Relay's refetch). "
        "Incidents and log entries need the queue permission, as `incident` does; alerts need read access to "
        "their scope. An id that is not one this API gives out is BAD_USER_INPUT."
    )
    async def node(self, info: Info[Context, None], id: strawberry.ID) -> Node | None:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="The objects with these ids, in the same order, null for each the viewer may not see; at most "
        "as many as a page holds (MAX_PAGE_SIZE)."
    )
    async def nodes(self, info: Info[Context, None], ids: list[strawberry.ID]) -> list[Node | None]:
        return await fields.resolve(self, info)

    @strawberry.field(description="Alerts the viewer may read, most recently detected first.")
    async def alerts(
        self,
        info: Info[Context, None],
        filter: AlertFilter | None = None,
        first: int | None = fields.ALERTS_PAGE,
        after: str | None = None,
    ) -> Connection[Alert]:
        return await fields.resolve(self, info)


@strawberry.type
class Mutation:
    link_alerts: LinkAlertsPayload = strawberry.mutation(resolver=link_alerts)
    ingest_alerts: IngestAlertsPayload = strawberry.mutation(resolver=ingest_alerts)


class OperationNameRequired(SchemaExtension):
    """A document with several operations and no operationName is a request error, as the
    GraphQL spec's GetOperation says; strawberry would run the first one. (The lean path takes
    only documents with exactly one operation to run, so these come here.)"""

    def on_validate(self) -> Iterator[None]:
        # After the validation cache, which sets pre_execution_errors: a new list, never its own.
        ctx = self.execution_context
        document = ctx.graphql_document
        # strawberry's operation_name falls back to the first operation's name: only the one the
        # request gave counts here.
        if document is not None and ctx._provided_operation_name is None:
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if len(operations) > 1:
                names = ", ".join(o.name.value if o.name else "an anonymous one" for o in operations)
                error = GraphQLError(
                    f"Must provide operation name if query contains multiple operations: this document holds "
                    f"{len(operations)} ({names}); say which one to run with operationName.",
                    nodes=operations,
                    extensions={"code": "GRAPHQL_VALIDATION_FAILED"},
                )
                ctx.pre_execution_errors = [*(ctx.pre_execution_errors or []), error]
        yield


def build_schema(limits: Limits | None = None) -> strawberry.Schema:
    """The schema with its extensions: error policy, parser and validation caches, the operation
    to run, limits."""
    before, after = extensions(limits or Limits())
    return strawberry.Schema(
        query=Query,
        types=[ActivityLogEntry],  # reached through Incident, listed so that every Node is named here
        mutation=Mutation,
        extensions=[ErrorPolicy, *before, ParserCache, ValidationCache, OperationNameRequired, *after],
    )


if __name__ == "__main__":
    print(build_schema().as_str())
