"""linkAlerts: move alerts to an existing or a new incident, in one transaction."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import strawberry
from strawberry.types import Info

from app.api import background
from app.api.context import Context
from app.api.types import ActivityLogEntry, Alert, Incident
from app.db import in_transaction
from app.domain import idempotency, linking
from app.domain.errors import Refused


@strawberry.input(one_of=True, description="Where the alerts go: exactly one of the two.")
class LinkTarget:
    existing_incident_id: strawberry.ID | None = strawberry.UNSET
    create_new: bool | None = strawberry.UNSET


@strawberry.enum
class LinkAlertsErrorCode(Enum):
    INVALID_INPUT = "INVALID_INPUT"
    ALERT_NOT_FOUND = "ALERT_NOT_FOUND"
    INCIDENT_NOT_FOUND = "INCIDENT_NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    TARGET_NOT_LINKABLE = "TARGET_NOT_LINKABLE"


@strawberry.type
class LinkAlertsError:
    code: LinkAlertsErrorCode
    message: str
    field: str | None
    alert_ids: list[strawberry.ID]


@strawberry.type
class LinkAlertsPayload:
    target_incident: Incident | None
    source_incidents: list[Incident] = strawberry.field(description="As they are after the move.")
    alerts: list[Alert]
    log_entries: list[ActivityLogEntry] = strawberry.field(description="Every entry the move wrote, in every incident.")
    errors: list[LinkAlertsError]


BULK_MOVE_ENTRIES = 100


async def link(
    ctx: Context, alert_ids: list[str], target: linking.Target, comment: str, idempotency_key: str | None
) -> linking.LinkResult:
    """The move in one transaction, once per idempotency key when one is given, then, for a bulk
    move, the trigram indexes' pending entries merged in the background. Raises Refused (nothing
    changed) like linking.link_alerts."""

    async def work(conn):
        if idempotency_key is None:
            return await linking.link_alerts(conn=conn, viewer=ctx.viewer, alert_ids=alert_ids, target=target, comment=comment)
        return await idempotency.link_alerts_once(
            conn=conn, viewer=ctx.viewer, key=idempotency_key, alert_ids=alert_ids, target=target, comment=comment,
        )

    result = await in_transaction(ctx.pool, work)
    # A bulk move (50 alerts or more, two log entries each) leaves as many incidents' new index
    # entries pending as an ingestion does; a small one's are left to the next merge, which
    # after every small move would cost the 16 analysts' moves more than it saves them.
    if len(result.entries) >= BULK_MOVE_ENTRIES:
        background.merge_pending_index_entries(ctx)
    return result


def _given(value):
    return None if value is strawberry.UNSET else value


async def link_alerts(
    info: Info[Context, None],
    alert_ids: list[strawberry.ID],
    target: LinkTarget,
    comment: str,
    idempotency_key: Annotated[
        str | None,
        strawberry.argument(
            description="Makes retries safe: a replay with the same key and input returns the first "
            "result and changes nothing; the same key with another input is INVALID_INPUT. Kept 24 hours."
        ),
    ] = None,
) -> LinkAlertsPayload:
    """Move alerts to another incident: all of them, or none. Replaying a move changes nothing."""
    ctx = info.context
    domain_target = linking.Target(
        existing_incident_id=_given(target.existing_incident_id), create_new=_given(target.create_new)
    )
    try:
        result = ctx.committed.pop(info.path.key, None) or await link(
            ctx, [str(i) for i in alert_ids], domain_target, comment, idempotency_key
        )
    except Refused as refused:
        return LinkAlertsPayload(
            target_incident=None, source_incidents=[], alerts=[], log_entries=[],
            errors=[
                LinkAlertsError(
                    code=LinkAlertsErrorCode(p.code), message=p.message, field=p.field,
                    alert_ids=[strawberry.ID(i) for i in p.ids],
                )
                for p in refused.problems
            ],
        )
    return LinkAlertsPayload(
        target_incident=Incident.of(result.target),
        source_incidents=[Incident.of(i) for i in result.sources],
        alerts=[Alert.of(a) for a in result.alerts],
        log_entries=[ActivityLogEntry.of(e, ctx) for e in result.entries],
        errors=[],
    )
