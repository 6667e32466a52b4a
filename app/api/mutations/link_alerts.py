"""linkAlerts: move alerts to an existing or a new incident, in one transaction."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import strawberry
from strawberry.types import Info

from app.api import fields
from app.api.context import Context
from app.api.types import ActivityLogEntry, Alert, Incident
from app.domain.errors import ProblemCode


@strawberry.input(one_of=True, description="Where the alerts go: exactly one of the two.")
class LinkTarget:
    existing_incident_id: strawberry.ID | None = strawberry.UNSET
    create_new: bool | None = strawberry.UNSET


@strawberry.enum
class LinkAlertsErrorCode(StrEnum):
    INVALID_INPUT = ProblemCode.INVALID_INPUT
    ALERT_NOT_FOUND = ProblemCode.ALERT_NOT_FOUND
    INCIDENT_NOT_FOUND = ProblemCode.INCIDENT_NOT_FOUND
    FORBIDDEN = ProblemCode.FORBIDDEN
    TARGET_NOT_LINKABLE = ProblemCode.TARGET_NOT_LINKABLE


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
    return await fields.resolve(None, info)
