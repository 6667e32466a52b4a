"""Running a plan: level by level over lists of records, one batch per field."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from functools import lru_cache

import orjson
from graphql import GraphQLError, GraphQLSchema, is_non_null_type
from graphql.execution.values import get_variable_values

from app import metrics
from app.api import fields
from app.api.context import Context
from app.api.errors import infrastructure_code, translate
from app.api.lean.plan import FieldPlan, Level, Plan, Unsupported, compile_document
from app.api.limits import Limits
from app.domain.errors import InvalidArgument, NotAllowed
from app.domain.pagination import window

log = logging.getLogger(__name__)

# Requests the lean path started and then left to the normal path because something raised,
# by the exception's type: each is a read (a mutation is never left), logged with its request id.
FALLBACKS: Counter[str] = Counter()


async def _resolve_level(plans: Level, parents: list, variables, ctx: Context) -> list[dict]:
    """The response objects for a list of parent records of one type, one batch per field."""
    if not parents:
        return []
    columns: list[list] = []
    pending: list[tuple[int, object]] = []
    for plan in plans:
        if plan.batch is None:
            continue
        if plan.sub is None:  # a leaf computed by a batch: perhaps at once
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
    return plans.build(parents, *columns)


async def _resolve_field(plan: FieldPlan, parents: list, variables, ctx: Context) -> list:
    values = plan.batch(parents, plan.arguments(variables), ctx)
    if not isinstance(values, list):
        values = await values
    if plan.many:
        flat = [child for children in values for child in children]
        done = iter(await _resolve_level(plan.sub, flat, variables, ctx))
        return [[next(done) for _ in children] for children in values]
    present = [v for v in values if v is not None]
    done = iter(await _resolve_level(plan.sub, present, variables, ctx))
    return [next(done) if v is not None else None for v in values]


async def render_change(plan: FieldPlan, record, variables, ctx: Context) -> dict:
    """The data of one live change (plan.plan_change), its record the root field's value: what
    graphql-core's execution of the subscription's selection gives, or an exception (then the
    caller renders it the normal way)."""
    return {plan.key: (await _resolve_level(plan.sub, [record], variables, ctx))[0]}


def _first_alerts_asked(field: FieldPlan, variables) -> int | None:
    """The `first` of an incident's `alerts` (a first page: no `after`, nor `last` or `before`)
    that a queue query selects."""
    for edges in (f for f in field.sub if f.name == "edges"):
        for node in (f for f in edges.sub if f.name == "node"):
            for alerts_field in (f for f in node.sub if f.name == "alerts"):
                args = alerts_field.arguments(variables)
                if all(args.get(name) is None for name in ("after", "last", "before")):
                    return fields.ALERTS_PAGE if args.get("first") is None else args["first"]
    return None


async def _root_value(field: FieldPlan, variables, ctx: Context):
    args = field.arguments(variables)
    if field.batch is fields.incidents_queue:  # the typeahead's shape: its alerts in one statement
        values = await fields.incidents_queue([None], args, ctx, alerts_first=_first_alerts_asked(field, variables))
    else:
        values = field.batch([None], args, ctx)
        if not isinstance(values, list):
            values = await values
    return values[0]


async def _render(field: FieldPlan, value, variables, ctx: Context):
    if value is None:
        return None
    if field.sub is None:
        return (await _resolve_level(Level([field]), [None], variables, ctx))[0][field.key]
    if field.many:
        return await _resolve_level(field.sub, value, variables, ctx)
    return (await _resolve_level(field.sub, [value], variables, ctx))[0]


class _LeaveIt(Exception):
    """A read raised something the normal path should report where it belongs."""

    def __init__(self, error: Exception) -> None:
        super().__init__(repr(error))
        self.error = error


async def _run_queries(plan: Plan, variables, ctx: Context) -> tuple[dict | None, list[dict]]:
    """The data and the errors. The database being down, busy or slow is reported here, as
    graphql-core would report it at the root field (running it again would double the wait);
    any other exception raises _LeaveIt."""
    errors: list[dict] = []
    null_data = False

    async def root(field: FieldPlan):
        nonlocal null_data
        try:
            return await _render(field, await _root_value(field, variables, ctx), variables, ctx)
        except Exception as exc:
            if infrastructure_code(exc) is None:
                raise _LeaveIt(exc) from exc
            errors.append(_formatted(field, *translate(exc, ctx.request_id)))
            null_data = null_data or is_non_null_type(field.definition.type)
            return None

    if len(plan.roots) == 1:
        data = {plan.roots[0].key: await root(plan.roots[0])}
    else:
        values = await asyncio.gather(*(root(f) for f in plan.roots))
        data = dict(zip((f.key for f in plan.roots), values, strict=True))
    return (None if null_data else data), errors


def _arguments_hold(level: Level | None, variables) -> bool:
    """Whether the selection's own arguments would be accepted (only a page without a cursor,
    `first` or `last` in range and not both), checked before a mutation starts: afterwards its
    answer must be built."""
    for plan in level or ():
        args = plan.arguments(variables)
        if args.get("after") is not None or args.get("before") is not None:
            return False
        if args.get("first") is not None or args.get("last") is not None:
            try:
                window(first=args.get("first"), last=args.get("last"))
            except InvalidArgument:
                return False
        if not _arguments_hold(plan.sub, variables):
            return False
    return True


REQUEST_KEYS = frozenset({"query", "variables", "operationName", "extensions"})
# Request extensions that change nothing of the answer, on either path: Apollo Client 4 names
# itself in every request (clientLibrary). A persisted document's id was resolved before either
# path ran (app/api/persisted.py). Any other extension goes the normal way.
IGNORED_EXTENSIONS = frozenset({"clientLibrary"})


class LeanPath:
    """Plans by query text, and the lean execution of the requests they fit."""

    def __init__(self, schema: GraphQLSchema, limits: Limits, maxsize: int = 256) -> None:
        self.schema = schema
        self.limits = limits

        @lru_cache(maxsize=maxsize)
        def plan(query: str, operation_name: str | None) -> Plan | None:
            try:
                return compile_document(schema, query, operation_name, limits)
            except (Unsupported, GraphQLError):
                return None

        self.plan = plan

    async def execute(self, body: bytes, ctx: Context) -> bytes | None:
        """The response body for this request, or None: the normal path answers it.

        None is returned only before anything has run, or after a read raised. A mutation, once
        started, is answered here whatever happens: its outcome is the answer.
        """
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _declined("request")
        if not isinstance(request, dict) or not request.keys() <= REQUEST_KEYS:
            return _declined("request")
        extensions = request.get("extensions")
        if extensions is not None and not (isinstance(extensions, dict) and extensions.keys() <= IGNORED_EXTENSIONS):
            return _declined("request")
        query, variables, operation_name = request.get("query"), request.get("variables"), request.get("operationName")
        if variables is None:
            variables = {}  # anything else but an object is graphql-core's to refuse
        if (
            not isinstance(query, str)
            or not isinstance(variables, dict)
            or not (operation_name is None or isinstance(operation_name, str))
        ):
            return _declined("request")
        plan = self.plan(query, operation_name)
        if plan is None:
            return _declined("document")
        ctx.operation = plan.operation
        coerced = get_variable_values(self.schema, plan.operation.variable_definitions or (), variables)
        if isinstance(coerced, list):
            return _declined("variables")
        variables = coerced  # graphql-core's coerced values, as get_argument_values takes them
        cost = plan.cost(self.schema, coerced.coerced)
        if cost > self.limits.max_cost:
            return _declined("cost")
        extensions = {"cost": {"requested": cost, "maximum": self.limits.max_cost}}
        name = plan.operation.name
        ctx.observation.operation(name.value if name else None, plan.operation.operation.value)
        if plan.is_mutation:
            return await self._mutate(plan, variables, ctx, extensions)
        try:
            data, errors = await _run_queries(plan, variables, ctx)
        except _LeaveIt as left:  # a read: the normal path runs it again and reports the error
            FALLBACKS[type(left.error).__name__] += 1
            metrics.lean_fallback(left.error)
            # A client's mistake (a bad cursor, a missing permission) is routine; anything else is
            # worth a look.
            level = logging.INFO if isinstance(left.error, (InvalidArgument, NotAllowed)) else logging.WARNING
            log.log(level, "request %s: lean path left a read to the normal path: %r", ctx.request_id, left.error)
            return None
        metrics.LEAN_HIT.inc()
        if errors:
            ctx.observation.codes.extend(e["extensions"]["code"] for e in errors)
            return orjson.dumps({"data": data, "errors": errors, "extensions": extensions})
        return orjson.dumps({"data": data, "extensions": extensions})

    async def _mutate(self, plan: Plan, variables, ctx: Context, extensions: dict) -> bytes | None:
        [field] = plan.roots
        if not _arguments_hold(field.sub, variables):
            # Nothing has started: the normal path runs it and reports the arguments.
            return _declined("arguments")
        metrics.LEAN_HIT.inc()
        try:
            value = await _root_value(field, variables, ctx)
        except Exception as exc:  # noqa: BLE001 - reported as the normal path reports it
            return _error(field, extensions, ctx, *translate(exc, ctx.request_id))
        try:
            data = await _render(field, value, variables, ctx)
        except Exception as exc:  # noqa: BLE001 - only its answer failed
            applied = field.key if not value.errors else None
            return _error(field, extensions, ctx, *translate(exc, ctx.request_id, applied))
        return orjson.dumps({"data": {field.key: data}, "extensions": extensions})


def _formatted(field: FieldPlan, message: str, error_extensions: dict) -> dict:
    return GraphQLError(message, nodes=[field.node], path=[field.key], extensions=error_extensions).formatted


def _declined(reason: str) -> None:
    metrics.lean_declined(reason)
    return None


def _error(field: FieldPlan, extensions: dict, ctx: Context, message: str, error_extensions: dict) -> bytes:
    """The answer to a mutation that raised: its field is non-null, so data is null."""
    ctx.observation.codes.append(error_extensions["code"])
    return orjson.dumps(
        {"data": None, "errors": [_formatted(field, message, error_extensions)], "extensions": extensions}
    )
