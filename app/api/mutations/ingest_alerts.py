"""ingestAlerts: detection sources send alerts; each is correlated into an incident."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum

import strawberry
from strawberry.types import Info

from app.api import background
from app.api.context import Context
from app.api.types import ActivityLogEntry, Alert, EntityKind, Incident, Severity
from app.db import in_transaction
from app.domain import ingestion
from app.domain.errors import Refused


@strawberry.input
class EntityInput:
    kind: EntityKind
    value: str


@strawberry.input
class AlertInput:
    external_id: str
    title: str
    severity: Severity
    category: str
    scope: str | None = "default"
    detected_at: datetime | None = None
    entities: list[EntityInput]


@strawberry.enum
class IngestAlertsErrorCode(Enum):
    INVALID_INPUT = "INVALID_INPUT"
    FORBIDDEN = "FORBIDDEN"


@strawberry.type
class IngestAlertsError:
    code: IngestAlertsErrorCode
    message: str
    field: str | None
    external_ids: list[str]


@strawberry.type
class IngestAlertsPayload:
    alerts: list[Alert]
    incidents: list[Incident]
    log_entries: list[ActivityLogEntry]
    errors: list[IngestAlertsError]


def _domain(a: AlertInput) -> ingestion.AlertIn:
    return ingestion.AlertIn(
        external_id=a.external_id, title=a.title, severity=a.severity.value, category=a.category,
        scope=a.scope if a.scope is not None else "default",
        detected_at=a.detected_at.replace(tzinfo=UTC) if a.detected_at and a.detected_at.tzinfo is None else a.detected_at,
        entities=[(e.kind.value, e.value) for e in a.entities],
    )


async def ingest(ctx: Context, batch: list[ingestion.AlertIn]) -> ingestion.IngestResult:
    """Ingest in one transaction, then have the trigram indexes' pending entries merged in the
    background. Raises Refused (nothing stored) like ingestion.ingest_alerts."""
    result = await in_transaction(
        ctx.pool,
        lambda conn: ingestion.ingest_alerts(conn=conn, viewer=ctx.viewer, batch=batch, window=ctx.correlation_window),
    )
    background.merge_pending_index_entries(ctx)
    return result


async def ingest_alerts(info: Info[Context, None], alerts: list[AlertInput]) -> IngestAlertsPayload:
    """Store alerts from a detection source; each joins a correlated incident or opens one."""
    ctx = info.context
    try:
        result = ctx.committed.pop(info.path.key, None) or await ingest(ctx, [_domain(a) for a in alerts])
    except Refused as refused:
        return IngestAlertsPayload(
            alerts=[], incidents=[], log_entries=[],
            errors=[
                IngestAlertsError(
                    code=IngestAlertsErrorCode(p.code), message=p.message, field=p.field, external_ids=p.ids
                )
                for p in refused.problems
            ],
        )
    return IngestAlertsPayload(
        alerts=[Alert.of(a) for a in result.alerts],
        incidents=[Incident.of(i) for i in result.incidents],
        log_entries=[ActivityLogEntry.of(e, ctx) for e in result.entries],
        errors=[],
    )
