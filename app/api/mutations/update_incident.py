"""updateIncident: change an incident's status, assignee and classification, in one transaction."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import strawberry
from strawberry.types import Info

from app.api import fields
from app.api.context import Context
from app.api.types import ActivityLogEntry, Classification, Determination, Incident, IncidentStatus
from app.domain.errors import ProblemCode

PERMISSION = (
    "the queue permission and a write grant on the scope of at least one of the incident's alerts (of those it "
    "last held, when it holds none)"
)


@strawberry.enum(description="Why updateIncident or addComment refused a change. A refused change changes nothing.")
class TriageErrorCode(Enum):
    INVALID_INPUT = strawberry.enum_value(
        ProblemCode.INVALID_INPUT,
        description="An argument is malformed, named by `field`: status REDIRECTED or null; a determination that "
        "does not go with the classification; a comment that is blank, longer than 30,000 characters once "
        "trimmed, or holds NUL; an idempotencyKey that is not 1 to 200 characters without NUL, or was used "
        "before with another input.",
    )
    INCIDENT_NOT_FOUND = strawberry.enum_value(
        ProblemCode.INCIDENT_NOT_FOUND,
        description="The id names no incident the viewer may see: not an incident's id, no such incident, or one "
        "none of whose alerts the viewer may read, reported alike.",
    )
    FORBIDDEN = strawberry.enum_value(
        ProblemCode.FORBIDDEN,
        description=f"Changing an incident needs {PERMISSION}. Without the queue permission `field` is null.",
    )
    ALREADY_REDIRECTED = strawberry.enum_value(
        ProblemCode.ALREADY_REDIRECTED,
        description="The incident was merged into another (REDIRECTED): change its redirectIncident instead.",
    )
    ASSIGNEE_NOT_FOUND = strawberry.enum_value(
        ProblemCode.ASSIGNEE_NOT_FOUND,
        description='assignedTo names no enabled user with the queue permission (nor "me").',
    )
    CLASSIFICATION_REQUIRED = strawberry.enum_value(
        ProblemCode.CLASSIFICATION_REQUIRED,
        description="Resolving needs a classification other than UNKNOWN: give it in the same call, or before.",
    )


@strawberry.type(description="One reason updateIncident or addComment refused a change.")
class TriageError:
    code: TriageErrorCode = strawberry.field(description="What went wrong, for a program to act on.")
    message: str = strawberry.field(
        description="What went wrong, in an English sentence for a person; its wording may change, the code's "
        "meaning does not."
    )
    field: str | None = strawberry.field(
        description="The argument the problem is in (id, incidentId, status, assignedTo, classification, "
        "determination, comment, text or idempotencyKey); null when it is about the viewer."
    )


@strawberry.type(description="What updateIncident did: the incident as it is now, or the reasons it was refused.")
class UpdateIncidentPayload:
    incident: Incident | None = strawberry.field(
        description="The incident after the change (unchanged when every value was already so). Null when refused."
    )
    log_entries: list[ActivityLogEntry] = strawberry.field(
        description="The entries the change wrote, in this order: STATUS_CHANGED, ASSIGNED, CLASSIFIED (each only "
        "when that value changed, each with the comment), or COMMENTED for a comment without a change. Empty when "
        "nothing changed, and when refused."
    )
    errors: list[TriageError] = strawberry.field(
        description="Why the change was refused, every problem found at once; empty when it was applied."
    )


COMMENT_ARGUMENT = strawberry.argument(
    description="Why, kept with each log entry the change writes: 1 to 30,000 characters once trimmed, without "
    "NUL. Alone (no value changes) it is a COMMENTED entry."
)
KEY_ARGUMENT = strawberry.argument(
    description="Makes retries safe: a replay with the same key and input returns the first result and changes "
    "nothing; the same key with another input is INVALID_INPUT. 1 to 200 characters, per user (shared with the "
    "other mutations); kept at least 24 hours."
)


async def update_incident(
    info: Info[Context, None],
    id: Annotated[strawberry.ID, strawberry.argument(description='The incident, by id (such as "inc_1042").')],
    status: Annotated[
        IncidentStatus | None,
        strawberry.argument(
            description="The new status: ACTIVE, IN_PROGRESS or RESOLVED (which needs a classification). Not given: "
            "unchanged."
        ),
    ] = strawberry.UNSET,
    assigned_to: Annotated[
        str | None,
        strawberry.argument(
            description='Who works on it: a user\'s name, or "me" for the viewer; null: nobody. Not given: '
            "unchanged. The user must be enabled and have the queue permission."
        ),
    ] = strawberry.UNSET,
    classification: Annotated[
        Classification | None,
        strawberry.argument(
            description="What it turned out to be; null is UNKNOWN. A new classification clears the determination "
            "unless one is given. Not given: unchanged."
        ),
    ] = strawberry.UNSET,
    determination: Annotated[
        Determination | None,
        strawberry.argument(
            description="Why, in more detail; it must go with the classification. null is UNKNOWN. Not given: "
            "unchanged (or UNKNOWN, when the classification changes)."
        ),
    ] = strawberry.UNSET,
    comment: Annotated[str | None, COMMENT_ARGUMENT] = None,
    idempotency_key: Annotated[str | None, KEY_ARGUMENT] = None,
) -> UpdateIncidentPayload:
    """Change an incident: all of it, or nothing."""
    return await fields.resolve(None, info)
