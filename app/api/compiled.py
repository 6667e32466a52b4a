"""A lean execution path for read queries: the same answers, a fraction of the CPU.

graphql-core resolves one field of one object at a time, through several layers of calls per
field; on a typeahead page of 10 incidents with 5 alerts each, or an incident with 50 alerts
and 50 log entries, that is most of the server's time. This path compiles a query document
once into a plan, and then runs the plan level by level over lists of records: one batch per
field (the same domain functions and loaders as the resolvers, so the same SQL statements),
scalars read straight off the records and serialized as the schema does.

It takes only what it fully understands: queries on incidents and alerts, their connections,
entities and activity logs, and the ingestAlerts mutation (whose 500 alert inputs cost strawberry
more to convert than the ingestion itself) and linkAlerts (16 analysts moving alerts spend more
of the server on graphql-core than on the move), with aliases, fragments and variables, no
directives and no introspection. Anything else, and anything that fails (a bad argument, a
permission, an unexpected error), goes the normal way, which then gives the proper errors: a
read can safely be run twice, and so can a mutation that failed (it changed nothing). A
mutation that committed is never run twice: when building its answer fails (a bad `first` in
the selection, no free connection), the normal path answers from its result
(Context.committed). The responses are the ones the normal path gives, byte for byte (a test
holds both paths to that).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field as dataclass_field
from functools import lru_cache
from typing import Any

import orjson
from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    ObjectFieldNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    parse,
)
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.validation import specified_rules
from strawberry.schema.schema import validate_document

from app.api import ids
from app.api.context import Context
from app.api.limits import Limits, selection_cost, validation_rules
from app.api.mutations import ingest_alerts, link_alerts
from app.domain import activity, alerts, incidents, ingestion, linking, models
from app.domain.errors import Problem, Refused
from app.domain.pagination import Page

Record = Any


class Unsupported(Exception):
    """The document uses something this path does not do: the normal path takes it."""


class Connection:
    __slots__ = ("page", "count")

    def __init__(self, page: Page, count: Callable[[], Awaitable[int]]) -> None:
        self.page = page
        self.count = count


class Edge:
    """The n-th item of a page (a typeahead page has 60: a plain slotted class)."""

    __slots__ = ("page", "n", "node")

    def __init__(self, page: Page, n: int, node: Record) -> None:
        self.page = page
        self.n = n
        self.node = node

    @property
    def cursor(self) -> str:
        return self.page.cursor(self.n)


@dataclass(frozen=True)
class LinkPayload:
    target: models.Incident | None
    sources: list[models.Incident]
    alerts: list[models.Alert]
    entries: list[models.ActivityEntry]
    errors: list[Problem]


@dataclass(frozen=True)
class IngestPayload:
    alerts: list[models.Alert]
    incidents: list[models.Incident]
    entries: list[models.ActivityEntry]
    errors: list[Problem]


# --- scalars, as the schema serializes them ---------------------------------------------------

# Scalars as Python expressions of the record `p` and the context `c`: each level's response
# objects are built by one generated comprehension (Level.build), the others call SCALARS.
SOURCES: dict[str, dict[str, str]] = {
    "Incident": {
        "id": "str(p.id)",
        "name": "p.name",
        "status": "p.status.upper()",  # every enum of the schema is named as its value in capitals
        "severity": "p.severity.upper()",
        "createdAt": "p.created_at.isoformat()",
        "lastActivityAt": "p.last_activity_at.isoformat()",
    },
    "Alert": {
        "id": "str(p.id)",
        "externalId": "p.external_id",
        "title": "p.title",
        "severity": "p.severity.upper()",
        "status": "p.status.upper()",
        "category": "p.category",
        "scope": "p.scope",
        "detectedAt": "p.detected_at.isoformat()",
        "viewerCanLink": "c.viewer.can_view_incidents and c.viewer.can_write(p.scope)",
    },
    "Entity": {
        "kind": "p.kind.upper()",
        "value": "p.value",
    },
    "ActivityLogEntry": {
        "id": "str(p.id)",
        "kind": "p.kind.upper()",
        "createdAt": "p.created_at.isoformat()",
        "actor": "p.actor",
        "comment": "p.comment",
    },
    "PageInfo": {
        "hasNextPage": "p.has_next",
        "endCursor": "p.end_cursor",
    },
}
SCALARS: dict[str, dict[str, Callable[[Record, Context], Any]]] = {
    type_name: {name: eval(f"lambda p, c: {source}") for name, source in fields.items()}  # noqa: S307 - our own table
    for type_name, fields in SOURCES.items()
}
SCALARS["ActivityLogEntry"]["message"] = lambda e, c: activity.message(e, c.viewer)
for _edge in ("IncidentEdge", "AlertEdge", "ActivityLogEntryEdge"):
    SCALARS[_edge] = {"cursor": lambda e, c: e.cursor}
SCALARS["LinkAlertsError"] = {
    "code": lambda p, c: p.code,
    "message": lambda p, c: p.message,
    "field": lambda p, c: p.field,
    "alertIds": lambda p, c: list(p.ids),
}
SCALARS["IngestAlertsError"] = {
    "code": lambda p, c: p.code,
    "message": lambda p, c: p.message,
    "field": lambda p, c: p.field,
    "externalIds": lambda p, c: list(p.ids),
}


# --- object fields: each takes the parents of one level at once -------------------------------
# A batch gets (parents, args, ctx) and returns one value per parent: a record, None, or a list.
# A batch of a scalar field (SCALAR_BATCHES) may return the list itself instead of an
# awaitable, when it needs no I/O.

async def _load_many(loader, keys: list) -> list:
    """loader.load_many, without a gather and a turn of the event loop when every key is
    already known (primed by the statement that listed the parents, or loaded before)."""
    futures = [loader.load(k) for k in keys]
    if all(f.done() for f in futures):
        return [f.result() for f in futures]
    return await asyncio.gather(*futures)


def _readable_alert_count(parents, args, ctx: Context):
    unknown = [i.id for i in parents if not incidents.reads_all_alerts(i, ctx.viewer)]
    if not unknown:  # the incidents' own counts are the viewer's
        return [i.alert_count for i in parents]

    async def counted():
        counts = dict(zip(unknown, await _load_many(ctx.loaders.readable_alert_count, unknown), strict=True))
        return [counts.get(i.id, i.alert_count) for i in parents]

    return counted()


async def _incident_alerts(parents, args, ctx: Context):
    first = 50 if args.get("first") is None else args["first"]
    after = args.get("after")
    if after is None:
        pages = await _load_many(ctx.loaders.first_alerts, [(i.id, first) for i in parents])
    else:
        pages = await asyncio.gather(*(
            alerts.list_alerts(conn=ctx.pool, viewer=ctx.viewer, flt=alerts.AlertFilter(incident_id=i.id),
                               first=first, after=after)
            for i in parents
        ))
    return [Connection(p, _count_of(i, ctx)) for i, p in zip(parents, pages, strict=True)]


def _count_of(incident: models.Incident, ctx: Context):
    async def count() -> int:
        counts = _readable_alert_count([incident], {}, ctx)
        return (counts if isinstance(counts, list) else await counts)[0]

    return count


async def _incident_log(parents, args, ctx: Context):
    first = 50 if args.get("first") is None else args["first"]
    after = args.get("after")
    if after is None:
        pages = await _load_many(ctx.loaders.first_entries, [(i.id, first) for i in parents])
    else:
        pages = await asyncio.gather(*(
            activity.entries_after(conn=ctx.pool, incident_id=i.id, first=first, after=after) for i in parents
        ))
    return [
        Connection(p, lambda i=i: activity.count_entries(conn=ctx.pool, incident_id=i.id))
        for i, p in zip(parents, pages, strict=True)
    ]


def _by_id(loader: str, attribute: str, required: bool):
    async def batch(parents, args, ctx: Context):
        keys = [getattr(p, attribute) for p in parents]
        wanted = [k for k in keys if k is not None]
        found = dict(zip(wanted, await _load_many(getattr(ctx.loaders, loader), wanted), strict=True)) if wanted else {}
        values = [found.get(k) if k is not None else None for k in keys]
        if required and any(v is None for v in values):
            raise LookupError(f"{loader} not visible")  # the normal path reports it
        return values

    return batch


async def _entities(parents, args, ctx: Context):
    return await _load_many(ctx.loaders.entities, [a.id for a in parents])


async def _edges(parents, args, ctx):
    return [[Edge(p.page, n, item) for n, item in enumerate(p.page.items)] for p in parents]


async def _page_info(parents, args, ctx):
    return [p.page for p in parents]


async def _total_count(parents, args, ctx):
    return list(await asyncio.gather(*(p.count() for p in parents)))


async def _node(parents, args, ctx):
    return [e.node for e in parents]


def _payload(attribute: str):
    async def batch(parents, args, ctx):
        return [getattr(p, attribute) for p in parents]

    return batch


CONNECTION_FIELDS = {"edges": _edges, "pageInfo": _page_info, "totalCount": _total_count}
OBJECTS: dict[str, dict[str, Callable]] = {
    "Incident": {
        "alertCount": _readable_alert_count,
        "alerts": _incident_alerts,
        "activityLog": _incident_log,
        "redirectIncident": _by_id("incident", "redirect_incident_id", required=False),
    },
    "Alert": {
        "incident": _by_id("incident", "incident_id", required=True),
        "entities": _entities,
    },
    "ActivityLogEntry": {
        "incident": _by_id("incident", "incident_id", required=True),
        "alert": _by_id("alert", "alert_id", required=False),
        "otherIncident": _by_id("incident", "other_incident_id", required=False),
    },
    "IncidentConnection": CONNECTION_FIELDS,
    "AlertConnection": CONNECTION_FIELDS,
    "ActivityLogEntryConnection": CONNECTION_FIELDS,
    "LinkAlertsPayload": {
        "targetIncident": _payload("target"), "sourceIncidents": _payload("sources"), "alerts": _payload("alerts"),
        "logEntries": _payload("entries"), "errors": _payload("errors"),
    },
    "IngestAlertsPayload": {
        "alerts": _payload("alerts"), "incidents": _payload("incidents"),
        "logEntries": _payload("entries"), "errors": _payload("errors"),
    },
    "IncidentEdge": {"node": _node},
    "AlertEdge": {"node": _node},
    "ActivityLogEntryEdge": {"node": _node},
}
# Fields whose value is computed by a batch but is a scalar.
SCALAR_BATCHES = {("Incident", "alertCount"), ("IncidentConnection", "totalCount"),
                  ("AlertConnection", "totalCount"), ("ActivityLogEntryConnection", "totalCount")}


def _values(items):
    return None if items is None else [i.value if hasattr(i, "value") else i for i in items]


async def _root_incidents(args, ctx: Context, field: FieldPlan, variables):
    flt_in = args.get("filter") or {}
    first = 20 if args.get("first") is None else args["first"]
    flt = incidents.IncidentFilter(
        search=_get(flt_in, "search"), statuses=_values(_get(flt_in, "status")),
        severities=_values(_get(flt_in, "severity")),
    )
    alerts_first = _first_alerts_asked(field, variables)
    if alerts_first is None:
        page = await incidents.list_incidents(
            conn=ctx.pool, viewer=ctx.viewer, flt=flt, first=first, after=args.get("after")
        )
    else:  # the typeahead's shape: each incident's first alerts come in the same statement
        page, alert_pages = await incidents.list_incidents_with_alerts(
            conn=ctx.pool, viewer=ctx.viewer, flt=flt, first=first, after=args.get("after"), alerts_first=alerts_first
        )
        ctx.loaders.first_alerts.prime_many({(i, alerts_first): p for i, p in alert_pages.items()})
    return Connection(page, lambda: incidents.count_incidents(conn=ctx.pool, viewer=ctx.viewer, flt=flt))


def _first_alerts_asked(field: FieldPlan, variables) -> int | None:
    """The `first` of an incident's `alerts` (without `after`) that a queue query selects."""
    for edges in (f for f in field.sub if f.name == "edges"):
        for node in (f for f in edges.sub if f.name == "node"):
            for alerts_field in (f for f in node.sub if f.name == "alerts"):
                args = alerts_field.arguments(variables)
                if args.get("after") is None:
                    return 50 if args.get("first") is None else args["first"]
    return None


async def _root_alerts(args, ctx: Context, field, variables):
    flt_in = args.get("filter") or {}
    first = 50 if args.get("first") is None else args["first"]
    incident_id = _get(flt_in, "incident_id")
    flt = alerts.AlertFilter(
        search=_get(flt_in, "search"),
        incident_id=ids.number(incident_id, "filter.incidentId") if incident_id is not None else None,
        statuses=_values(_get(flt_in, "status")), severities=_values(_get(flt_in, "severity")),
    )
    page = await alerts.list_alerts(conn=ctx.pool, viewer=ctx.viewer, flt=flt, first=first, after=args.get("after"))
    return Connection(page, lambda: alerts.count_alerts(conn=ctx.pool, viewer=ctx.viewer, flt=flt))


async def _root_incident(args, ctx: Context, field, variables):
    return await ctx.loaders.incident.load(ids.number(args["id"], "id"))


async def _root_alert(args, ctx: Context, field, variables):
    return await ctx.loaders.alert.load(ids.number(args["id"], "id"))


def _get(value, name: str):
    """An input object's field, as graphql-core hands it over (a dict or strawberry's input)."""
    if isinstance(value, dict):
        camel = name.split("_")[0] + "".join(w.title() for w in name.split("_")[1:])
        return value.get(camel, value.get(name))
    return getattr(value, name, None)


async def _root_link(args, ctx: Context, field, variables):
    """As the linkAlerts resolver (app/api/mutations/link_alerts.py) does it."""
    target = linking.Target(
        existing_incident_id=_get(args["target"], "existing_incident_id"), create_new=_get(args["target"], "create_new")
    )
    try:
        result = await link_alerts.link(ctx, [str(i) for i in args["alertIds"]], target, args["comment"], args.get("idempotencyKey"))
    except Refused as refused:
        return LinkPayload(None, [], [], [], refused.problems)
    ctx.committed[field.key] = result
    return LinkPayload(result.target, result.sources, result.alerts, result.entries, [])


async def _root_ingest(args, ctx: Context, field, variables):
    """As the ingestAlerts resolver (app/api/mutations/ingest_alerts.py) does it."""
    batch = [
        ingestion.AlertIn(
            external_id=a["externalId"], title=a["title"], severity=a["severity"].value, category=a["category"],
            scope=a["scope"] if a.get("scope") is not None else "default",
            detected_at=_utc(a.get("detectedAt")),
            entities=[(e["kind"].value, e["value"]) for e in a["entities"]],
        )
        for a in args["alerts"]
    ]
    try:
        result = await ingest_alerts.ingest(ctx, batch)
    except Refused as refused:
        return IngestPayload([], [], [], refused.problems)
    ctx.committed[field.key] = result
    return IngestPayload(result.alerts, result.incidents, result.entries, [])


def _utc(value):
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


ROOTS = {"incidents": _root_incidents, "alerts": _root_alerts, "incident": _root_incident, "alert": _root_alert}
MUTATIONS = {"ingestAlerts": _root_ingest, "linkAlerts": _root_link}


# --- the plan ---------------------------------------------------------------------------------

@dataclass
class FieldPlan:
    key: str
    name: str
    node: FieldNode
    definition: Any
    scalar: Callable | None = None
    batch: Callable | None = None
    many: bool = False          # the value is a list of records
    sub: Level | None = None
    source: str | None = None   # the scalar as an expression of the record p (SOURCES)
    _fixed: dict | None = None  # the arguments, when no variable is among them

    def arguments(self, variables) -> dict:
        if self._fixed is not None:
            return self._fixed
        if not self.node.arguments:
            return {}
        values = get_argument_values(self.definition, self.node, variables)
        if not _has_variables(self.node.arguments):
            self._fixed = values
        return values


class Level(list):
    """The fields selected on one type, and `build`: a comprehension generated for them that
    makes the response objects from the parent records and the batch fields' values."""

    build: Callable

    def __init__(self, plans: list[FieldPlan]) -> None:
        super().__init__(plans)
        namespace: dict[str, Any] = {}
        values, batches = [], []
        for n, plan in enumerate(plans):
            if plan.source is not None:
                values.append(plan.source)
            elif plan.scalar is not None:
                namespace[f"f{n}"] = plan.scalar
                values.append(f"f{n}(p, c)")
            else:
                batches.append(f"b{n}")
                values.append(f"v{n}")
        items = ", ".join(f"{plan.key!r}: {value}" for plan, value in zip(plans, values, strict=True))
        loop = f"for p, {', '.join(v.replace('b', 'v', 1) for v in batches)} in zip(parents, {', '.join(batches)}, strict=True)" if batches else "for p in parents"
        source = f"def build(parents, c, {''.join(b + ', ' for b in batches)}):\n    return [{{{items}}} {loop}]\n"
        exec(source, namespace)  # noqa: S102 - generated from the schema's names and SOURCES
        self.build = namespace["build"]


def _has_variables(node) -> bool:
    if isinstance(node, VariableNode):
        return True
    if isinstance(node, (list, tuple)):
        return any(_has_variables(n) for n in node)
    if isinstance(node, ArgumentNode | ObjectFieldNode):
        return _has_variables(node.value)
    if isinstance(node, ListValueNode):
        return _has_variables(node.values)
    if isinstance(node, ObjectValueNode):
        return _has_variables(node.fields)
    return False


@dataclass
class Plan:
    document: DocumentNode
    operation: OperationDefinitionNode
    roots: list[FieldPlan]
    fragments: dict[str, FragmentDefinitionNode]
    costs: dict[tuple, int] = dataclass_field(default_factory=dict)

    def cost(self, schema: GraphQLSchema, variables: dict) -> int:
        """As limits.query_cost counts it, from the variables already coerced.

        The cost reads variables only as `first` (a number) and as mutation input lists (their
        length), so it is kept by the shape of the variables: numbers, nulls and list lengths.
        """
        shape = tuple(_shape(variables.get(d.variable.name.value)) for d in self.operation.variable_definitions or ())
        cost = self.costs.get(shape)
        if cost is None:
            root_type = schema.get_root_type(self.operation.operation)
            cost = selection_cost(self.operation.selection_set, root_type, self.fragments, variables, schema)
            if len(self.costs) >= 64:
                self.costs.clear()
            self.costs[shape] = cost
        return cost


def _shape(value) -> object:
    if value is None or isinstance(value, int | float | bool):
        return value
    if isinstance(value, list):
        return ("list", len(value))
    return type(value).__name__


def _collect(selection_set: SelectionSetNode, type_name: str, fragments) -> dict[str, list[FieldNode]]:
    fields: dict[str, list[FieldNode]] = {}
    for selection in selection_set.selections:
        if selection.directives:
            raise Unsupported("directives")
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias else selection.name.value
            fields.setdefault(key, []).append(selection)
        elif isinstance(selection, InlineFragmentNode):
            if selection.type_condition and selection.type_condition.name.value != type_name:
                raise Unsupported("fragment on another type")
            for key, nodes in _collect(selection.selection_set, type_name, fragments).items():
                fields.setdefault(key, []).extend(nodes)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments[selection.name.value]
            if fragment.type_condition.name.value != type_name:
                raise Unsupported("fragment on another type")
            for key, nodes in _collect(fragment.selection_set, type_name, fragments).items():
                fields.setdefault(key, []).extend(nodes)
    return fields


def _merged(nodes: list[FieldNode]) -> SelectionSetNode | None:
    if nodes[0].selection_set is None:
        return None
    if len(nodes) == 1:
        return nodes[0].selection_set
    return SelectionSetNode(selections=tuple(s for n in nodes for s in n.selection_set.selections))


def _plan_fields(
    schema: GraphQLSchema, selection_set, type_name: str, fragments, root: dict | None = None
) -> Level:
    from graphql import get_named_type, is_list_type, is_non_null_type

    gql_type = schema.get_type(type_name)
    plans = []
    for key, nodes in _collect(selection_set, type_name, fragments).items():
        name = nodes[0].name.value
        if name == "__typename":
            plans.append(FieldPlan(key, name, nodes[0], None, scalar=lambda r, c, t=type_name: t, source=repr(type_name)))
            continue
        if name.startswith("__"):
            raise Unsupported("introspection")
        definition = gql_type.fields[name]
        plan = FieldPlan(key, name, nodes[0], definition)
        field_type = definition.type.of_type if is_non_null_type(definition.type) else definition.type
        plan.many = is_list_type(field_type)
        target = get_named_type(definition.type).name
        if root is not None:
            if name not in root:
                raise Unsupported(f"root field {name}")
            plan.batch = root[name]
        elif name in SCALARS.get(type_name, {}):
            plan.scalar = SCALARS[type_name][name]
            plan.source = SOURCES.get(type_name, {}).get(name)
            plans.append(plan)
            continue
        elif name in OBJECTS.get(type_name, {}):
            plan.batch = OBJECTS[type_name][name]
        else:
            raise Unsupported(f"{type_name}.{name}")
        if (type_name, name) in SCALAR_BATCHES:
            plans.append(plan)
            continue
        merged = _merged(nodes)
        if merged is None:
            raise Unsupported("object without selection")
        plan.sub = _plan_fields(schema, merged, target, fragments)
        plans.append(plan)
    return Level(plans)


def compile_document(schema: GraphQLSchema, query: str, operation_name: str | None, limits: Limits) -> Plan:
    document = parse(query, max_tokens=limits.max_tokens)
    rules = (*specified_rules, *validation_rules(limits.max_depth, limits.max_aliases, limits.introspection))
    if validate_document(schema, document, rules):
        raise Unsupported("invalid document")
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation not in (OperationType.QUERY, OperationType.MUTATION):
        raise Unsupported("not one query or mutation")
    operation = operations[0]
    if operation.directives:
        raise Unsupported("directives")
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    if operation.operation == OperationType.QUERY:
        roots = _plan_fields(schema, operation.selection_set, "Query", fragments, root=ROOTS)
    else:
        roots = _plan_fields(schema, operation.selection_set, "Mutation", fragments, root=MUTATIONS)
        if len(roots) != 1:
            raise Unsupported("one mutation at a time")
    return Plan(document, operation, roots, fragments)


# --- running a plan ---------------------------------------------------------------------------

async def _resolve_level(plans: Level, parents: list, variables, ctx: Context) -> list[dict]:
    """The response objects for a list of parent records of one type, one batch per field."""
    if not parents:
        return []
    columns: list[list] = []
    pending: list[tuple[int, Awaitable]] = []
    for plan in plans:
        if plan.scalar is not None:
            continue
        if plan.sub is None:  # a scalar computed by a batch: perhaps at once
            values = plan.batch(parents, plan.arguments(variables), ctx)
            if not isinstance(values, list):
                pending.append((len(columns), values))
        else:
            values = None
            pending.append((len(columns), _resolve_field(plan, parents, variables, ctx)))
        columns.append(values)
    if len(pending) == 1:  # the usual case: no task to create
        columns[pending[0][0]] = await pending[0][1]
    elif pending:
        results = await asyncio.gather(*(awaitable for _, awaitable in pending))
        for (n, _), values in zip(pending, results, strict=True):
            columns[n] = values
    return plans.build(parents, ctx, *columns)


async def _resolve_field(plan: FieldPlan, parents: list, variables, ctx: Context) -> list:
    values = await plan.batch(parents, plan.arguments(variables), ctx)
    if plan.many:
        flat = [child for children in values for child in children]
        done = iter(await _resolve_level(plan.sub, flat, variables, ctx))
        return [[next(done) for _ in children] for children in values]
    present = [v for v in values if v is not None]
    done = iter(await _resolve_level(plan.sub, present, variables, ctx))
    return [next(done) if v is not None else None for v in values]


async def _run_roots(plan: Plan, variables, ctx: Context) -> dict:
    async def root(field: FieldPlan):
        value = await field.batch(field.arguments(variables), ctx, field, variables)
        if value is None:
            return None
        return (await _resolve_level(field.sub, [value], variables, ctx))[0]

    if len(plan.roots) == 1:
        return {plan.roots[0].key: await root(plan.roots[0])}
    values = await asyncio.gather(*(root(f) for f in plan.roots))
    return dict(zip((f.key for f in plan.roots), values, strict=True))


class CompiledQueries:
    """Plans by query text, and the lean execution of the requests they fit."""

    def __init__(self, schema: GraphQLSchema, limits: Limits, maxsize: int = 256) -> None:
        self.schema = schema
        self.limits = limits

        @lru_cache(maxsize=maxsize)
        def plan(query: str, operation_name: str | None) -> Plan | None:
            try:
                return compile_document(schema, query, operation_name, limits)
            except (Unsupported, GraphQLError, KeyError):
                return None

        self.plan = plan

    async def execute(self, body: bytes, ctx: Context) -> bytes | None:
        """The response body for this request, or None: let the normal path answer it."""
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(request, dict) or not request.keys() <= {"query", "variables", "operationName"}:
            return None
        query, variables, operation_name = request.get("query"), request.get("variables") or {}, request.get("operationName")
        if not isinstance(query, str) or not isinstance(variables, dict) or not (
            operation_name is None or isinstance(operation_name, str)
        ):
            return None
        plan = self.plan(query, operation_name)
        if plan is None:
            return None
        coerced = get_variable_values(self.schema, plan.operation.variable_definitions or (), variables)
        if isinstance(coerced, list):
            return None
        cost = plan.cost(self.schema, coerced.coerced)
        if cost > self.limits.max_cost:
            return None
        try:
            data = await _run_roots(plan, coerced, ctx)
        except Exception:  # noqa: BLE001 - errors are the normal path's to report
            return None
        return orjson.dumps({"data": data, "extensions": {"cost": {"requested": cost, "maximum": self.limits.max_cost}}})
