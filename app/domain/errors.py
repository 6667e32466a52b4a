"""Expected failures. Each carries a code that the API layer maps to its own error types."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from enum import StrEnum


class ProblemCode(StrEnum):
    """Why an operation was refused. Each mutation's error code enum in the API lists the subset
    it can return (app/api/mutations/)."""

    INVALID_INPUT = "INVALID_INPUT"
    ALERT_NOT_FOUND = "ALERT_NOT_FOUND"
    INCIDENT_NOT_FOUND = "INCIDENT_NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    TARGET_NOT_LINKABLE = "TARGET_NOT_LINKABLE"
    ALREADY_REDIRECTED = "ALREADY_REDIRECTED"
    TOO_MANY_ALERTS = "TOO_MANY_ALERTS"
    MOVE_NOT_FOUND = "MOVE_NOT_FOUND"
    ALREADY_REVERTED = "ALREADY_REVERTED"
    ALERT_MOVED_SINCE = "ALERT_MOVED_SINCE"
    INCIDENT_MERGED_SINCE = "INCIDENT_MERGED_SINCE"
    INCIDENT_CHANGED_SINCE = "INCIDENT_CHANGED_SINCE"
    ASSIGNEE_NOT_FOUND = "ASSIGNEE_NOT_FOUND"
    CLASSIFICATION_REQUIRED = "CLASSIFICATION_REQUIRED"


@dataclass
class Problem:
    """One reason an operation was refused."""

    code: ProblemCode
    message: str
    field: str | None = None
    ids: list[str] = dataclass_field(default_factory=list)
    # Besides `ids` (the alerts, or the incidents of a merge): the incidents and the moves it names.
    incident_ids: list[str] = dataclass_field(default_factory=list)
    move_ids: list[str] = dataclass_field(default_factory=list)


class Refused(Exception):
    """An operation was refused as a whole and changed nothing."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class NotAllowed(Exception):
    """The viewer lacks a permission needed to ask this at all."""


class InvalidArgument(Exception):
    """A query argument is malformed (a bad cursor, a page size out of range...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
