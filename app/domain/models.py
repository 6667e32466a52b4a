"""Plain records the domain hands out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from app.domain import ids


# The domain's vocabularies. Records hold the database's strings, which compare and hash equal
# to these members; the GraphQL enums wrap these classes (app/api/types.py), so a value added
# here is a value of the API on both execution paths.
class Severity(StrEnum):
    INFORMATIONAL = "informational"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


SEVERITY_ORDER = tuple(Severity)  # lowest first


class IncidentStatus(StrEnum):
    ACTIVE = "active"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    REDIRECTED = "redirected"


class AlertStatus(StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"


class EntityKind(StrEnum):
    DEVICE = "device"
    USER = "user"
    IP = "ip"
    MAILBOX = "mailbox"
    FILE = "file"
    URL = "url"


class ActivityKind(StrEnum):
    ALERT_CORRELATED = "alert_correlated"
    ALERT_LINKED = "alert_linked"
    ALERT_UNLINKED = "alert_unlinked"
    INCIDENT_CREATED = "incident_created"
    INCIDENT_RESOLVED = "incident_resolved"
    INCIDENT_REOPENED = "incident_reopened"


class Access(StrEnum):
    READ = "read"
    WRITE = "write"


INCIDENT_COLUMNS = (
    "i.id, i.name, i.status::text AS status, i.severity::text AS severity, i.created_at,"
    " i.last_activity_at, i.alert_count, i.alert_scopes, i.redirect_incident_id,"
    " coalesce(i.name_scopes, i.alert_scopes) AS name_scopes"
)
ALERT_COLUMNS = (
    "a.id, a.external_id, a.title, a.severity::text AS severity, a.status::text AS status,"
    " a.category, a.scope, a.detected_at, a.incident_id"
)
ENTRY_COLUMNS = (
    "l.id, l.incident_id, l.kind::text AS kind, l.created_at, l.actor, l.comment, l.alert_id,"
    " l.other_incident_id, l.alert_count, la.title AS alert_title, la.scope AS alert_scope"
)
ENTRY_FROM = "activity_log l LEFT JOIN alerts la ON la.id = l.alert_id"


@dataclass(frozen=True)
class Incident:
    id: int
    name: str
    status: str
    severity: str
    created_at: datetime
    last_activity_at: datetime
    alert_count: int  # every alert, readable or not: see incidents.visible_alert_count
    alert_scopes: list[str]
    redirect_incident_id: int | None
    name_scopes: list[str]  # of the alerts it was named after

    @property
    def number(self) -> int:
        return self.id

    @property
    def node_id(self) -> str:
        return ids.typed_id(ids.INCIDENT, self.id)


@dataclass(frozen=True)
class ReadableSummary:
    """An incident as far as a viewer may read its alerts (incidents.readable_summaries)."""

    alert_count: int
    severity: str | None
    last_activity_at: datetime | None


@dataclass(frozen=True)
class Alert:
    id: int
    external_id: str
    title: str
    severity: str
    status: str
    category: str
    scope: str
    detected_at: datetime
    incident_id: int

    @property
    def number(self) -> int:
        return self.id

    @property
    def node_id(self) -> str:
        return ids.typed_id(ids.ALERT, self.id)


@dataclass(frozen=True)
class Entity:
    kind: str
    value: str


@dataclass(frozen=True)
class ActivityEntry:
    id: int
    incident_id: int
    kind: str
    created_at: datetime
    actor: str
    comment: str | None
    alert_id: int | None
    other_incident_id: int | None
    alert_count: int | None
    alert_title: str | None
    alert_scope: str | None

    @property
    def node_id(self) -> str:
        return ids.typed_id(ids.LOG_ENTRY, self.id)


def incident(row) -> Incident:
    return Incident(**dict(row))


def alert(row) -> Alert:
    return Alert(**dict(row))


def entry(row) -> ActivityEntry:
    return ActivityEntry(**dict(row))
