"""Subscription.incidentChanges: the change stream (app/domain/changes.py) as a viewer may see it.

Each change is shown at delivery, with the rules of every query, for the viewer as they are then:
an incident they may not see is skipped, its fields are those a query would answer at that
moment, and its entries' messages and comments are rendered for them. A change of access wakes
the subscription (app/live.py): a revoked token or a disabled user ends it with UNAUTHENTICATED,
access taken away (a grant, the queue permission) with FORBIDDEN; access given is used at once.
Subscriptions that would render a change identically share one rendering (app/api/change_renders.py).

strawberry and graphql-core run subscriptions; a group's rendering of a change is the lean path's
when it covers the document (change_renders.LiveExecutor), and a WebSocket subscription renders
the changes pending behind the one it sends ahead, outside the per-event pipeline (render_ahead).
"""

from __future__ import annotations

import copy
import itertools
import time
from collections import deque
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Annotated

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from app import live, metrics
from app.api import change_renders, ids
from app.api.change_renders import IncidentChangeRecord
from app.api.context import Context
from app.api.loaders import Loaders
from app.api.types import ActivityLogEntry, Incident
from app.config import settings
from app.domain import activity, changes, incidents, pagination, users
from app.domain import ids as domain_ids
from app.domain.viewers import Viewer


@strawberry.type(
    name="IncidentChange",
    description="What one committed transaction changed in one incident, as the viewer may see it.",
)
class IncidentChange:
    incident: Incident = strawberry.field(
        description="The incident as it was right after the change committed (replayed changes: as it is when "
        "they are sent), with every field as a query would answer it for the viewer at delivery."
    )
    entries: list[ActivityLogEntry] = strawberry.field(
        description="The activity log entries this change wrote on this incident, oldest first, rendered for the "
        "viewer as the incident's activityLog renders them."
    )
    cursor: str = strawberry.field(
        description="This change's place in the stream: pass it as incidentChanges(after:) to resume after it, on "
        "any server process."
    )


def _error(code: str, message: str, **extensions) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


def _ended(reason: live.Ended, resume_after: str | None) -> GraphQLError:
    metrics.LIVE_ENDED.labels(reason.code).inc()
    extra = {"retryable": reason.retryable}
    if resume_after is not None:
        extra["resumeAfter"] = resume_after
    return _error(reason.code, reason.message, **extra)


def _narrowed(before: Viewer, now: Viewer) -> bool:
    """Whether `now` may read less than `before`: the queue permission or a readable scope lost."""
    if before.can_view_incidents and not now.can_view_incidents:
        return True
    return any(before.can_read(scope) and not now.can_read(scope) for scope in before.grants)


async def _check_viewer(ctx: Context, granted: Viewer | None) -> Viewer:
    """The viewer as they are now, or the subscription's end: a revoked token, a disabled user, or
    less access than `granted` (what the subscription has been delivering with).

    The context is the connection's, shared by every subscription of a WebSocket: it always takes
    the viewer as last read, so a subscription opened after another was ended for lost access
    runs with the access left, and one not checked yet runs with no more than that."""
    viewer = await users.viewer_for_token(conn=ctx.pool, token=ctx.token or "")
    if viewer is None:
        raise _error("UNAUTHENTICATED", "The API token was revoked, or its user disabled: the subscription ended.")
    ctx.viewer = viewer
    if granted is not None and _narrowed(granted, viewer):
        raise _error(
            "FORBIDDEN",
            "Your access changed (a grant or a permission was taken away): the subscription ended. Subscribe again "
            "to receive what you may see now.",
        )
    return viewer


async def _as_seen(
    ctx: Context, item: changes.Change | live.Read, ahead: change_renders.Ahead | None = None
) -> IncidentChangeRecord | None:
    """The change as the viewer may see it now, or None when they may not see the incident.

    A live change comes with the incident's row and entries, read once for the whole process
    right after it committed; a change replayed from the log is read here."""
    ctx.loaders = Loaders(ctx.pool, ctx.viewer)  # fresh values for every change, as a query reads them
    renders = None
    if isinstance(item, live.Read):
        change, incident, entries, renders = item.change, item.incident, item.entries, item.renders
        if incident is None or not incidents.is_visible(incident, ctx.viewer):
            return None
        _prime(ctx.loaders, item, ctx.viewer)
    else:
        change = item
        incident = await ctx.loaders.incident.load(change.incident_id)
        if incident is None:
            return None
        entries = await activity.entries_by_id(conn=ctx.pool, ids=list(change.entry_ids))
    return IncidentChangeRecord(incident, entries, change.position.cursor, renders, ahead)


def _prime(loaders: Loaders, item: live.Read, viewer: Viewer) -> None:
    """The incidents a live change comes with, as the loader would answer them for the viewer
    (None when not visible to them)."""
    loaders.incident.prime(item.incident.id, item.incident)
    for other in item.related.values():
        loaders.incident.prime(other.id, other if incidents.is_visible(other, viewer) else None)


def _render_ahead(ctx: Context, ahead: change_renders.Ahead, operation, key: tuple, items) -> None:
    """Begin the group's renderings of these live changes that the viewer may see: the one about to
    be sent (called when the group has none to share) and those pending behind it that the group
    has never rendered (change_renders.render_ahead). A pending change whose rendering grew too old
    meanwhile is rendered again only when it is the one about to be sent: once, not once a batch."""
    for n, item in enumerate(items):
        if not isinstance(item, live.Read) or (n > 0 and change_renders.rendered(item.renders, key, operation)):
            continue
        if item.incident is None or not incidents.is_visible(item.incident, ctx.viewer):
            continue
        event = copy.copy(ctx)  # the viewer's, with loaders of its own for this change
        event.loaders = Loaders(ctx.pool, ctx.viewer)
        _prime(event.loaders, item, ctx.viewer)
        record = IncidentChangeRecord(item.incident, item.entries, item.change.position.cursor, item.renders, ahead)
        if not change_renders.render_ahead(ahead, record, event):
            return


def _count_sent_directly(n: int) -> None:
    """Changes sent as their group rendered them, counted once per burst: a multiprocess counter's
    increment was 5% of a subscriber process's CPU when counted per event."""
    metrics.LIVE_CHANGES_SENT.inc(n)
    change_renders.SENT.inc(n)


def _coerced(values) -> dict:
    """The coerced variable values of a resolver's info (graphql-core gives the root field of a
    subscription the dict, every per-event execution a VariableValues)."""
    return values if isinstance(values, dict) else values.coerced


def _incident_numbers(incident_ids: list[strawberry.ID] | None) -> frozenset[int] | None:
    if incident_ids is None:
        return None
    largest = settings().max_page_size
    if len(incident_ids) > largest:
        raise _error(
            "BAD_USER_INPUT", f"incidentIds holds at most {largest} ids, got {len(incident_ids)}", field="incidentIds"
        )
    return frozenset(ids.of_kind(i, domain_ids.INCIDENT, "incidentIds") for i in incident_ids)


async def incident_changes(
    info: Info[Context, None],
    incident_ids: Annotated[
        list[strawberry.ID] | None,
        strawberry.argument(
            description='The incidents to follow, by id (such as "inc_1042"), at most MAX_PAGE_SIZE; null: every '
            "incident the viewer may see (the queue). An id of an incident the viewer may not see is accepted and "
            "sends nothing, as `incident` answers null."
        ),
    ] = None,
    after: Annotated[
        str | None,
        strawberry.argument(
            description="A cursor an earlier IncidentChange gave: first every change after it that the viewer may "
            "see, in order, then the live ones. Older than LIVE_RESUME_HOURS: CURSOR_EXPIRED."
        ),
    ] = None,
) -> AsyncGenerator[IncidentChange, None]:
    ctx = info.context
    if ctx.token is not None:
        # The access as it is now: the connection's viewer may be older than a change of access.
        await _check_viewer(ctx, None)
    ctx.viewer.require_queue()
    numbers = _incident_numbers(incident_ids)
    feed: live.Feed | None = ctx.live
    if feed is None:
        raise _error("LIVE_UNAVAILABLE", "Live updates are not available on this server.", retryable=False)
    await pagination.ensure_sealing_key(ctx.pool)  # change cursors are sealed
    resume = changes.decode_cursor(after) if after is not None else None
    if resume is not None:
        try:
            await changes.check_cursor(
                conn=ctx.pool, position=resume, keep=settings().live_resume_window, now=datetime.now(UTC)
            )
        except changes.CursorExpired as expired:
            raise _error("CURSOR_EXPIRED", expired.message, field="after") from None
    try:
        # Changes from now on: not those of transactions that ended before, which the feed may
        # not have read past yet (it reads at most every live.READ_GAP_SECONDS).
        subscription = feed.open(numbers, since=await changes.horizon(conn=ctx.pool))
    except live.SubscriptionLimit:
        raise _error(
            "SUBSCRIPTION_LIMIT",
            "This server process holds as many subscriptions as it may (LIVE_MAX_SUBSCRIPTIONS): retry shortly.",
            retryable=True,
        ) from None
    except live.Ended as ended:
        raise _ended(ended, after) from None
    metrics.LIVE_SUBSCRIPTIONS.inc()
    last = resume
    sent = after  # resumeAfter: never the cursor of a change this viewer was not shown
    sent_directly = 0  # counted in the metrics when the subscription has nothing pending, or ends
    try:
        backlog: deque[changes.Change] = deque()
        replay = resume  # the log is read from there, one batch at a time, up to where the live changes start
        # The viewer is checked again at every access change, and every LIVE_RECHECK_SECONDS whether
        # or not changes flow: a backstop for an access change whose notification the listener missed.
        recheck = settings().live_recheck_seconds
        checked = time.monotonic()
        granted = ctx.viewer
        # A graphql-transport-ws operation sends its group's payloads itself (change_renders.DIRECT).
        direct = change_renders.DIRECT.get()
        raw = info._raw_info
        key, key_viewer = None, None
        ahead = change_renders.Ahead()
        while True:
            if subscription.access_changed or time.monotonic() - checked >= recheck:
                subscription.access_changed = False
                granted = await _check_viewer(ctx, granted)
                checked = time.monotonic()
            if not backlog and replay is not None:
                batch = await changes.read_between(
                    conn=ctx.pool,
                    after=replay,
                    below_xact=subscription.start_xact,
                    incident_ids=sorted(numbers) if numbers is not None else None,
                )
                backlog.extend(batch.changes)
                replay = changes.Position(batch.next_xact, 0) if batch.more else None
                continue
            change = backlog.popleft() if backlog else subscription.take()
            if change is None:
                if sent_directly:
                    _count_sent_directly(sent_directly)
                    sent_directly = 0
                await subscription.wait(max(0.0, checked + recheck - time.monotonic()))
                continue
            position = change.change.position if isinstance(change, live.Read) else change.position
            if last is not None and position <= last:
                continue  # delivered from the log already (a resume overlaps the live changes)
            if direct is not None and isinstance(change, live.Read):
                if change.incident is None or not incidents.is_visible(change.incident, ctx.viewer):
                    last = position
                    continue
                if key_viewer is not ctx.viewer:  # the viewer as last checked: the key holds their access
                    key_viewer = ctx.viewer
                    key = change_renders.group_key(
                        raw.operation, raw.schema, raw.fragments, _coerced(raw.variable_values), ctx
                    )
                if key is not None and not change_renders.rendering(change.renders, key, raw.operation):
                    pending = itertools.islice(subscription.pending_changes(), change_renders.RENDER_AHEAD)
                    _render_ahead(ctx, ahead, raw.operation, key, [change, *pending])
                data = await change_renders.shared_data(change.renders, key, raw.operation)
                if subscription.access_changed:
                    # Access changed while it waited: check the viewer first (the loop's top, which
                    # ends the subscription when access was taken away), then this change again.
                    backlog.appendleft(change)
                    continue
                # The viewer may have been checked again while it waited: then the pipeline.
                if data is not None and key_viewer is ctx.viewer and await direct(data):
                    last = position
                    sent_directly += 1
                    if sent_directly >= 100:  # a subscription that stays busy counts too
                        _count_sent_directly(sent_directly)
                        sent_directly = 0
                    sent = change.change.position.cursor
                    continue
            seen = await _as_seen(ctx, change, ahead if direct is not None else None)
            last = position
            if seen is not None:
                metrics.LIVE_CHANGES_SENT.inc()
                yield seen
                sent = seen.cursor
    except live.Ended as ended:
        raise _ended(ended, sent) from None
    finally:
        if sent_directly:
            _count_sent_directly(sent_directly)
        feed.close(subscription)
        metrics.LIVE_SUBSCRIPTIONS.dec()


@strawberry.type(
    description="Live updates, over graphql-transport-ws (WebSocket) or graphql-sse (Server-Sent Events, distinct "
    "connections mode). Needs the queue permission."
)
class Subscription:
    incident_changes: IncidentChange = strawberry.subscription(
        resolver=incident_changes,
        description="Every committed change to the incidents the viewer may see, in commit order: one event per "
        "incident per transaction, sent after COMMIT, never for a transaction that rolled back. Without "
        "incidentIds: every incident the viewer may see (the queue). With after: resume from a cursor an earlier "
        "event returned, receiving everything missed since, then live events. Ends with an error whose "
        "extensions.code says why: SUBSCRIBER_TOO_SLOW and SERVER_SHUTTING_DOWN (retryable; resume with the last "
        "cursor received, given again in extensions.resumeAfter), UNAUTHENTICATED (token revoked), FORBIDDEN "
        "(access taken away), CURSOR_EXPIRED, SUBSCRIPTION_LIMIT (retryable).",
    )
