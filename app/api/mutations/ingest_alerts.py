"""ingestAlerts: detection sources send alerts; each is correlated into an incident."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import strawberry
from strawberry.types import Info

from app.api import fields
from app.api.context import Context
from app.api.types import ActivityLogEntry, Alert, EntityKind, Incident, Severity
from app.domain.errors import ProblemCode


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
class IngestAlertsErrorCode(StrEnum):
    INVALID_INPUT = ProblemCode.INVALID_INPUT
    FORBIDDEN = ProblemCode.FORBIDDEN


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


async def ingest_alerts(info: Info[Context, None], alerts: list[AlertInput]) -> IngestAlertsPayload:
    """Store alerts from a detection source; each joins a correlated incident or opens one."""
    return await fields.resolve(None, info)
