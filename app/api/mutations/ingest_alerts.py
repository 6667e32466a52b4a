"""ingestAlerts: detection sources send alerts; each is correlated into an incident."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry
from strawberry.types import Info

from app.api import fields
from app.api.context import Context
from app.api.types import ActivityLogEntry, Alert, EntityKind, Incident, Severity
from app.domain.errors import ProblemCode


@strawberry.input(description="One piece of evidence an alert involves: what correlation matches alerts by.")
class EntityInput:
    kind: EntityKind = strawberry.field(description="What the value names.")
    value: str = strawberry.field(
        description="The device name, user name, IP address, mailbox, file or URL: 1 to 1,000 characters and at "
        "most 1,300 bytes in UTF-8, not blank, without NUL; surrounding spaces are trimmed. Correlation compares "
        "values of the same kind case-insensitively."
    )


@strawberry.input(description="One alert from a detection source.")
class AlertInput:
    external_id: str = strawberry.field(
        description="The source's own id for the alert, unique within its scope: 1 to 500 characters, not blank, "
        "without NUL. An externalId already stored in the same scope returns the stored alert unchanged, so "
        "resending is safe; within one batch, the first alert with a given externalId counts."
    )
    title: str = strawberry.field(
        description="What was detected, for a person: 1 to 1,000 characters, not blank, without NUL; surrounding "
        "spaces are trimmed. An incident this alert opens is named after it."
    )
    severity: Severity = strawberry.field(
        description="How severe the detection is; an incident's severity is the highest of its alerts'."
    )
    category: str = strawberry.field(
        description="The kind of activity, such as a MITRE ATT&CK tactic (Execution, LateralMovement): 1 to 200 "
        "characters, not blank, without NUL; surrounding spaces are trimmed. Names of incidents created by "
        "moves use it."
    )
    scope: str | None = strawberry.field(
        default="default",
        description="The part of the organisation the alert belongs to, such as a team or a customer: users may "
        'read or write alerts by scope (their grants). "default" when omitted or null; 1 to 200 characters and '
        "at most 600 bytes in UTF-8, not blank, without NUL; "
        "surrounding spaces are trimmed. An alert joins only incidents whose alerts are all in its scope, "
        "unless the server sets CORRELATION_ACROSS_SCOPES.",
    )
    detected_at: datetime | None = strawberry.field(
        default=None,
        description="When the source detected it; the time of ingestion when omitted or null. From 1970 to a day "
        "after now (a source's clock may run ahead); without an offset it is read as UTC.",
    )
    entities: list[EntityInput] = strawberry.field(
        description="The evidence, at most 100 entities (may be empty; repeats count once). The alert joins the "
        "ACTIVE or IN_PROGRESS incident of the most recently detected alert that shares an entity with it and "
        "was detected at most CORRELATION_WINDOW_HOURS (24 unless the server says otherwise) before it, "
        "earlier alerts of the same batch included; otherwise it opens an incident of its own."
    )


@strawberry.enum(description="Why ingestAlerts refused a batch. A refused batch stores nothing.")
class IngestAlertsErrorCode(Enum):
    INVALID_INPUT = strawberry.enum_value(
        ProblemCode.INVALID_INPUT,
        description="The batch holds no alert or more than INGEST_MAX_ALERTS (500 unless the server says "
        "otherwise; reported alone, `field` alerts); or alerts in it are malformed, each problem reported "
        "with its `field` (alerts.<index>.<name>, counting from 0) and the alert's externalId: text over its "
        "limit, blank or holding NUL (see AlertInput and EntityInput), a detectedAt before 1970 or more than a "
        "day from now, more than 100 entities.",
    )
    FORBIDDEN = strawberry.enum_value(
        ProblemCode.FORBIDDEN,
        description="The viewer may not ingest alerts (Viewer.canIngest is false). Reported alone; `field` is null.",
    )


@strawberry.type(description="One reason ingestAlerts refused a batch.")
class IngestAlertsError:
    code: IngestAlertsErrorCode = strawberry.field(description="What went wrong, for a program to act on.")
    message: str = strawberry.field(
        description="What went wrong, in an English sentence for a person; its wording may change, the code's "
        "meaning does not."
    )
    field: str | None = strawberry.field(
        description="Where the problem is, as a path: alerts for the batch as a whole, alerts.<index>.<name> for "
        "one alert (counting from 0, e.g. alerts.3.scope); null when it is about the viewer."
    )
    external_ids: list[str] = strawberry.field(
        description="The externalId of the alert the problem is in (none when that externalId holds NUL); empty "
        "for a problem of the whole batch."
    )


@strawberry.type(description="What ingestAlerts did: the alerts stored and where correlation put them, or why not.")
class IngestAlertsPayload:
    alerts: list[Alert] = strawberry.field(
        description="One alert for each one sent, in the same order, as stored (an externalId stored before "
        "gives the alert stored then); only those in scopes the viewer may read. Empty when refused."
    )
    incidents: list[Incident] = strawberry.field(
        description="The incidents the new alerts joined or opened, as they are now, by number; only those the "
        "viewer may see. Empty when refused or when every alert was stored before."
    )
    log_entries: list[ActivityLogEntry] = strawberry.field(
        description="The entries the ingestion wrote, one per new alert, in the incidents shown: INCIDENT_CREATED "
        "where it opened an incident, ALERT_CORRELATED where it joined one. Empty when refused."
    )
    errors: list[IngestAlertsError] = strawberry.field(
        description="Why the batch was refused; empty when it was stored."
    )


async def ingest_alerts(
    info: Info[Context, None],
    alerts: Annotated[
        list[AlertInput],
        strawberry.argument(
            description="The alerts, 1 to INGEST_MAX_ALERTS (500 unless the server says otherwise), stored in one "
            "transaction: all of them or, when any is refused, none. They correlate in the order given."
        ),
    ],
) -> IngestAlertsPayload:
    """Store alerts from a detection source; each joins a correlated incident or opens one."""
    return await fields.resolve(None, info)
