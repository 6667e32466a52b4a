"""mergeIncidents: merge incidents into one, in one transaction."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import strawberry
from strawberry.types import Info

from app.api import fields
from app.api.context import Context
from app.api.types import ActivityLogEntry, Incident, MergeReason, Move
from app.domain.errors import ProblemCode


@strawberry.enum(description="Why mergeIncidents refused a merge. A refused merge changes nothing.")
class MergeIncidentsErrorCode(Enum):
    INVALID_INPUT = strawberry.enum_value(
        ProblemCode.INVALID_INPUT,
        description="An argument is malformed, named by `field`: incidentIds does not hold 2 to 50 distinct ids; "
        "targetIncidentId is not one of them; the comment is blank, longer than 30,000 characters once trimmed, "
        "or holds NUL characters; the idempotencyKey is not 1 to 200 characters without NUL, or was used before "
        "with another input.",
    )
    INCIDENT_NOT_FOUND = strawberry.enum_value(
        ProblemCode.INCIDENT_NOT_FOUND,
        description="Some incidentIds name no incident the viewer may see: not an incident's id, no such "
        "incident, or one none of whose alerts the viewer may read, reported alike. `incidentIds` lists them.",
    )
    FORBIDDEN = strawberry.enum_value(
        ProblemCode.FORBIDDEN,
        description="Without the queue permission (`field` null), no merge; with it, every alert of every source "
        "must be the viewer's to move (a write grant on its scope): `incidentIds` lists the sources where one is "
        "not.",
    )
    ALREADY_REDIRECTED = strawberry.enum_value(
        ProblemCode.ALREADY_REDIRECTED,
        description="Some incidents were merged into another already (REDIRECTED): merge their redirectIncident "
        "instead. `incidentIds` lists them. (So redirects never loop.)",
    )
    TOO_MANY_ALERTS = strawberry.enum_value(
        ProblemCode.TOO_MANY_ALERTS,
        description="The sources hold more alerts than one merge moves: MERGE_MAX_ALERTS, 100,000 unless the "
        "server says otherwise.",
    )


@strawberry.type(description="One reason mergeIncidents refused a merge.")
class MergeIncidentsError:
    code: MergeIncidentsErrorCode = strawberry.field(description="What went wrong, for a program to act on.")
    message: str = strawberry.field(
        description="What went wrong, in an English sentence for a person; its wording may change, the code's "
        "meaning does not."
    )
    field: str | None = strawberry.field(
        description="The argument the problem is in: incidentIds, targetIncidentId, comment or idempotencyKey; "
        "null when it is about the viewer."
    )
    incident_ids: list[strawberry.ID] = strawberry.field(
        description="The incidents the problem is about (INCIDENT_NOT_FOUND, FORBIDDEN, ALREADY_REDIRECTED), as "
        "given, without surrounding spaces; empty for other problems."
    )


@strawberry.type(description="What mergeIncidents did: the merge's result, or the reasons it was refused.")
class MergeIncidentsPayload:
    target: Incident | None = strawberry.field(
        description="The incident the alerts are in now, as it is after the merge (reopened if it was RESOLVED "
        "and alerts arrived). Null when refused, and when a replayed idempotencyKey's target is no longer one "
        "the viewer may see."
    )
    sources: list[Incident] = strawberry.field(
        description="The merged incidents, now REDIRECTED to the target, by number; those the viewer may see. "
        "Empty when refused."
    )
    log_entries: list[ActivityLogEntry] = strawberry.field(
        description="Every entry the merge wrote in incidents the viewer may see, in the order written: for each "
        "source, INCIDENT_REDIRECTED in its log and INCIDENT_MERGED in the target's (one entry each, with the "
        "alert count; the move's items list the alerts), then INCIDENT_REOPENED for a RESOLVED target."
    )
    errors: list[MergeIncidentsError] = strawberry.field(
        description="Why the merge was refused, every problem found at once (a problem with the idempotencyKey "
        "is reported alone); empty when it was applied or replayed."
    )

    @strawberry.field(description="The merge, as a move: its items, and revertMove to undo it. Null when refused.")
    async def move(self, info: Info[Context, None]) -> Move | None:
        return await fields.resolve(self, info)


async def merge_incidents(
    info: Info[Context, None],
    incident_ids: Annotated[
        list[strawberry.ID],
        strawberry.argument(
            description='The incidents to merge, by id (such as "inc_1042"): 2 to 50 distinct ones, the target '
            "among them. The viewer must be able to move every alert of every source."
        ),
    ],
    comment: Annotated[
        str,
        strawberry.argument(
            description="Why they are merged, kept with the merge and its log entries: 1 to 30,000 characters once "
            "surrounding spaces are trimmed, without NUL."
        ),
    ],
    target_incident_id: Annotated[
        strawberry.ID | None,
        strawberry.argument(
            description="The incident the others are merged into; one of incidentIds. Null: the one with the most "
            "alerts (the oldest of equals), unless some hold alerts the viewer may not move (they cannot be "
            "sources): then the oldest of those."
        ),
    ] = None,
    reasons: Annotated[
        list[MergeReason] | None,
        strawberry.argument(description="Why, as flags; duplicates are ignored. Null or empty: none given."),
    ] = (),
    idempotency_key: Annotated[
        str | None,
        strawberry.argument(
            description="Makes retries safe: a replay with the same key and input returns the first result and "
            "changes nothing; the same key with another input is INVALID_INPUT. 1 to 200 characters, chosen by "
            "the client, per user (shared with linkAlerts and revertMove); kept at least 24 hours."
        ),
    ] = None,
) -> MergeIncidentsPayload:
    """Merge incidents: all of them, or none."""
    return await fields.resolve(None, info)
