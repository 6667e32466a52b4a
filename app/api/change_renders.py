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
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from inspect import isawaitable
from typing import Any

from graphql import (
    SKIP,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLObjectType,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    VariableNode,
    Visitor,
    visit,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app import metrics
from app.api.context import Context
from app.api.subscriptions import IncidentChangeRecord
from app.domain.viewers import Viewer

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


_verdicts: dict[int, tuple[OperationDefinitionNode, tuple[str, ...] | None]] = {}
_MAX_VERDICTS = 1000


def _shared_variables(executor: StrawberryGraphQLCoreExecutionContext) -> tuple[str, ...] | None:
    """The variables the subscription's selection reads, or None when it selects a field not
    proven shareable."""
    operation = executor.operation
    found = _verdicts.get(id(operation))
    if found is not None and found[0] is operation:
        return found[1]
    root_type = executor.schema.subscription_type
    type_info = TypeInfo(executor.schema)
    selection = _Selection(type_info, root_type)
    if root_type is not None and operation.operation == OperationType.SUBSCRIPTION:
        visit(
            DocumentNode(definitions=(operation, *executor.fragment_definitions.values())),
            TypeInfoVisitor(type_info, selection),
        )
    verdict = tuple(sorted(selection.variables)) if selection.shareable and root_type is not None else None
    if len(_verdicts) >= _MAX_VERDICTS:
        _verdicts.clear()
    _verdicts[id(operation)] = (operation, verdict)
    return verdict


class LiveExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, which renders a live change once per group of subscriptions."""

    def execute_operation(self, serially: bool | None = None) -> Any:
        record = self.root_value
        if not isinstance(record, IncidentChangeRecord):
            return super().execute_operation(serially)
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
        done: asyncio.Future[dict | None] = asyncio.get_running_loop().create_future()
        renders[key] = (self.operation, done, now)
        try:
            result = super().execute_operation(serially)
        except BaseException:
            done.set_result(None)
            raise
        if isawaitable(result):
            return self._lead(result, done)
        done.set_result(_shareable(result))
        return result

    def _group(self, record: IncidentChangeRecord) -> tuple | None:
        """The key of the subscriptions that render this change alike, or None: render it alone."""
        context = self.context_value
        if record.renders is None or not isinstance(context, Context):
            return None
        names = _shared_variables(self)
        if names is None:
            return None
        try:
            values = json.dumps([self.variable_values.coerced.get(n) for n in names], sort_keys=True)
        except (TypeError, ValueError):
            return None
        return (
            id(self.operation),
            values,
            access_key(context.viewer),
            context.correlation_window,
            context.correlation_across_scopes,
        )

    async def _lead(self, pending: Awaitable, done: asyncio.Future[dict | None]) -> Any:
        try:
            result = await pending
        except BaseException:
            done.set_result(None)
            raise
        done.set_result(_shareable(result))
        return result

    async def _follow(self, done: asyncio.Future[dict | None], serially: bool | None) -> Any:
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


def _shareable(result: Any) -> dict | None:
    if isinstance(result, ExecutionResult) and not result.errors and result.data is not None:
        return result.data
    return None
