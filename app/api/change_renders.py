"""One rendering of a live change for every subscription of the process that would render it
identically (issue 13's delivery cost: each subscription used to run its selection on its own).

A change's payload depends on the document, the variables its selection uses, the change (one
`live.Read` for every subscription of the process) and what the context gives the resolvers: the
viewer's access (the queue and ingest permissions and the grants: every visibility rule reads
only these) and the process's correlation settings. Those make the group's key; the viewer's
identity (id, name) is left out, so two viewers with the same grants share a rendering.

What a subscription is shown is checked before any of this, for it alone: the change's incident
must be visible to its viewer (on the row read right after the commit, as without sharing). The
group's rendering is the one its first subscription made when it delivered the change, with the
values its loaders read then: a subscription of the same group is shown it only while it is at
most SHARE_SECONDS old, so values never come from longer ago than that, and they are those a
viewer with exactly its access could read then.

That holds only for fields whose value nothing else decides. SHARED_FIELDS lists them, one by
one: a document selecting any other field (a new one, one that names "me") renders for each
subscription on its own, as do replayed changes and any rendering that ended with an error.
tests/test_live_updates.py fails when a field reachable from IncidentChange is in neither
SHARED_FIELDS nor PER_SUBSCRIPTION_FIELDS.

The group's bytes too (issue 13's delivery cost, again: strawberry's per-event pipeline and the
encoding were most of what a shared rendering still cost each subscription). A rendering that went
through the whole pipeline for its first subscription without errors is a SharedData, which
encodes itself once for the group. A later subscription of the group on a graphql-transport-ws
operation (DIRECT) then waits for it (`shared_data`) and sends those bytes under its own operation
id, with the extensions its own pipeline gave its last event, from its
resolver, and skips graphql-core's and strawberry's per-event work: what it skips is proven to
change nothing in such a payload (the execution itself, shared already; and the extensions'
per-result hooks, PROVEN_HOOKS, which a test holds to those). Anything else (a rendering older
than SHARE_SECONDS or with errors, an operation that has not sent an event yet, a viewer that
changed meanwhile; Server-Sent Events) takes the pipeline.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

from graphql import (
    SKIP,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    VariableNode,
    Visitor,
    visit,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app import metrics
from app.api.context import Context
from app.api.encoding import json_bytes
from app.api.errors import ErrorPolicy
from app.api.lean.execute import render_change
from app.api.lean.plan import FieldPlan, Unsupported, plan_change
from app.api.limits import CostLimiter
from app.domain import models
from app.domain.viewers import Viewer

log = logging.getLogger("app.live")


@dataclass(frozen=True)
class IncidentChangeRecord:
    """The event a subscription yields: one change as its viewer may see it."""

    incident: models.Incident
    entries: list[models.ActivityEntry]
    cursor: str
    renders: dict | None = None  # live changes: shared by the subscriptions of the process
    ahead: Ahead | None = None  # the subscription's, given the executor that renders this record


class SharedData(dict):
    """A group's rendering of a change: the data of its `next` payloads, one object for the
    group, which encodes it once for all of them."""

    __slots__ = ("_encoded",)

    def __init__(self, data: dict) -> None:
        super().__init__(data)
        self._encoded: str | None = None

    def encoded(self) -> str:
        if self._encoded is None:
            self._encoded = json_bytes(self).decode()
        return self._encoded


# Sends a group's rendering as a `next` message of the graphql-transport-ws operation whose task
# runs the subscription (True), or cannot yet (False: take the pipeline); set by the transport for
# that task (app/server.py). None: no such transport.
DIRECT: ContextVar[Callable[[SharedData], Awaitable[bool]] | None] = ContextVar("live_direct", default=None)


class Ahead:
    """What a subscription renders ahead with (render_ahead): the per-event executor graphql-core
    built for the last change the subscription rendered through the pipeline, as
    `map_source_to_response_event` builds one per event; LiveExecutor sets it. None before the
    subscription's first change."""

    __slots__ = ("executor",)

    def __init__(self) -> None:
        self.executor: StrawberryGraphQLCoreExecutionContext | None = None


# How many of a subscription's pending changes a subscription renders ahead (render_ahead).
RENDER_AHEAD = 16

# Incident.matchedEvidence says why a search found the incident; a change's incident comes from
# no search, so it is always empty there, whoever subscribes.
SHARED_FIELDS = frozenset(
    f"{type_name}.{field}"
    for type_name, fields in {
        "IncidentChange": "cursor entries incident",
        "Incident": "activityLog alertCount alerts assignedTo classification createdAt determination id "
        "lastActivityAt matchedEvidence moves name number redirectIncident severity status updatedAt viewerCanUpdate",
        "ActivityLogEntry": "actor alert comment createdAt id incident kind message move newAssignee "
        "newClassification newDetermination newStatus oldAssignee oldClassification oldDetermination oldStatus "
        "otherIncident",
        "Alert": "category detectedAt entities externalId history id incident number scope severity status title "
        "viewerCanLink",
        "AlertPlacement": "at incident move",
        "Entity": "kind value",
        "Move": "actor alertCount comment createdAt id items kind number reasons revertedBy reverts sources target "
        "viewerCanRevert",
        "MoveItem": "alert from to",
        "Node": "id",
        "PageInfo": "endCursor hasNextPage hasPreviousPage startCursor",
        **{
            f"{node}{kind}": names
            for node in ("ActivityLogEntry", "Alert", "Move", "MoveItem")
            for kind, names in (("Connection", "edges pageInfo totalCount"), ("Edge", "cursor node"))
        },
    }.items()
    for field in fields.split()
)
# Fields reachable from IncidentChange whose value depends on more than the viewer's access.
PER_SUBSCRIPTION_FIELDS: frozenset[str] = frozenset()

RENDERED = metrics.LIVE_RENDERS.labels("rendered")
SHARED = metrics.LIVE_RENDERS.labels("shared")
SENT = metrics.LIVE_RENDERS.labels("sent")
LEAN_RENDERED = metrics.LIVE_LEAN_RENDERS

# How long a subscription waits for its group's rendering before it renders on its own.
FOLLOW_SECONDS = 5.0
# How old a rendering may be (since it began) to be shown to another subscription: one that lags
# further behind its group renders the change itself, with values read at its own delivery.
SHARE_SECONDS = 1.0


def access_key(viewer: Viewer) -> tuple:
    """What the visibility rules read of a viewer: equal keys, equal values in every shared field."""
    return (viewer.can_view_incidents, viewer.can_ingest, tuple(sorted(viewer.grants.items())))


class _Selection(Visitor):
    def __init__(self, type_info: TypeInfo, root_type: GraphQLObjectType | None) -> None:
        super().__init__()
        self.type_info = type_info
        self.root_type = root_type
        self.shareable = True
        self.variables: set[str] = set()

    def enter_field(self, node: FieldNode, *_args) -> None:
        parent = self.type_info.get_parent_type()
        if node.name.value == "__typename":
            return
        if parent is self.root_type:
            # The field whose events are IncidentChangeRecords; another subscription field is undecided.
            if node.name.value != "incidentChanges":
                self.shareable = False
            return
        if parent is None or f"{parent.name}.{node.name.value}" not in SHARED_FIELDS:
            self.shareable = False

    def enter_argument(self, _node, *_args) -> Any:
        # The root field's arguments choose which changes arrive, not how they render (a
        # directive's arguments, @include on the root field too, do decide it).
        at_root = self.type_info.get_parent_type() is self.root_type and self.type_info.get_directive() is None
        return SKIP if at_root else None

    def enter_variable_definition(self, _node, *_args) -> Any:
        return SKIP  # declared is not read: a variable counts where the selection uses it

    def enter_variable(self, node: VariableNode, *_args) -> None:
        self.variables.add(node.name.value)


_MAX_PER_OPERATION = 1000


def _per_operation(cache: dict, operation: OperationDefinitionNode, make: Callable[[], Any]) -> Any:
    """make()'s value for this operation, made once while the operation lives (keyed by identity:
    graphql-core's parsed documents are cached and reused), at most _MAX_PER_OPERATION kept."""
    found = cache.get(id(operation))
    if found is not None and found[0] is operation:
        return found[1]
    value = make()
    if len(cache) >= _MAX_PER_OPERATION:
        cache.clear()
    cache[id(operation)] = (operation, value)
    return value


_verdicts: dict[int, tuple[OperationDefinitionNode, tuple[str, ...] | None]] = {}


def _shared_variables(executor: StrawberryGraphQLCoreExecutionContext) -> tuple[str, ...] | None:
    """The variables the subscription's selection reads, or None when it selects a field not
    proven shareable."""
    return _verdict(executor.operation, executor.schema, executor.fragment_definitions)


def _verdict(
    operation: OperationDefinitionNode, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]
) -> tuple[str, ...] | None:
    return _per_operation(_verdicts, operation, lambda: _judge(operation, schema, fragments))


def _judge(
    operation: OperationDefinitionNode, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]
) -> tuple[str, ...] | None:
    root_type = schema.subscription_type
    type_info = TypeInfo(schema)
    selection = _Selection(type_info, root_type)
    if root_type is not None and operation.operation == OperationType.SUBSCRIPTION:
        visit(
            DocumentNode(definitions=(operation, *fragments.values())),
            TypeInfoVisitor(type_info, selection),
        )
    return tuple(sorted(selection.variables)) if selection.shareable and root_type is not None else None


# The extensions' hooks strawberry runs on every result of a stream, which a rendering sent as it is
# skips, and those proven to add nothing an operation's earlier events did not carry: ErrorPolicy's
# (MaskErrors') on_stream_result touches only errors, and a shared rendering has none;
# CostLimiter's get_results is the cost of the operation, the same for each of its events (the
# transport sends the extensions of the operation's last event through the pipeline).
PER_RESULT_HOOKS = ("on_stream_result", "get_results")
PROVEN_HOOKS = frozenset({(ErrorPolicy, "on_stream_result"), (CostLimiter, "get_results")})


def unproven_hooks(extensions: list) -> set[tuple[type, str]]:
    """The per-result hooks of these extensions (classes, instances or factories) not proven to
    change nothing in a shared payload: while there is one, every event takes the pipeline."""
    found = set()
    for extension in extensions:
        if not isinstance(extension, type | SchemaExtension):
            extension = extension()  # a factory
        kind = extension if isinstance(extension, type) else type(extension)
        for hook in PER_RESULT_HOOKS:
            if getattr(kind, hook) is not getattr(SchemaExtension, hook):
                found.add((kind, hook))
    return found - PROVEN_HOOKS


_change_plans: dict[int, tuple[OperationDefinitionNode, FieldPlan | None]] = {}


def _change_plan(
    operation: OperationDefinitionNode, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]
) -> FieldPlan | None:
    """The lean path's plan of a subscription's rendering (lean.plan.plan_change), or None when it
    does not cover the document: graphql-core renders it."""

    def make() -> FieldPlan | None:
        try:
            return plan_change(schema, operation, fragments)
        except Unsupported:
            return None
        except Exception:  # a planner's bug must not end subscriptions: graphql-core renders them
            log.exception("live: planning a subscription's rendering failed; graphql-core renders it")
            return None

    return _per_operation(_change_plans, operation, make)


_sends_as_rendered: dict[int, tuple[object, bool]] = {}


def sends_as_rendered(schema) -> bool:
    """Whether subscriptions of this strawberry schema may send a group's payload as it is."""
    found = _sends_as_rendered.get(id(schema))
    if found is None or found[0] is not schema:
        found = (schema, not unproven_hooks(schema.extensions))
        _sends_as_rendered[id(schema)] = found
    return found[1]


def group_key(
    operation: OperationDefinitionNode,
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
    context: object,
) -> tuple | None:
    """The key of the subscriptions that render a change alike: the document, the values of the
    variables its selection reads, the viewer's access, the correlation settings; None when the
    selection is not proven shareable (render for each subscription)."""
    if not isinstance(context, Context):
        return None
    names = _verdict(operation, schema, fragments)
    if names is None:
        return None
    try:
        values = json.dumps([variables.get(n) for n in names], sort_keys=True)
    except (TypeError, ValueError):
        return None
    return (
        id(operation),
        values,
        access_key(context.viewer),
        context.correlation,
    )


def rendered(renders: dict, key: tuple | None, operation: OperationDefinitionNode) -> bool:
    """Whether the group has a rendering of this change, of any age, finished or not."""
    found = renders.get(key)
    return found is not None and found[0] is operation


def rendering(renders: dict, key: tuple | None, operation: OperationDefinitionNode) -> bool:
    """Whether the group has a rendering of this change to wait for: one still running, whatever
    its age (render ahead starts no second one: a batch slower than SHARE_SECONDS would otherwise be
    rendered again at every change), or one finished that began at most SHARE_SECONDS ago."""
    if not rendered(renders, key, operation):
        return False
    _, done, began = renders[key]
    return not done.done() or time.monotonic() - began <= SHARE_SECONDS


_AHEAD: set[asyncio.Future] = set()  # renderings begun by render_ahead, held until they finish


def render_ahead(ahead: Ahead, record: IncidentChangeRecord, context: Context) -> bool:
    """Begin the group's rendering of a change (the subscription's own group: the record's key for
    `context`, which must be shareable), as graphql-core renders an event, with an executor built
    from the one of the operation's last event and this context (the viewer's, with loaders primed
    for this change); the subscriptions of the group, this one first, wait for it (shared_data).
    False when the operation has rendered no change yet.

    A subscription renders the changes pending behind the one it sends before sending any: all of
    them then render in the same turns of the event loop, and every subscription of a WebSocket
    sends them all in one turn, one write to the socket (app/ws.py), not one per change."""
    if ahead.executor is None:
        return False
    event = ahead.executor.build_per_event_executor(record)
    event.context_value = context
    result = event.execute_operation(False)  # LiveExecutor: the group's rendering, registered in record.renders
    if isawaitable(result):
        future = asyncio.ensure_future(result)
        _AHEAD.add(future)
        future.add_done_callback(_rendered_ahead)
    return True


def _rendered_ahead(future: asyncio.Future) -> None:
    _AHEAD.discard(future)
    if not future.cancelled() and (error := future.exception()) is not None:
        # The group's "no rendering" (done is None): each subscription then takes the pipeline,
        # which reports it to its client.
        log.warning("live: rendering a change ahead raised %r; its subscriptions take the pipeline", error)


async def shared_data(renders: dict, key: tuple | None, operation: OperationDefinitionNode) -> SharedData | None:
    """The group's rendering of this change by its first subscription (waited for while it runs),
    when that began at most SHARE_SECONDS ago and ended without errors; None: take the pipeline."""
    if key is None or not rendered(renders, key, operation):
        return None
    _, done, began = renders[key]
    if time.monotonic() - began > SHARE_SECONDS:
        return None  # its values would be older than SHARE_SECONDS: the pipeline renders it anew
    if not done.done():
        try:
            await asyncio.wait_for(asyncio.shield(done), FOLLOW_SECONDS)
        except TimeoutError:
            return None
    data = done.result()
    return data if isinstance(data, SharedData) else None


class LiveExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, which renders a live change once per group of subscriptions."""

    def execute_operation(self, serially: bool | None = None) -> Any:
        record = self.root_value
        if not isinstance(record, IncidentChangeRecord):
            return super().execute_operation(serially)
        if record.ahead is not None:
            # Without its change's record and context (the data of every group's rendering of it,
            # the loaders' values): each change ahead gets its own.
            template = self.build_per_event_executor(None)
            template.context_value = None
            record.ahead.executor = template
        if isinstance(self.context_value, Context):
            # The WebSocket's context is every subscription of the socket's: another one replaces its
            # viewer (a recheck) or its loaders (its own change) while this one awaits a read. This
            # rendering keeps the viewer and loaders it starts with, those its key says.
            self.context_value = copy.copy(self.context_value)
        key = self._group(record)
        if key is None:
            RENDERED.inc()
            return super().execute_operation(serially)
        renders = record.renders
        found = renders.get(key)
        now = time.monotonic()
        if found is not None and found[0] is self.operation and now - found[2] <= SHARE_SECONDS:
            return self._follow(found[1], serially)
        RENDERED.inc()
        done: asyncio.Future[SharedData | None] = asyncio.get_running_loop().create_future()
        renders[key] = (self.operation, done, now)
        try:
            result = self._render(serially)
        except BaseException:
            done.set_result(None)
            raise
        if isawaitable(result):
            return self._lead(result, done)
        return _settled(result, done)

    def _render(self, serially: bool | None) -> Any:
        """The group's rendering: by the lean path's plan of the selection (a fraction of the
        CPU), else, and whenever that raises, by graphql-core."""
        plan = _change_plan(self.operation, self.schema, self.fragment_definitions)
        if plan is None:
            return super().execute_operation(serially)
        return self._render_lean(plan, serially)

    async def _render_lean(self, plan: FieldPlan, serially: bool | None) -> ExecutionResult:
        try:
            data = await render_change(plan, self.root_value, self.variable_values, self.context_value)
        except Exception as exc:  # noqa: BLE001 - graphql-core renders it again and reports any error
            metrics.lean_fallback(exc)
            result = super().execute_operation(serially)
            return await result if isawaitable(result) else result
        LEAN_RENDERED.inc()
        return ExecutionResult(data=data)

    def _group(self, record: IncidentChangeRecord) -> tuple | None:
        """The key of the subscriptions that render this change alike, or None: render it alone."""
        if record.renders is None:
            return None
        return group_key(
            self.operation, self.schema, self.fragment_definitions, self.variable_values.coerced, self.context_value
        )

    async def _lead(self, pending: Awaitable, done: asyncio.Future[SharedData | None]) -> Any:
        try:
            result = await pending
        except BaseException:
            done.set_result(None)
            raise
        return _settled(result, done)

    async def _follow(self, done: asyncio.Future[SharedData | None], serially: bool | None) -> Any:
        if done.done():  # the usual case: the group's first subscription has rendered it
            data = done.result()
        else:
            try:
                data = await asyncio.wait_for(asyncio.shield(done), FOLLOW_SECONDS)
            except TimeoutError:
                data = None
        if data is not None:
            SHARED.inc()
            return ExecutionResult(data=data)
        RENDERED.inc()
        result = super().execute_operation(serially)  # the group's rendering failed: render on our own
        return await result if isawaitable(result) else result


def _settled(result: Any, done: asyncio.Future[SharedData | None]) -> Any:
    """The leader's result, its data made the group's SharedData when it can be shared."""
    if isinstance(result, ExecutionResult) and not result.errors and result.data is not None:
        shared = SharedData(result.data)
        done.set_result(shared)
        return ExecutionResult(data=shared, extensions=result.extensions)
    done.set_result(None)
    return result
