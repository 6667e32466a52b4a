"""addComment: a note in an incident's log, outside any move or change."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from app.api import fields
from app.api.context import Context
from app.api.mutations.update_incident import KEY_ARGUMENT, TriageError
from app.api.types import ActivityLogEntry, Incident


@strawberry.type(description="What addComment did: the entry it wrote, or the reasons it was refused.")
class AddCommentPayload:
    incident: Incident | None = strawberry.field(description="The incident commented on. Null when refused.")
    log_entry: ActivityLogEntry | None = strawberry.field(description="The COMMENTED entry written. Null when refused.")
    errors: list[TriageError] = strawberry.field(description="Why the comment was refused; empty when written.")


async def add_comment(
    info: Info[Context, None],
    incident_id: Annotated[strawberry.ID, strawberry.argument(description='The incident, by id (such as "inc_1042").')],
    text: Annotated[
        str, strawberry.argument(description="The note: 1 to 30,000 characters once trimmed, without NUL.")
    ],
    idempotency_key: Annotated[str | None, KEY_ARGUMENT] = None,
) -> AddCommentPayload:
    """Write a note in an incident's log."""
    return await fields.resolve(None, info)
