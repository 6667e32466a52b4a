"""The schema: queries, mutations and the extensions every request goes through.

`python -m app.api.schema` prints the SDL that is committed as schema.graphql.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

import strawberry
from graphql import GraphQLError, OperationDefinitionNode, OperationType, get_operation_ast
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.types import Info

from app.api import fields
from app.api.change_renders import LiveExecutor
from app.api.context import Context
from app.api.errors import ErrorPolicy
from app.api.limits import Limits, extensions
from app.api.mutations.add_comment import AddCommentPayload, add_comment
from app.api.mutations.ingest_alerts import IngestAlertsPayload, ingest_alerts
from app.api.mutations.link_alerts import LinkAlertsPayload, link_alerts
from app.api.mutations.merge_incidents import MergeIncidentsPayload, merge_incidents
from app.api.mutations.revert_move import RevertMovePayload, revert_move
from app.api.mutations.update_incident import UpdateIncidentPayload, update_incident
from app.api.scalars import DATE_TIME
from app.api.subscriptions import Subscription
from app.api.types import (
    AFTER_ARGUMENT,
    BEFORE_ARGUMENT,
    ActivityLogEntry,
    Alert,
    AlertStatus,
    Classification,
    Connection,
    EntityKind,
    Incident,
    IncidentSort,
    IncidentStatus,
    Move,
    Node,
    Severity,
    Viewer,
    first_argument,
    last_argument,
)
from app.domain import models


@strawberry.input(
    description="An entity to pivot on: alerts holding one of this kind with this value, compared case-insensitively "
    "and whole (not as a substring)."
)
class EntityFilter:
    kind: EntityKind = strawberry.field(description="What the value names.")
    value: str = strawberry.field(
        description="The value, 1 to 1,000 characters; surrounding spaces are trimmed (empty or longer: BAD_USER_INPUT)."
    )


@strawberry.input(description="Typeahead and filters for the incidents queue.")
class IncidentFilter:
    search: str | None = strawberry.field(
        default=None,
        description="Every word must appear in the name, in any order, case-insensitively, or every word in the value "
        "of one entity of an alert the viewer may read (its evidence: a host's digits, an email's local part, a "
        "partial IP; each word at least 3 characters, else names only). At most 200 characters and 8 words (more: "
        'BAD_USER_INPUT). An incident number ("1042", "#1042" or "inc_1042") puts that incident first; then name and '
        "evidence matches together, most recently active first (matchedEvidence says which evidence matched).",
    )
    status: list[IncidentStatus] | None = strawberry.field(
        default=None, description="Only incidents in one of these statuses (an empty list matches none); null: any."
    )
    severity: list[Severity] | None = strawberry.field(
        default=None,
        description="Only incidents whose severity, as the viewer sees it, is one of these (an empty list matches "
        "none); null: any.",
    )
    assigned_to: list[str] | None = strawberry.field(
        default=None,
        description='Only incidents assigned to one of these users, by name; "me" is the viewer (an empty list '
        "matches none); null: anyone or nobody.",
    )
    unassigned: bool | None = strawberry.field(
        default=None,
        description="true: only incidents nobody is assigned to; false: only those someone is; null: either.",
    )
    classification: list[Classification] | None = strawberry.field(
        default=None,
        description="Only incidents with one of these classifications (UNKNOWN: not classified yet; an empty list "
        "matches none); null: any.",
    )
    updated_since: datetime | None = strawberry.field(
        default=None,
        description="Only incidents whose updatedAt is at or after this moment; null: any. For clients that poll: "
        "pass the updatedAt of the latest incident seen minus a few seconds (a change is stamped when its "
        "transaction starts and seen when it commits), or subscribe to incidentChanges instead.",
    )
    entity: EntityFilter | None = strawberry.field(
        default=None,
        description="Only incidents holding an alert the viewer may read with this entity (for scripts that pivot "
        "from one alert's evidence to every incident sharing it); null: any.",
    )


@strawberry.input(description="Search and filters for alerts.")
class AlertFilter:
    search: str | None = strawberry.field(
        default=None,
        description="Every word must appear in the title, in any order, case-insensitively, or every word in the "
        "value of one of the alert's entities (each word at least 3 characters, else titles only); at most 200 "
        "characters and 8 words (more: BAD_USER_INPUT).",
    )
    incident_id: strawberry.ID | None = strawberry.field(
        default=None,
        description='Only the alerts of this incident, by id (such as "inc_1042"); null: of any incident. Not an '
        "incident id: BAD_USER_INPUT.",
    )
    status: list[AlertStatus] | None = strawberry.field(
        default=None, description="Only alerts in one of these statuses (an empty list matches none); null: any."
    )
    severity: list[Severity] | None = strawberry.field(
        default=None, description="Only alerts of one of these severities (an empty list matches none); null: any."
    )
    entity: EntityFilter | None = strawberry.field(
        default=None, description="Only alerts holding this entity; null: any."
    )


# Each resolver's arguments declare the schema; the body is the field's batch (app/api/fields.py),
# which reads the arguments as graphql-core coerced them, as the lean path does.
@strawberry.type(
    description="What the viewer may read. Everything is shown as far as they may see it: alerts of the scopes they "
    "hold a grant on, and incidents holding at least one such alert."
)
class Query:
    @strawberry.field(description="Who is asking, and what they may do.")
    def viewer(self, info: Info[Context, None]) -> Viewer:
        return fields.resolve_now(self, info)

    @strawberry.field(
        description="An incident by id or by number (exactly one of them), or null when there is none the viewer "
        "may see. Needs the queue permission."
    )
    async def incident(
        self,
        info: Info[Context, None],
        id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description='The incident\'s id, such as "inc_1042"; not an incident id: BAD_USER_INPUT.'
            ),
        ] = None,
        number: Annotated[
            int | None, strawberry.argument(description="The incident's number, as people and tickets quote it.")
        ] = None,
    ) -> Incident | None:
        return await fields.resolve(self, info)

    @strawberry.field(description="The incidents queue, most recently active first (or as `sort` says).")
    async def incidents(
        self,
        info: Info[Context, None],
        filter: Annotated[
            IncidentFilter | None,
            strawberry.argument(description="Narrows the queue; null: every incident the viewer may see."),
        ] = None,
        sort: Annotated[
            IncidentSort,
            strawberry.argument(
                description="The order. A cursor belongs to its sort: one from another sort is BAD_USER_INPUT. A search "
                "lists newest activity first: another sort with a search is BAD_USER_INPUT."
            ),
        ] = models.IncidentSort.LAST_ACTIVITY,
        first: Annotated[int | None, first_argument(fields.QUEUE_PAGE)] = None,
        after: Annotated[str | None, AFTER_ARGUMENT] = None,
        last: Annotated[int | None, last_argument(fields.QUEUE_PAGE)] = None,
        before: Annotated[str | None, BEFORE_ARGUMENT] = None,
    ) -> Connection[Incident]:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="An alert by id or by number (exactly one of them), or null when there is none the viewer may read."
    )
    async def alert(
        self,
        info: Info[Context, None],
        id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description='The alert\'s id, such as "alert_57"; not an alert id: BAD_USER_INPUT.'),
        ] = None,
        number: Annotated[
            int | None, strawberry.argument(description="The alert's number, as people quote it.")
        ] = None,
    ) -> Alert | None:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="A move, merge or revert by id or by number (exactly one of them), or null when there is none "
        "the viewer may see. Needs the queue permission."
    )
    async def move(
        self,
        info: Info[Context, None],
        id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description='The move\'s id, such as "move_3"; not a move id: BAD_USER_INPUT.'),
        ] = None,
        number: Annotated[int | None, strawberry.argument(description="The move's number.")] = None,
    ) -> Move | None:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="The object with this id, or null when there is none the viewer may see (Relay's refetch). "
        "Incidents and log entries need the queue permission, as `incident` does; alerts need read access to "
        "their scope. An id that is not one this API gives out is BAD_USER_INPUT."
    )
    async def node(
        self,
        info: Info[Context, None],
        id: Annotated[
            strawberry.ID,
            strawberry.argument(description="An id this API gave out: an incident's, an alert's or a log entry's."),
        ],
    ) -> Node | None:
        return await fields.resolve(self, info)

    @strawberry.field(
        description="The objects with these ids, in the same order, null for each the viewer may not see; at most "
        "as many as a page holds (MAX_PAGE_SIZE)."
    )
    async def nodes(
        self,
        info: Info[Context, None],
        ids: Annotated[
            list[strawberry.ID],
            strawberry.argument(
                description="Ids this API gave out, at most MAX_PAGE_SIZE (100 unless the server says otherwise)."
            ),
        ],
    ) -> list[Node | None]:
        return await fields.resolve(self, info)

    @strawberry.field(description="Alerts the viewer may read, most recently detected first.")
    async def alerts(
        self,
        info: Info[Context, None],
        filter: Annotated[
            AlertFilter | None,
            strawberry.argument(description="Narrows the list; null: every alert the viewer may read."),
        ] = None,
        first: Annotated[int | None, first_argument(fields.ALERTS_PAGE)] = None,
        after: Annotated[str | None, AFTER_ARGUMENT] = None,
        last: Annotated[int | None, last_argument(fields.ALERTS_PAGE)] = None,
        before: Annotated[str | None, BEFORE_ARGUMENT] = None,
    ) -> Connection[Alert]:
        return await fields.resolve(self, info)


@strawberry.type(
    description="What the viewer may change. Each mutation is one transaction, applied in full or not at all. A "
    "refusal comes back in the payload's errors, with a code, and changes nothing; a GraphQL error says in "
    "extensions.code what happened (OUTCOME_UNKNOWN: it may have been applied; APPLIED_ANSWER_UNAVAILABLE: it was)."
)
class Mutation:
    link_alerts: LinkAlertsPayload = strawberry.mutation(
        resolver=link_alerts,
        description="Moves alerts to an existing incident or to a new one, with a comment saying why: all of them, "
        "or none. Each alert that moves writes ALERT_UNLINKED in the log of the incident it leaves and ALERT_LINKED "
        "in the target's. An incident left with no alerts is RESOLVED, a RESOLVED target is reopened, and the "
        "incidents' severity and lastActivityAt are recomputed. Needs the queue permission and a write grant on "
        "every alert's scope.",
    )
    ingest_alerts: IngestAlertsPayload = strawberry.mutation(
        resolver=ingest_alerts,
        description="Stores alerts from a detection source and correlates each into the open incident of a recent "
        "alert that shares evidence with it (see AlertInput.entities), or opens a new incident named after it. "
        "Resending an externalId is safe. Needs the ingest permission (Viewer.canIngest); the answer shows only what the "
        "viewer may read.",
    )
    merge_incidents: MergeIncidentsPayload = strawberry.mutation(
        resolver=merge_incidents,
        description="Merges incidents into one, with a comment and reasons: every source's alerts move to the "
        "target and each source becomes REDIRECTED to it, all of it or nothing. One INCIDENT_REDIRECTED entry in "
        "each source's log and one INCIDENT_MERGED in the target's per source (the merge's move lists every "
        "alert). A RESOLVED target is reopened. Needs the queue permission and a write grant on every alert of "
        "every source.",
    )
    revert_move: RevertMovePayload = strawberry.mutation(
        resolver=revert_move,
        description="Puts every alert of a move (a linkAlerts, a merge or a revert) back in the incident it came "
        "from, all of them or none; refused when one has moved since. A merge's sources are open again; "
        "incidents the move emptied reopen, and incidents the revert empties are RESOLVED. A move is reverted at "
        "most once; reverting a revert puts the alerts back. Needs the queue permission and a write grant on "
        "every alert of the move.",
    )
    update_incident: UpdateIncidentPayload = strawberry.mutation(
        resolver=update_incident,
        description="Changes an incident's status, assignee, classification and determination, those given, at "
        "once: all of it or nothing. Each value that changes writes a typed entry in its log (STATUS_CHANGED, "
        "ASSIGNED, CLASSIFIED) with the actor and the old and new values; a value given as it already is writes "
        "nothing. Resolving needs a classification (CLASSIFICATION_REQUIRED). Needs the queue permission and a "
        "write grant on the scope of at least one of the incident's alerts.",
    )
    add_comment: AddCommentPayload = strawberry.mutation(
        resolver=add_comment,
        description="Writes a note (COMMENTED) in an incident's log, outside any move or change. Same permission "
        "as updateIncident.",
    )


class OperationNameRequired(SchemaExtension):
    """A document with several operations and no operationName is a request error, as the
    GraphQL spec's GetOperation says; strawberry would run the first one. (The lean path takes
    only documents with exactly one operation to run, so these come here.) The operation chosen
    is the request's Context.operation."""

    def on_validate(self) -> Iterator[None]:
        # After the validation cache, which sets pre_execution_errors: a new list, never its own.
        ctx = self.execution_context
        document = ctx.graphql_document
        # strawberry's operation_name falls back to the first operation's name: only the one the
        # request gave counts here.
        name = ctx._provided_operation_name
        if document is not None and isinstance(ctx.context, Context):
            ctx.context.operation = get_operation_ast(document, name)
        if document is not None and name is None:
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


class SubscriptionsStream(SchemaExtension):
    """A subscription needs a stream: over a plain HTTP request (no Accept: text/event-stream)
    it is a request error, not an answer of null."""

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        context = ctx.context
        operation = getattr(context, "operation", None)
        if (
            isinstance(context, Context)
            and not context.streams
            and operation is not None
            and operation.operation == OperationType.SUBSCRIPTION
        ):
            error = GraphQLError(
                "A subscription needs a stream: subscribe over graphql-transport-ws (a WebSocket to /graphql), or "
                "POST it with Accept: text/event-stream (graphql-sse).",
                nodes=[operation],
                extensions={"code": "BAD_REQUEST"},
            )
            ctx.pre_execution_errors = [*(ctx.pre_execution_errors or []), error]
        yield


class ObservedOperation(SchemaExtension):
    """Names the operation that runs in the request's observation (app/observe.py): only one
    that parsed and validated gets here."""

    def on_execute(self) -> Iterator[None]:
        ctx = self.execution_context
        if isinstance(ctx.context, Context):
            ctx.context.observation.operation(ctx.operation_name, ctx.operation_type.value)
        yield


class Schema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:
        # strawberry logs every error at ERROR, a client's mistakes included, with its message (which
        # can quote a variable's value). ErrorPolicy logs the unexpected ones, with their traceback.
        pass


def build_schema(limits: Limits | None = None) -> strawberry.Schema:
    """The schema with its extensions: error policy, parser and validation caches, the operation
    to run, limits."""
    before, after = extensions(limits or Limits())
    return Schema(
        query=Query,
        types=[ActivityLogEntry, Move],  # reached through other types, listed so that every Node is named here
        mutation=Mutation,
        subscription=Subscription,
        execution_context_class=LiveExecutor,
        scalar_overrides={datetime: DATE_TIME},
        extensions=[
            ErrorPolicy,
            *before,
            ParserCache,
            ValidationCache,
            OperationNameRequired,
            SubscriptionsStream,
            *after,
            ObservedOperation,
        ],
    )


if __name__ == "__main__":
    print(build_schema().as_str())
