"""Every computed field of the schema, written once, over a batch of parents.

Both execution paths use this table. graphql-core resolves a field of one object at a time: its
resolver (app/api/types.py, app/api/schema.py, app/api/mutations/) calls `resolve`, which runs the
field's batch over that one parent. The lean path (app/api/lean/) runs the same batch over every
parent of a level at once. The objects of the schema are the domain's records (models.Incident,
models.Alert, ...) and the records below; a field without a resolver reads the record's
attribute of the same Python name on both paths. So a rule lives in one place: here, or in the
domain.

A batch takes (parents, args, ctx): the parent records, the field's arguments as graphql-core
coerces them (GraphQL names, input objects as dicts, enums as the domain's members, schema
defaults applied), and the request's context. It returns one value per parent: a list, or an
awaitable of one when it needs I/O. Root fields get [None] as their parents.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from graphql.execution.values import VariableValues, get_argument_values

from app import metrics, observe
from app.api import background, ids
from app.api.context import Context
from app.config import settings
from app.db import OutcomeUnknown, in_one_statement, in_transaction
from app.domain import (
    activity,
    alerts,
    evidence,
    idempotency,
    incidents,
    ingestion,
    linking,
    merging,
    models,
    moves,
    pagination,
    reverting,
    triage,
)
from app.domain import ids as domain_ids
from app.domain.errors import InvalidArgument, Problem, Refused
from app.domain.pagination import Page

# Page sizes when `first` is absent or null: the schema's argument defaults are these too.
QUEUE_PAGE = 20
ALERTS_PAGE = 50
LOG_PAGE = 50
MOVES_PAGE = 20
ITEMS_PAGE = 50
# Each connection's page size when neither `first` nor `last` is given (the cost counts it too).
PAGE_SIZES = {
    ("Query", "incidents"): QUEUE_PAGE,
    ("Query", "alerts"): ALERTS_PAGE,
    ("Incident", "alerts"): ALERTS_PAGE,
    ("Incident", "activityLog"): LOG_PAGE,
    ("Incident", "moves"): MOVES_PAGE,
    ("Move", "items"): ITEMS_PAGE,
}

Batch = Callable[[list, dict, Context], "list | Awaitable[list]"]


# --- the records of the API's own types ------------------------------------------------------


class Connection:
    """A page of records and, when asked for, the count of the whole list."""

    __slots__ = ("count", "page")

    def __init__(self, page: Page, count: Callable[[], Awaitable[int]]) -> None:
        self.page = page
        self.count = count

    @property
    def edges(self) -> list[Edge]:
        return [Edge(self.page, n, item) for n, item in enumerate(self.page.items)]

    @property
    def page_info(self) -> Page:
        return self.page


class Edge:
    """The n-th item of a page (a typeahead page has 60: a plain slotted class)."""

    __slots__ = ("n", "node", "page")

    def __init__(self, page: Page, n: int, node: Any) -> None:
        self.page = page
        self.n = n
        self.node = node

    @property
    def cursor(self) -> str:
        return self.page.cursor(self.n)


@dataclass(frozen=True)
class LinkAlertsPayload:
    target_incident: models.Incident | None
    source_incidents: list[models.Incident]
    alerts: list[models.Alert]
    log_entries: list[models.ActivityEntry]
    errors: list[MutationError]
    move_id: int | None = None


@dataclass(frozen=True)
class MergeIncidentsPayload:
    target: models.Incident | None
    sources: list[models.Incident]
    log_entries: list[models.ActivityEntry]
    errors: list[MutationError]
    move_id: int | None = None


@dataclass(frozen=True)
class RevertMovePayload:
    incidents: list[models.Incident]
    alerts: list[models.Alert]
    log_entries: list[models.ActivityEntry]
    errors: list[MutationError]
    move_id: int | None = None
    reverted_id: int | None = None


@dataclass(frozen=True)
class UpdateIncidentPayload:
    incident: models.Incident | None
    log_entries: list[models.ActivityEntry]
    errors: list[MutationError]


@dataclass(frozen=True)
class AddCommentPayload:
    incident: models.Incident | None
    log_entry: models.ActivityEntry | None
    errors: list[MutationError]


@dataclass(frozen=True)
class IngestAlertsPayload:
    alerts: list[models.Alert]
    incidents: list[models.Incident]
    log_entries: list[models.ActivityEntry]
    errors: list[MutationError]


@dataclass(frozen=True)
class MutationError:
    """A Problem as the mutations' error types show it: alertIds or externalIds are its ids."""

    code: str
    message: str
    field: str | None
    alert_ids: list[str]
    incident_ids: list[str] = ()
    move_ids: list[str] = ()

    @property
    def external_ids(self) -> list[str]:
        return self.alert_ids

    @classmethod
    def of(cls, problem: Problem) -> MutationError:
        return cls(
            problem.code, problem.message, problem.field, list(problem.ids), problem.incident_ids, problem.move_ids
        )

    @classmethod
    def of_merge(cls, problem: Problem) -> MutationError:
        """A merge's problems name incidents: its `ids` are incident ids."""
        return cls(problem.code, problem.message, problem.field, [], list(problem.ids), problem.move_ids)


# --- fields of the records --------------------------------------------------------------------


async def _load_many(loader, keys: list) -> list:
    """loader.load_many, without a gather and a turn of the event loop when every key is
    already known (primed by the statement that listed the parents, or loaded before)."""
    futures = [loader.load(k) for k in keys]
    if all(f.done() for f in futures):
        return [f.result() for f in futures]
    # The futures are the loader's, shared with every other field that asked for the same keys:
    # when graphql-core cancels this field (a sibling's error nulled the parent), the shield keeps
    # the cancellation from reaching them, and the other fields from getting CancelledError.
    return await asyncio.shield(asyncio.gather(*futures))


def _paging(args: dict, default: int) -> dict:
    """The page the arguments ask for, as the domain's lists take it (pagination.window): forward
    (first, after) or backward (last, before), `default` items when neither size is given."""
    paging = {name: args.get(name) for name in ("first", "after", "last", "before")}
    if paging["first"] is None and paging["last"] is None:
        if paging["before"] is None:
            paging["first"] = default
        elif paging["after"] is None:  # (with both cursors, the domain refuses the mix)
            paging["last"] = default
    return paging


def _as_seen(attribute: str) -> Batch:
    """A field of incidents whose value depends on which of their alerts the viewer may read
    (incidents.seen_by: no value depends on an alert they may not read). At once when the viewer
    reads everything or every alert of these incidents; else the readable alerts' summaries are
    loaded for the others."""

    def batch(parents: list[models.Incident], args, ctx: Context):
        viewer = ctx.viewer
        if viewer.reads_everything:
            return [getattr(i, attribute) for i in parents]
        partial = [i.id for i in parents if not incidents.reads_all_alerts(i, viewer)]
        if not partial:
            return [getattr(incidents.seen_by(i, viewer, None), attribute) for i in parents]

        async def summarised():
            found = dict(zip(partial, await _load_many(ctx.loaders.readable_summary, partial), strict=True))
            return [getattr(incidents.seen_by(i, viewer, found.get(i.id)), attribute) for i in parents]

        return summarised()

    return batch


def name(parents: list[models.Incident], args, ctx: Context):
    if ctx.viewer.reads_everything:  # the typeahead's usual viewer: no rule to apply per incident
        return [i.name for i in parents]
    return [incidents.name_seen_by(i, ctx.viewer) for i in parents]


severity = _as_seen("severity")
last_activity_at = _as_seen("last_activity_at")
alert_count = _as_seen("alert_count")


def _count_of(incident: models.Incident, ctx: Context):
    async def count() -> int:
        counts = alert_count([incident], {}, ctx)
        return (counts if isinstance(counts, list) else await counts)[0]

    return count


async def incident_alerts(parents: list[models.Incident], args, ctx: Context):
    paging = _paging(args, ALERTS_PAGE)
    pagination.window(**paging)  # before any wait: which sibling's error wins stays the same
    if paging["after"] is None and paging["before"] is None:
        loader, size = _end_of_lists(paging, ctx.loaders.first_alerts, ctx.loaders.last_alerts)
        pages = await _load_many(loader, [(i.id, size) for i in parents])
    else:
        pages = await _each(
            parents,
            lambda i: alerts.list_alerts(
                conn=ctx.pool, viewer=ctx.viewer, flt=alerts.AlertFilter(incident_id=i.id), **paging
            ),
        )
    return [Connection(p, _count_of(i, ctx)) for i, p in zip(parents, pages, strict=True)]


async def activity_log(parents: list[models.Incident], args, ctx: Context):
    paging = _paging(args, LOG_PAGE)
    pagination.window(**paging)
    if paging["after"] is None and paging["before"] is None:
        loader, size = _end_of_lists(paging, ctx.loaders.first_entries, ctx.loaders.last_entries)
        pages = await _load_many(loader, [(i.id, size) for i in parents])
    else:
        pages = await _each(parents, lambda i: activity.entries_page(conn=ctx.pool, incident_id=i.id, **paging))
    return [
        Connection(p, lambda i=i: activity.count_entries(conn=ctx.pool, incident_id=i.id))
        for i, p in zip(parents, pages, strict=True)
    ]


def _end_of_lists(paging: dict, first_loader, last_loader) -> tuple[Any, int]:
    """The loader of a page without a cursor, at the start of each parent's list or at its end,
    and the page size to load."""
    if paging["first"] is not None:
        return first_loader, paging["first"]
    return last_loader, paging["last"]


async def _each(parents: list, page: Callable[[Any], Awaitable]) -> list:
    """One page per parent; the only one at once (a malformed cursor is refused before any wait)."""
    if len(parents) == 1:
        return [await page(parents[0])]
    return await asyncio.gather(*(page(p) for p in parents))


def _by_id(loader: str, attribute: str, required: bool) -> Batch:
    async def batch(parents, args, ctx: Context):
        keys = [getattr(p, attribute) for p in parents]
        wanted = [k for k in keys if k is not None]
        found = dict(zip(wanted, await _load_many(getattr(ctx.loaders, loader), wanted), strict=True)) if wanted else {}
        values = [found.get(k) if k is not None else None for k in keys]
        if required and any(v is None for v in values):
            # Cannot happen: an incident that holds a readable alert, or whose log is shown, is visible.
            raise LookupError(f"{loader} of {type(parents[0]).__name__} not visible")
        return values

    return batch


async def entities(parents: list[models.Alert], args, ctx: Context):
    return await _load_many(ctx.loaders.entities, [a.id for a in parents])


def matched_evidence(parents: list[models.Incident], args, ctx: Context):
    """What a search matched, on the incidents it found by their evidence (models.MatchedIncident)."""
    return [list(getattr(i, "matched_evidence", ())) for i in parents]


def viewer_can_update(parents: list[models.Incident], args, ctx: Context):
    return [triage.may_change(i, ctx.viewer) for i in parents]


def viewer_can_link(parents: list[models.Alert], args, ctx: Context):
    return [ctx.viewer.can_move(a.scope) for a in parents]


async def _incidents_of(entries: list[models.ActivityEntry], ctx: Context) -> dict[int, models.Incident]:
    """The visible incidents among the entries' own and other incidents (loaded once a request:
    a log is read through its incident, a move's answer primes them)."""
    wanted = list({n for e in entries for n in (e.incident_id, e.other_incident_id) if n is not None})
    return {i.id: i for i in await _load_many(ctx.loaders.incident, wanted) if i is not None}


async def _incidents_and_moves(
    entries: list[models.ActivityEntry], ctx: Context
) -> tuple[dict[int, models.Incident], dict[int, models.Move]]:
    """_incidents_of, and the moves of the summary entries among these (whose words depend on the
    move's alerts); without a gather (two tasks, a turn of the event loop) when there is none, as
    for the entries of a move of alerts, rendered for every live change."""
    wanted = list({e.move_id for e in entries if e.kind in models.SUMMARY_KINDS and e.move_id is not None})
    if not wanted:
        return await _incidents_of(entries, ctx), {}

    async def summaries() -> dict[int, models.Move]:
        return {m.id: m for m in await _load_many(ctx.loaders.move, wanted) if m is not None}

    return await asyncio.gather(_incidents_of(entries, ctx), summaries())


async def message(parents: list[models.ActivityEntry], args, ctx: Context):
    """The sentence, naming the other incident only when the viewer may see it."""
    seen, found = await _incidents_and_moves(parents, ctx)
    return [
        activity.message(e, ctx.viewer, seen[e.incident_id], e.other_incident_id in seen, found.get(e.move_id))
        for e in parents
    ]


async def comment(parents: list[models.ActivityEntry], args, ctx: Context):
    seen, found = await _incidents_and_moves(parents, ctx)
    return [activity.comment(e, ctx.viewer, seen[e.incident_id], found.get(e.move_id)) for e in parents]


# --- moves ------------------------------------------------------------------------------------


def move_comment(parents: list[models.Move], args, ctx: Context):
    """The mover's words, to a viewer who may read every alert the move moved (as a log entry's)."""
    return [m.comment if moves.reads_all_alerts(m, ctx.viewer) else None for m in parents]


def move_alert_count(parents: list[models.Move], args, ctx: Context):
    partial = [m.id for m in parents if not moves.reads_all_alerts(m, ctx.viewer)]
    if not partial:
        return [m.alert_count for m in parents]

    async def counted():
        found = await moves.readable_counts(conn=ctx.pool, viewer=ctx.viewer, move_ids=partial)
        return [found.get(m.id, m.alert_count) for m in parents]

    return counted()


async def move_items(parents: list[models.Move], args, ctx: Context):
    paging = _paging(args, ITEMS_PAGE)
    pagination.window(**paging)
    pages = await _each(parents, lambda m: moves.items_page(conn=ctx.pool, viewer=ctx.viewer, move_id=m.id, **paging))
    return [
        Connection(p, lambda m=m: moves.count_items(conn=ctx.pool, viewer=ctx.viewer, move_id=m.id))
        for m, p in zip(parents, pages, strict=True)
    ]


async def move_sources(parents: list[models.Move], args, ctx: Context):
    """The incidents alerts left that the viewer may see, by number."""
    wanted = list({n for m in parents for n in m.source_incident_ids})
    found = {i.id: i for i in await _load_many(ctx.loaders.incident, wanted) if i is not None}
    return [[found[n] for n in sorted(m.source_incident_ids) if n in found] for m in parents]


async def viewer_can_revert(parents: list[models.Move], args, ctx: Context):
    """Not reverted, every alert the viewer's to move, none moved since, and no incident it would
    send alerts to or merge again changed since (revertMove checks again under its locks)."""
    viewer = ctx.viewer
    candidates = [
        m.id
        for m in parents
        if viewer.can_view_incidents
        and m.reverted_by_move_id is None
        and all(viewer.can_write(s) for s in m.alert_scopes)
    ]
    later = await moves.moved_since(conn=ctx.pool, move_ids=candidates) if candidates else {}
    unmoved = [m for m in parents if m.id in later and not later[m.id]]
    refused = await reverting.refused_since(conn=ctx.pool, candidates=unmoved)
    return [m.id in later and not later[m.id] and m.id not in refused for m in parents]


async def history(parents: list[models.Alert], args, ctx: Context):
    """Where each alert has been, oldest first: placements in incidents the viewer cannot see keep
    their move and time, with a null incident."""
    ctx.viewer.require_queue()
    found = await moves.histories(conn=ctx.pool, alert_ids=[a.id for a in parents])
    return [found[a.id] for a in parents]


async def incident_moves(parents: list[models.Incident], args, ctx: Context):
    paging = _paging(args, MOVES_PAGE)
    pagination.window(**paging)
    ctx.viewer.require_queue()
    pages = await _each(parents, lambda i: moves.incident_moves_page(conn=ctx.pool, incident_id=i.id, **paging))
    for page in pages:
        ctx.loaders.move.prime_many({m.id: m for m in page.items})
    return [
        Connection(p, lambda i=i: moves.count_incident_moves(conn=ctx.pool, incident_id=i.id))
        for i, p in zip(parents, pages, strict=True)
    ]


async def total_count(parents: list[Connection], args, ctx: Context):
    return list(await asyncio.gather(*(p.count() for p in parents)))


# --- root fields ------------------------------------------------------------------------------


def _values(items) -> list[str] | None:
    return None if items is None else [str(i) for i in items]


def incident_filter(flt_in: dict | None) -> incidents.IncidentFilter:
    flt_in = flt_in or {}
    return incidents.IncidentFilter(
        search=flt_in.get("search"),
        statuses=_values(flt_in.get("status")),
        severities=_values(flt_in.get("severity")),
        assignees=flt_in.get("assignedTo"),
        unassigned=flt_in.get("unassigned"),
        classifications=_values(flt_in.get("classification")),
        updated_since=flt_in.get("updatedSince"),
        entity=_entity(flt_in.get("entity")),
    )


def _entity(entity_in: dict | None) -> evidence.EntityMatch | None:
    if entity_in is None:
        return None
    return evidence.entity_match(str(entity_in["kind"]), entity_in["value"])


def alert_filter(flt_in: dict | None) -> alerts.AlertFilter:
    flt_in = flt_in or {}
    incident_id = flt_in.get("incidentId")
    return alerts.AlertFilter(
        search=flt_in.get("search"),
        incident_id=ids.of_kind(incident_id, domain_ids.INCIDENT, "filter.incidentId")
        if incident_id is not None
        else None,
        statuses=_values(flt_in.get("status")),
        severities=_values(flt_in.get("severity")),
        entity=_entity(flt_in.get("entity")),
    )


async def incidents_queue(parents, args, ctx: Context, alerts_first: int | None = None):
    """The queue. alerts_first: the lean path knows the query reads each incident's first
    alerts, which then come in the same statement (the typeahead's shape)."""
    flt = incident_filter(args.get("filter"))
    paging = _paging(args, QUEUE_PAGE)
    sort = str(args.get("sort") or models.IncidentSort.LAST_ACTIVITY)
    if alerts_first is None:
        page = await incidents.list_incidents(conn=ctx.pool, viewer=ctx.viewer, flt=flt, sort=sort, **paging)
    else:
        page, alert_pages = await incidents.list_incidents_with_alerts(
            conn=ctx.pool, viewer=ctx.viewer, flt=flt, alerts_first=alerts_first, sort=sort, **paging
        )
        ctx.loaders.first_alerts.prime_many({(i, alerts_first): p for i, p in alert_pages.items()})
    return [Connection(page, lambda: incidents.count_incidents(conn=ctx.pool, viewer=ctx.viewer, flt=flt))]


async def alerts_list(parents, args, ctx: Context):
    flt = alert_filter(args.get("filter"))
    page = await alerts.list_alerts(conn=ctx.pool, viewer=ctx.viewer, flt=flt, **_paging(args, ALERTS_PAGE))
    return [Connection(page, lambda: alerts.count_alerts(conn=ctx.pool, viewer=ctx.viewer, flt=flt))]


def _one_of(args: dict, field_id: str = "id", field_number: str = "number") -> None:
    if (args.get(field_id) is None) == (args.get(field_number) is None):
        raise InvalidArgument(field_id, f"Give exactly one of {field_id} or {field_number}.")


async def incident(parents, args, ctx: Context):
    """An incident by id or number. Opening incidents by number is browsing the queue: walking
    1..N needs its permission. Following a readable alert to its incident does not (Alert.incident)."""
    _one_of(args)
    ctx.viewer.require_queue()
    number = args["number"] if args.get("id") is None else ids.of_kind(args["id"], domain_ids.INCIDENT, "id")
    return await _load_many(ctx.loaders.incident, [number])


async def move(parents, args, ctx: Context):
    """A move by id or number, to a viewer with the queue permission who may see one incident it touched."""
    _one_of(args)
    ctx.viewer.require_queue()
    number = args["number"] if args.get("id") is None else ids.of_kind(args["id"], domain_ids.MOVE, "id")
    return await _load_many(ctx.loaders.move, [number])


async def alert(parents, args, ctx: Context):
    _one_of(args)
    number = args["number"] if args.get("id") is None else ids.of_kind(args["id"], domain_ids.ALERT, "id")
    return await _load_many(ctx.loaders.alert, [number])


async def _nodes_of(keys: list[tuple[str, int]], ctx: Context) -> list:
    """The objects these typed ids name, None for each the viewer may not see, under the rules of
    the fields that reach them: an alert when readable; an incident, and a log entry (which shows
    its incident), when visible, to a viewer with the queue permission (as `incident(id:)`)."""
    if any(kind != domain_ids.ALERT for kind, _ in keys):
        ctx.viewer.require_queue()
    numbers = {kind: [n for k, n in keys if k == kind] for kind in domain_ids.KINDS}
    found: dict[tuple[str, int], Any] = {}
    if numbers[domain_ids.ALERT]:
        alerts_found = await _load_many(ctx.loaders.alert, numbers[domain_ids.ALERT])
        found.update({(domain_ids.ALERT, n): a for n, a in zip(numbers[domain_ids.ALERT], alerts_found, strict=True)})
    entries = (
        await activity.entries_by_id(conn=ctx.pool, ids=numbers[domain_ids.LOG_ENTRY])
        if numbers[domain_ids.LOG_ENTRY]
        else []
    )
    wanted = list(dict.fromkeys([*numbers[domain_ids.INCIDENT], *(e.incident_id for e in entries)]))
    visible = {n: i for n, i in zip(wanted, await _load_many(ctx.loaders.incident, wanted), strict=True) if i}
    found.update({(domain_ids.INCIDENT, n): i for n, i in visible.items()})
    found.update({(domain_ids.LOG_ENTRY, e.id): e for e in entries if e.incident_id in visible})
    if numbers[domain_ids.MOVE]:
        found_moves = await _load_many(ctx.loaders.move, numbers[domain_ids.MOVE])
        found.update({(domain_ids.MOVE, n): m for n, m in zip(numbers[domain_ids.MOVE], found_moves, strict=True)})
    return [found.get(k) for k in keys]


async def node(parents, args, ctx: Context):
    return await _nodes_of([ids.typed(args["id"], "id")], ctx)


async def nodes(parents, args, ctx: Context):
    given = args["ids"]
    if len(given) > (most := settings().max_page_size):
        raise InvalidArgument("ids", f"At most {most} ids at once; got {len(given)}.")
    return [await _nodes_of([ids.typed(i, "ids") for i in given], ctx)]


def viewer(parents, args, ctx: Context):
    return [ctx.viewer]


@dataclass(frozen=True)
class Grant:
    scope: str
    access: str


def grants(parents, args, ctx: Context):
    return [[Grant(scope, access) for scope, access in sorted(v.grants.items())] for v in parents]


# --- mutations --------------------------------------------------------------------------------

BULK_MOVE_ENTRIES = 100


async def link_alerts(parents, args, ctx: Context):
    """Move alerts to an existing or a new incident in one transaction, once per idempotency
    key when one is given; then, for a bulk move, the trigram indexes' pending entries are
    merged in the background."""
    target_in = args["target"]
    target = linking.Target(
        existing_incident_id=target_in.get("existingIncidentId"), create_new=target_in.get("createNew")
    )
    alert_ids, comment, key = [str(i) for i in args["alertIds"]], args["comment"], args.get("idempotencyKey")

    def plan(conn):
        return linking.plan_link(conn=conn, viewer=ctx.viewer, alert_ids=alert_ids, target=target, comment=comment)

    async def work(conn):
        return await idempotency.link_alerts_once(
            conn=conn,
            viewer=ctx.viewer,
            key=key,
            alert_ids=alert_ids,
            target=target,
            comment=comment,
        )

    try:
        # Without a key the move is one statement (linking.apply_link) and commits as it ends;
        # with one, the key is claimed and its result recorded in the move's transaction.
        if key is None:
            result = await in_one_statement(ctx.pool, plan, linking.apply_link)
        else:
            result = await in_transaction(ctx.pool, work)
    except Refused as refused:
        observe.payload_errors(ctx.observation, "linkAlerts", [str(p.code) for p in refused.problems])
        return [LinkAlertsPayload(None, [], [], [], [MutationError.of(p) for p in refused.problems])]
    except OutcomeUnknown as unknown:
        unknown.retryable = key is not None  # a replay with the key answers the first result
        raise
    # A bulk move (50 alerts or more, two log entries each) leaves as many incidents' new index
    # entries pending as an ingestion does; a small one's are left to the next merge, which
    # after every small move would cost the 16 analysts' moves more than it saves them.
    metrics.ALERTS_MOVED.inc(sum(e.kind == models.ActivityKind.ALERT_LINKED for e in result.entries))
    if len(result.entries) >= BULK_MOVE_ENTRIES:
        background.merge_pending_index_entries(ctx)
    # The incidents of the answer are the viewer's to see: their log entries' messages name them
    # without another statement.
    ctx.loaders.incident.prime_many({i.id: i for i in (result.target, *result.sources) if i is not None})
    return [LinkAlertsPayload(result.target, result.sources, result.alerts, result.entries, [], result.move_id)]


async def merge_incidents(parents, args, ctx: Context):
    """Merge incidents into one in one transaction, once per idempotency key when one is given."""
    incident_ids = [str(i) for i in args["incidentIds"]]
    target = args.get("targetIncidentId")
    target = None if target is None else str(target)
    comment, key = args["comment"], args.get("idempotencyKey")
    reasons = [str(r) for r in args.get("reasons") or []]

    async def work(conn):
        merge = lambda: merging.merge_incidents(  # noqa: E731
            conn=conn,
            viewer=ctx.viewer,
            incident_ids=incident_ids,
            target_incident_id=target,
            comment=comment,
            reasons=reasons,
        )
        if key is None:
            return await merge()
        request = {"incidentIds": incident_ids, "target": target, "comment": comment.strip(), "reasons": reasons}
        return await idempotency.once(
            conn=conn,
            viewer=ctx.viewer,
            key=key,
            operation="mergeIncidents",
            request=request,
            run=merge,
            replay=idempotency.replay_merge,
        )

    try:
        result = await in_transaction(ctx.pool, work)
    except Refused as refused:
        observe.payload_errors(ctx.observation, "mergeIncidents", [str(p.code) for p in refused.problems])
        return [MergeIncidentsPayload(None, [], [], [MutationError.of_merge(p) for p in refused.problems])]
    except OutcomeUnknown as unknown:
        unknown.retryable = key is not None
        raise
    ctx.loaders.incident.prime_many({i.id: i for i in (result.target, *result.sources) if i is not None})
    return [MergeIncidentsPayload(result.target, result.sources, result.entries, [], result.move_id)]


async def revert_move(parents, args, ctx: Context):
    """Put a move's alerts back in one transaction, once per idempotency key when one is given."""
    move_id, comment, key = str(args["moveId"]), args["comment"], args.get("idempotencyKey")

    async def work(conn):
        revert = lambda: reverting.revert_move(  # noqa: E731
            conn=conn, viewer=ctx.viewer, move_id=move_id, comment=comment
        )
        if key is None:
            return await revert()
        request = {"moveId": move_id.strip(), "comment": comment.strip()}
        return await idempotency.once(
            conn=conn,
            viewer=ctx.viewer,
            key=key,
            operation="revertMove",
            request=request,
            run=revert,
            replay=idempotency.replay_revert,
        )

    try:
        result = await in_transaction(ctx.pool, work)
    except Refused as refused:
        observe.payload_errors(ctx.observation, "revertMove", [str(p.code) for p in refused.problems])
        return [RevertMovePayload([], [], [], [MutationError.of(p) for p in refused.problems])]
    except OutcomeUnknown as unknown:
        unknown.retryable = key is not None
        raise
    ctx.loaders.incident.prime_many({i.id: i for i in result.incidents})
    return [RevertMovePayload(result.incidents, result.alerts, result.entries, [], result.move_id, result.reverted_id)]


async def _triage(ctx: Context, operation: str, field: str, key: str | None, request: dict, run) -> triage.TriageResult:
    """A triage change in one transaction, once per idempotency key when one is given."""

    async def work(conn):
        if key is None:
            return await run(conn)
        return await idempotency.once(
            conn=conn,
            viewer=ctx.viewer,
            key=key,
            operation=operation,
            request=request,
            run=lambda: run(conn),
            replay=idempotency.replay_triage(field),
        )

    try:
        result = await in_transaction(ctx.pool, work)
    except OutcomeUnknown as unknown:
        unknown.retryable = key is not None
        raise
    ctx.loaders.incident.prime_many({result.incident.id: result.incident})
    return result


def _given(args: dict, name: str):
    """An argument as given: triage.UNSET when absent (null is a value: nobody, UNKNOWN)."""
    if name not in args:
        return triage.UNSET
    value = args[name]
    return None if value is None else str(value)


async def update_incident(parents, args, ctx: Context):
    """Change an incident's status, assignee and classification."""
    changes = triage.Changes(
        status=_given(args, "status"),
        assigned_to=_given(args, "assignedTo"),
        classification=_given(args, "classification"),
        determination=_given(args, "determination"),
    )
    incident_id, comment, key = str(args["id"]), args.get("comment"), args.get("idempotencyKey")
    request = {
        "id": incident_id.strip(),
        **{k: v for k, v in vars(changes).items() if v is not triage.UNSET},
        "comment": comment.strip() if comment is not None else None,
    }

    def run(conn):
        return triage.update_incident(
            conn=conn, viewer=ctx.viewer, incident_id=incident_id, changes=changes, comment=comment
        )

    try:
        result = await _triage(ctx, "updateIncident", "id", key, request, run)
    except Refused as refused:
        observe.payload_errors(ctx.observation, "updateIncident", [str(p.code) for p in refused.problems])
        return [UpdateIncidentPayload(None, [], [MutationError.of(p) for p in refused.problems])]
    return [UpdateIncidentPayload(result.incident, result.entries, [])]


async def add_comment(parents, args, ctx: Context):
    """A note in an incident's log."""
    incident_id, text, key = str(args["incidentId"]), args["text"], args.get("idempotencyKey")

    def run(conn):
        return triage.add_comment(conn=conn, viewer=ctx.viewer, incident_id=incident_id, text=text)

    try:
        result = await _triage(
            ctx, "addComment", "incidentId", key, {"id": incident_id.strip(), "text": text.strip()}, run
        )
    except Refused as refused:
        observe.payload_errors(ctx.observation, "addComment", [str(p.code) for p in refused.problems])
        return [AddCommentPayload(None, None, [MutationError.of(p) for p in refused.problems])]
    return [AddCommentPayload(result.incident, result.entries[0], [])]


def _utc(value):
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


async def ingest_alerts(parents, args, ctx: Context):
    """Store alerts in one transaction, each correlated into an incident; then have the trigram
    indexes' pending entries merged in the background."""
    batch = [
        ingestion.AlertIn(
            external_id=a["externalId"],
            title=a["title"],
            severity=str(a["severity"]),
            category=a["category"],
            scope=a["scope"] if a.get("scope") is not None else "default",
            detected_at=_utc(a.get("detectedAt")),
            entities=[(str(e["kind"]), e["value"]) for e in a["entities"]],
        )
        for a in args["alerts"]
    ]
    try:
        result = await in_transaction(
            ctx.pool,
            lambda conn: ingestion.ingest_alerts(
                conn=conn,
                viewer=ctx.viewer,
                batch=batch,
                correlation=ctx.correlation,
            ),
        )
    except Refused as refused:
        observe.payload_errors(ctx.observation, "ingestAlerts", [str(p.code) for p in refused.problems])
        return [IngestAlertsPayload([], [], [], [MutationError.of(p) for p in refused.problems])]
    except OutcomeUnknown as unknown:
        unknown.retryable = True  # a replay of the same externalIds returns the stored alerts
        raise
    metrics.ALERTS_INGESTED.inc(result.stored)
    background.merge_pending_index_entries(ctx)
    ctx.loaders.incident.prime_many({i.id: i for i in result.incidents})  # visible: their entries' messages
    return [IngestAlertsPayload(result.alerts, result.incidents, result.entries, [])]


# --- the table ----------------------------------------------------------------------------------

# Every field with a resolver, by (type, field). A field of the schema that is neither here nor a
# plain attribute of its record is known to neither path: the coverage test fails on it.
BATCHES: dict[tuple[str, str], Batch] = {
    ("Query", "viewer"): viewer,
    ("Viewer", "grants"): grants,
    ("Query", "incident"): incident,
    ("Query", "incidents"): incidents_queue,
    ("Query", "alert"): alert,
    ("Query", "move"): move,
    ("Query", "node"): node,
    ("Query", "nodes"): nodes,
    ("Query", "alerts"): alerts_list,
    ("Mutation", "linkAlerts"): link_alerts,
    ("Mutation", "ingestAlerts"): ingest_alerts,
    ("Mutation", "mergeIncidents"): merge_incidents,
    ("Mutation", "revertMove"): revert_move,
    ("Mutation", "updateIncident"): update_incident,
    ("Mutation", "addComment"): add_comment,
    ("Incident", "viewerCanUpdate"): viewer_can_update,
    ("Incident", "matchedEvidence"): matched_evidence,
    ("LinkAlertsPayload", "move"): _by_id("move", "move_id", required=False),
    ("MergeIncidentsPayload", "move"): _by_id("move", "move_id", required=False),
    ("RevertMovePayload", "move"): _by_id("move", "move_id", required=False),
    ("RevertMovePayload", "reverted"): _by_id("move", "reverted_id", required=False),
    ("Incident", "alertCount"): alert_count,
    ("Incident", "name"): name,
    ("Incident", "severity"): severity,
    ("Incident", "lastActivityAt"): last_activity_at,
    ("Incident", "alerts"): incident_alerts,
    ("Incident", "activityLog"): activity_log,
    ("Incident", "redirectIncident"): _by_id("incident", "redirect_incident_id", required=False),
    ("Incident", "moves"): incident_moves,
    ("Alert", "history"): history,
    ("Alert", "incident"): _by_id("incident", "incident_id", required=True),
    ("Alert", "entities"): entities,
    ("Alert", "viewerCanLink"): viewer_can_link,
    ("ActivityLogEntry", "message"): message,
    ("ActivityLogEntry", "comment"): comment,
    ("ActivityLogEntry", "incident"): _by_id("incident", "incident_id", required=True),
    ("ActivityLogEntry", "alert"): _by_id("alert", "alert_id", required=False),
    ("ActivityLogEntry", "otherIncident"): _by_id("incident", "other_incident_id", required=False),
    ("ActivityLogEntry", "move"): _by_id("move", "move_id", required=False),
    ("Move", "comment"): move_comment,
    ("Move", "alertCount"): move_alert_count,
    ("Move", "items"): move_items,
    ("Move", "target"): _by_id("incident", "target_incident_id", required=False),
    ("Move", "sources"): move_sources,
    ("Move", "reverts"): _by_id("move", "reverts_move_id", required=False),
    ("Move", "revertedBy"): _by_id("move", "reverted_by_move_id", required=False),
    ("Move", "viewerCanRevert"): viewer_can_revert,
    ("MoveItem", "alert"): _by_id("alert", "alert_id", required=True),
    ("MoveItem", "from"): _by_id("incident", "from_incident_id", required=False),
    ("MoveItem", "to"): _by_id("incident", "to_incident_id", required=False),
    ("AlertPlacement", "incident"): _by_id("incident", "incident_id", required=False),
    ("AlertPlacement", "move"): _by_id("move", "move_id", required=False),
    **{
        (f"{item}Connection", "totalCount"): total_count
        for item in ("Incident", "Alert", "ActivityLogEntry", "Move", "MoveItem")
    },
}


def _call(info) -> tuple[Batch, dict]:
    raw = info._raw_info
    definition = raw.parent_type.fields[raw.field_name]
    # strawberry hands resolvers the coerced variables alone; their sources only matter for
    # fragment variables, which the schema does not enable.
    variables = VariableValues({}, raw.variable_values)
    args = get_argument_values(definition, raw.field_nodes[0], variables) if definition.args else {}
    return BATCHES[(raw.parent_type.name, raw.field_name)], args


async def resolve(root, info) -> Any:
    """A resolver's whole body on the normal path: the field's batch over this one parent."""
    batch, args = _call(info)
    values = batch([root], args, info.context)
    value = (values if isinstance(values, list) else await values)[0]
    if info._raw_info.parent_type.name == "Mutation" and not value.errors:
        info.context.applied.add(info.path.key)
    return value


def resolve_now(root, info) -> Any:
    """resolve, for a field whose batch needs no I/O (a synchronous resolver is cheaper)."""
    batch, args = _call(info)
    return batch([root], args, info.context)[0]
