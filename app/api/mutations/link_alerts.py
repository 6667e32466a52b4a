"""linkAlerts: move alerts to an existing or a new incident, in one transaction."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import strawberry
from strawberry.types import Info

from app.api import fields
from app.api.context import Context
from app.api.types import ActivityLogEntry, Alert, Incident, Move
from app.domain.errors import ProblemCode


@strawberry.input(one_of=True, description="Where the alerts go: exactly one of the two.")
class LinkTarget:
    existing_incident_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description='The id of an incident the viewer may see, such as "inc_1042". A RESOLVED incident is '
        "reopened (ACTIVE) by the alerts arriving; a REDIRECTED one is refused (TARGET_NOT_LINKABLE).",
    )
    create_new: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="Give true to have the move create a new incident, named after the alerts, and move them "
        "there; false is INVALID_INPUT.",
    )


@strawberry.enum(description="Why linkAlerts refused a move. A refused move changes nothing.")
class LinkAlertsErrorCode(Enum):
    INVALID_INPUT = strawberry.enum_value(
        ProblemCode.INVALID_INPUT,
        description="An argument is malformed, named by `field`: alertIds is empty or holds more than "
        "LINK_MAX_ALERTS distinct ids (1,000 unless the server says otherwise); the comment is blank, longer "
        "than 30,000 characters once trimmed, or holds NUL characters; target.createNew is false; the "
        "idempotencyKey is not 1 to 200 characters without NUL, or was used before with another input.",
    )
    ALERT_NOT_FOUND = strawberry.enum_value(
        ProblemCode.ALERT_NOT_FOUND,
        description="Some alertIds name no alert the viewer may read: not an alert's id (those look like "
        "alert_57), no such alert, or an alert in a scope the viewer may not read; all three are reported alike, "
        "so nobody learns that an unreadable alert exists. `alertIds` lists them.",
    )
    INCIDENT_NOT_FOUND = strawberry.enum_value(
        ProblemCode.INCIDENT_NOT_FOUND,
        description="target.existingIncidentId names no incident the viewer may see: not an incident's id "
        "(those look like inc_1042), no such incident, or an incident none of whose alerts the viewer may read.",
    )
    FORBIDDEN = strawberry.enum_value(
        ProblemCode.FORBIDDEN,
        description="The viewer may not move these alerts: without the queue permission (Viewer."
        "canViewIncidents false; `field` null) they may move none, and with it they may not move alerts of "
        "scopes they may only read (`alertIds` lists those).",
    )
    TARGET_NOT_LINKABLE = strawberry.enum_value(
        ProblemCode.TARGET_NOT_LINKABLE,
        description="The target incident was merged into another (status REDIRECTED): move the alerts to its "
        "redirectIncident instead.",
    )


@strawberry.type(description="One reason linkAlerts refused a move.")
class LinkAlertsError:
    code: LinkAlertsErrorCode = strawberry.field(description="What went wrong, for a program to act on.")
    message: str = strawberry.field(
        description="What went wrong, in an English sentence for a person; its wording may change, the code's "
        "meaning does not."
    )
    field: str | None = strawberry.field(
        description="The argument the problem is in, as a path: alertIds, comment, idempotencyKey, target, "
        "target.createNew or target.existingIncidentId; null when it is about the viewer, not an argument."
    )
    alert_ids: list[strawberry.ID] = strawberry.field(
        description="The alerts the problem is about (ALERT_NOT_FOUND, FORBIDDEN), as given, without surrounding "
        "spaces; empty for other problems."
    )


@strawberry.type(description="What linkAlerts did: the move's result, or the reasons it was refused.")
class LinkAlertsPayload:
    target_incident: Incident | None = strawberry.field(
        description="The incident the alerts are in now, as it is after the move (reopened if it was RESOLVED). "
        "Null when the move was refused, and when a replayed idempotencyKey's target is no longer one the "
        "viewer may see."
    )
    source_incidents: list[Incident] = strawberry.field(
        description="The incidents the alerts came from, as they are after the move (RESOLVED when the move "
        "took their last alert), by number; only those the viewer may still see. Empty when refused or when "
        "every alert was already in the target."
    )
    alerts: list[Alert] = strawberry.field(
        description="The alerts named in alertIds, once each, in their order, as they are after the move; only "
        "those the viewer may read. Empty when refused."
    )
    log_entries: list[ActivityLogEntry] = strawberry.field(
        description="Every entry the move wrote, in every incident the viewer may see, in the order written: "
        "INCIDENT_CREATED for a new target, ALERT_UNLINKED and ALERT_LINKED for each alert that moved, "
        "INCIDENT_RESOLVED for each emptied source, INCIDENT_REOPENED for a resolved target. Empty when "
        "refused or when every alert was already in the target."
    )
    errors: list[LinkAlertsError] = strawberry.field(
        description="Why the move was refused, every problem found at once (a problem with the idempotencyKey "
        "is reported alone); empty when the move was applied or replayed."
    )

    @strawberry.field(
        description="The move it made, to show or revert (revertMove); null when it was refused or moved nothing "
        "(every alert already in the target). A replayed idempotencyKey returns the first call's move."
    )
    async def move(self, info: Info[Context, None]) -> Move | None:
        return await fields.resolve(self, info)


async def link_alerts(
    info: Info[Context, None],
    alert_ids: Annotated[
        list[strawberry.ID],
        strawberry.argument(
            description='The alerts to move, by id (such as "alert_57"): 1 to LINK_MAX_ALERTS distinct ones '
            "(1,000 unless the server says otherwise). The viewer must be able to write every one of them. "
            "Alerts already in the target stay there and write nothing."
        ),
    ],
    target: Annotated[LinkTarget, strawberry.argument(description="Where the alerts go.")],
    comment: Annotated[
        str,
        strawberry.argument(
            description="Why they move, kept with every log entry the move writes: 1 to 30,000 characters once "
            "surrounding spaces are trimmed, without NUL."
        ),
    ],
    idempotency_key: Annotated[
        str | None,
        strawberry.argument(
            description="Makes retries safe: a replay with the same key and input returns the first "
            "result and changes nothing; the same key with another input is INVALID_INPUT. 1 to 200 characters, "
            "chosen by the client, per user; kept at least 24 hours."
        ),
    ] = None,
) -> LinkAlertsPayload:
    """Move alerts to another incident: all of them, or none. Replaying a move changes nothing."""
    return await fields.resolve(None, info)
