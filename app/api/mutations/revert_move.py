"""revertMove: put a move's alerts back where they came from, in one transaction."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import strawberry
from strawberry.types import Info

from app.api import fields
from app.api.context import Context
from app.api.types import ActivityLogEntry, Alert, Incident, Move
from app.domain.errors import ProblemCode


@strawberry.enum(description="Why revertMove refused a revert. A refused revert changes nothing.")
class RevertMoveErrorCode(Enum):
    INVALID_INPUT = strawberry.enum_value(
        ProblemCode.INVALID_INPUT,
        description="An argument is malformed, named by `field`: the comment is blank, longer than 30,000 "
        "characters once trimmed, or holds NUL characters; the idempotencyKey is not 1 to 200 characters without "
        "NUL, or was used before with another input.",
    )
    MOVE_NOT_FOUND = strawberry.enum_value(
        ProblemCode.MOVE_NOT_FOUND,
        description="moveId names no move the viewer may see: not a move's id (those look like move_3), no such "
        "move, or one that touched no incident the viewer may see, reported alike.",
    )
    FORBIDDEN = strawberry.enum_value(
        ProblemCode.FORBIDDEN,
        description="Without the queue permission (`field` null), no revert; with it, every alert of the move "
        "must be the viewer's to move: `alertIds` lists those they may read but not move.",
    )
    ALREADY_REVERTED = strawberry.enum_value(
        ProblemCode.ALREADY_REVERTED,
        description="The move was reverted already (`moveIds`: that revert). Revert the revert to put the alerts back.",
    )
    ALERT_MOVED_SINCE = strawberry.enum_value(
        ProblemCode.ALERT_MOVED_SINCE,
        description="Alerts of the move moved again since (`alertIds`: those the viewer may read; `moveIds`: the "
        "later moves the viewer may see). Revert those first, newest first.",
    )
    INCIDENT_MERGED_SINCE = strawberry.enum_value(
        ProblemCode.INCIDENT_MERGED_SINCE,
        description="An incident the alerts would go back to was merged into another since (REDIRECTED; "
        "`incidentIds`, `moveIds`: the merges). Revert the merge first.",
    )
    INCIDENT_CHANGED_SINCE = strawberry.enum_value(
        ProblemCode.INCIDENT_CHANGED_SINCE,
        description="The revert would merge incidents again (it reverts the revert of a merge), but alerts were "
        "brought into them since the merge was reverted, and a REDIRECTED incident holds no alert (`incidentIds`: "
        "those incidents, `alertIds`: those alerts, as far as the viewer may see them). Move those alerts out "
        "first, or merge the incidents anew.",
    )


@strawberry.type(description="One reason revertMove refused a revert.")
class RevertMoveError:
    code: RevertMoveErrorCode = strawberry.field(description="What went wrong, for a program to act on.")
    message: str = strawberry.field(
        description="What went wrong, in an English sentence for a person; its wording may change, the code's "
        "meaning does not."
    )
    field: str | None = strawberry.field(
        description="The argument the problem is in: moveId, comment or idempotencyKey; null when it is about the "
        "viewer."
    )
    alert_ids: list[strawberry.ID] = strawberry.field(
        description="The alerts the problem is about (FORBIDDEN, ALERT_MOVED_SINCE, INCIDENT_CHANGED_SINCE), those "
        "the viewer may read."
    )
    move_ids: list[strawberry.ID] = strawberry.field(
        description="The moves the problem is about (ALREADY_REVERTED: the revert; ALERT_MOVED_SINCE: the later "
        "moves; INCIDENT_MERGED_SINCE: the merges), those the viewer may see."
    )
    incident_ids: list[strawberry.ID] = strawberry.field(
        description="The incidents the problem is about (INCIDENT_MERGED_SINCE, INCIDENT_CHANGED_SINCE), those the "
        "viewer may see."
    )


@strawberry.type(description="What revertMove did: the revert, or the reasons it was refused.")
class RevertMovePayload:
    incidents: list[Incident] = strawberry.field(
        description="Every incident the revert touched that the viewer may see, as it is after, by number: where "
        "the alerts left and where they went back to (reopened, resolved when emptied, no longer REDIRECTED)."
    )
    alerts: list[Alert] = strawberry.field(
        description="The alerts it moved back, those the viewer may read, by number, as they are after."
    )
    log_entries: list[ActivityLogEntry] = strawberry.field(
        description="Every entry the revert wrote in incidents the viewer may see, in the order written: "
        "ALERTS_SENT_BACK and ALERTS_RETURNED for each pair of incidents (with the alert count), INCIDENT_UNMERGED "
        "for each source of a reverted merge (INCIDENT_REDIRECTED and INCIDENT_MERGED when a revert of a merge is "
        "reverted), then INCIDENT_RESOLVED and INCIDENT_REOPENED. Each points at the revert (`move`)."
    )
    errors: list[RevertMoveError] = strawberry.field(
        description="Why the revert was refused, every problem found at once; empty when it was applied or replayed."
    )

    @strawberry.field(description="The revert, a move of kind REVERT whose `reverts` is the move undone.")
    async def move(self, info: Info[Context, None]) -> Move | None:
        return await fields.resolve(self, info)

    @strawberry.field(description="The move undone, its revertedBy now set; null when refused.")
    async def reverted(self, info: Info[Context, None]) -> Move | None:
        return await fields.resolve(self, info)


async def revert_move(
    info: Info[Context, None],
    move_id: Annotated[
        strawberry.ID,
        strawberry.argument(
            description='The move to revert, by id (such as "move_3"): from LinkAlertsPayload.move, '
            "MergeIncidentsPayload.move, Incident.moves or a log entry's move. A REVERT can be reverted too: that "
            "puts the alerts back."
        ),
    ],
    comment: Annotated[
        str,
        strawberry.argument(
            description="Why, kept with the revert and its log entries: 1 to 30,000 characters once trimmed, "
            "without NUL."
        ),
    ],
    idempotency_key: Annotated[
        str | None,
        strawberry.argument(
            description="Makes retries safe, as linkAlerts': the same key and input returns the first result. 1 to "
            "200 characters, per user; kept at least 24 hours."
        ),
    ] = None,
) -> RevertMovePayload:
    """Revert a move: all of its alerts go back, or none."""
    return await fields.resolve(None, info)
