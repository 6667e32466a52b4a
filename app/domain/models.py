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
    # Summaries, one per incident and counterpart, written by merges and reverts (move_items holds
    # each alert they moved).
    INCIDENT_MERGED = "incident_merged"
    INCIDENT_REDIRECTED = "incident_redirected"
    ALERTS_RETURNED = "alerts_returned"
    ALERTS_SENT_BACK = "alerts_sent_back"
    INCIDENT_UNMERGED = "incident_unmerged"
    # Triage (updateIncident, addComment): old_value and new_value say what changed.
    STATUS_CHANGED = "status_changed"
    ASSIGNED = "assigned"
    CLASSIFIED = "classified"
    COMMENTED = "commented"


TRIAGE_KINDS = frozenset(
    {ActivityKind.STATUS_CHANGED, ActivityKind.ASSIGNED, ActivityKind.CLASSIFIED, ActivityKind.COMMENTED}
)


class Classification(StrEnum):
    """What an incident turned out to be (Microsoft Graph's incident classification)."""

    UNKNOWN = "unknown"
    TRUE_POSITIVE = "true_positive"
    FALSE_POSITIVE = "false_positive"
    INFORMATIONAL_EXPECTED_ACTIVITY = "informational_expected_activity"


class Determination(StrEnum):
    """Why, in more detail (Microsoft Graph's determination); DETERMINATIONS says which go with
    which classification."""

    UNKNOWN = "unknown"
    MALWARE = "malware"
    PHISHING = "phishing"
    COMPROMISED_ACCOUNT = "compromised_account"
    MULTI_STAGED_ATTACK = "multi_staged_attack"
    MALICIOUS_USER_ACTIVITY = "malicious_user_activity"
    UNWANTED_SOFTWARE = "unwanted_software"
    SECURITY_TESTING = "security_testing"
    SECURITY_PERSONNEL = "security_personnel"
    LINE_OF_BUSINESS_APPLICATION = "line_of_business_application"
    CONFIRMED_ACTIVITY = "confirmed_activity"
    NOT_MALICIOUS = "not_malicious"
    NOT_ENOUGH_DATA_TO_VALIDATE = "not_enough_data_to_validate"
    OTHER = "other"


# Defender's pairs: each classification's determinations (UNKNOWN goes with any).
DETERMINATIONS: dict[str, frozenset[str]] = {
    Classification.UNKNOWN: frozenset(),
    Classification.TRUE_POSITIVE: frozenset(
        {
            Determination.MALWARE,
            Determination.PHISHING,
            Determination.COMPROMISED_ACCOUNT,
            Determination.MULTI_STAGED_ATTACK,
            Determination.MALICIOUS_USER_ACTIVITY,
            Determination.UNWANTED_SOFTWARE,
            Determination.OTHER,
        }
    ),
    Classification.INFORMATIONAL_EXPECTED_ACTIVITY: frozenset(
        {
            Determination.SECURITY_TESTING,
            Determination.SECURITY_PERSONNEL,
            Determination.LINE_OF_BUSINESS_APPLICATION,
            Determination.CONFIRMED_ACTIVITY,
            Determination.OTHER,
        }
    ),
    Classification.FALSE_POSITIVE: frozenset(
        {Determination.NOT_MALICIOUS, Determination.NOT_ENOUGH_DATA_TO_VALIDATE, Determination.OTHER}
    ),
}


SUMMARY_KINDS = frozenset(
    {
        ActivityKind.INCIDENT_MERGED,
        ActivityKind.INCIDENT_REDIRECTED,
        ActivityKind.ALERTS_RETURNED,
        ActivityKind.ALERTS_SENT_BACK,
        ActivityKind.INCIDENT_UNMERGED,
    }
)


class IncidentSort(StrEnum):
    """The queue's orders (incidents.SORTS)."""

    LAST_ACTIVITY = "last_activity"
    SEVERITY = "severity"
    ALERT_COUNT = "alert_count"
    CREATED = "created"


class MoveKind(StrEnum):
    LINK = "link"
    MERGE = "merge"
    REVERT = "revert"


class MergeReason(StrEnum):
    DUPLICATE = "duplicate"
    SAME_ACTOR = "same_actor"
    SAME_CAMPAIGN = "same_campaign"
    SAME_ASSET = "same_asset"
    OTHER = "other"


class Access(StrEnum):
    READ = "read"
    WRITE = "write"


INCIDENT_COLUMNS = (
    "i.id, i.name, i.status::text AS status, i.severity::text AS severity, i.created_at,"
    " i.last_activity_at, i.alert_count, i.alert_scopes, i.redirect_incident_id,"
    " coalesce(i.name_scopes, i.alert_scopes) AS name_scopes, i.assigned_to,"
    " i.classification::text AS classification, i.determination::text AS determination, i.updated_at"
)
ALERT_COLUMNS = (
    "a.id, a.external_id, a.title, a.severity::text AS severity, a.status::text AS status,"
    " a.category, a.scope, a.detected_at, a.incident_id"
)
ENTRY_COLUMNS = (
    "l.id, l.incident_id, l.kind::text AS kind, l.created_at, l.actor, l.comment, l.alert_id,"
    " l.other_incident_id, l.alert_count, la.title AS alert_title, la.scope AS alert_scope, l.move_id,"
    " l.old_value, l.new_value"
)
MOVE_COLUMNS = (
    "m.id, m.kind::text AS kind, m.actor, m.comment, m.created_at, m.reasons::text[] AS reasons,"
    " m.target_incident_id, m.created_target, m.reverts_move_id,"
    " (SELECT r.id FROM moves r WHERE r.reverts_move_id = m.id) AS reverted_by_move_id,"
    " m.alert_count, m.alert_scopes, m.source_incident_ids"
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
    assigned_to: str | None = None  # a user's name
    classification: str = Classification.UNKNOWN
    determination: str = Determination.UNKNOWN
    updated_at: datetime | None = None  # the last change to it or its alerts (db/migrations/0015)

    @property
    def number(self) -> int:
        return self.id

    @property
    def node_id(self) -> str:
        return ids.typed_id(ids.INCIDENT, self.id)


@dataclass(frozen=True)
class MatchedIncident(Incident):
    """An incident a search found by its evidence, with the evidence that matched (of alerts the
    viewer may read; at most evidence.MATCHED_MOST, by kind, then value)."""

    matched_evidence: tuple[Entity, ...] = ()


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
    move_id: int | None = None  # the move, merge or revert that wrote it
    old_value: str | None = None  # a triage entry's value before (TRIAGE_KINDS), as stored
    new_value: str | None = None

    def _values(self, kind: str, part: int) -> tuple[str | None, str | None]:
        if self.kind != kind:
            return None, None
        # CLASSIFIED values are "classification" or "classification:determination".
        parts = [
            None if v is None else [*v.split(":"), Determination.UNKNOWN][part]
            for v in (self.old_value, self.new_value)
        ]
        return parts[0], parts[1]

    @property
    def old_status(self) -> str | None:
        return self._values(ActivityKind.STATUS_CHANGED, 0)[0]

    @property
    def new_status(self) -> str | None:
        return self._values(ActivityKind.STATUS_CHANGED, 0)[1]

    @property
    def old_assignee(self) -> str | None:
        return self._values(ActivityKind.ASSIGNED, 0)[0]

    @property
    def new_assignee(self) -> str | None:
        return self._values(ActivityKind.ASSIGNED, 0)[1]

    @property
    def old_classification(self) -> str | None:
        return self._values(ActivityKind.CLASSIFIED, 0)[0]

    @property
    def new_classification(self) -> str | None:
        return self._values(ActivityKind.CLASSIFIED, 0)[1]

    @property
    def old_determination(self) -> str | None:
        return self._values(ActivityKind.CLASSIFIED, 1)[0]

    @property
    def new_determination(self) -> str | None:
        return self._values(ActivityKind.CLASSIFIED, 1)[1]

    @property
    def node_id(self) -> str:
        return ids.typed_id(ids.LOG_ENTRY, self.id)


@dataclass(frozen=True)
class Move:
    """One linkAlerts, mergeIncidents or revertMove call that changed something."""

    id: int
    kind: str
    actor: str
    comment: str
    created_at: datetime
    reasons: list[str]
    target_incident_id: int | None
    created_target: bool
    reverts_move_id: int | None
    reverted_by_move_id: int | None
    alert_count: int  # every alert it moved, readable or not
    alert_scopes: list[str]
    source_incident_ids: list[int]

    @property
    def number(self) -> int:
        return self.id

    @property
    def node_id(self) -> str:
        return ids.typed_id(ids.MOVE, self.id)


@dataclass(frozen=True)
class MoveItem:
    """One alert a move moved: where from, where to."""

    move_id: int
    alert_id: int
    from_incident_id: int
    to_incident_id: int


@dataclass(frozen=True)
class Placement:
    """An incident an alert was in: put there by a move, or by ingestion (move_id None)."""

    alert_id: int
    incident_id: int
    move_id: int | None
    at: datetime


def incident(row) -> Incident:
    return Incident(**dict(row))


def alert(row) -> Alert:
    return Alert(**dict(row))


def entry(row) -> ActivityEntry:
    return ActivityEntry(**dict(row))


def move(row) -> Move:
    return Move(**dict(row))
