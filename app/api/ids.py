"""Ids as the API's arguments take them: typed ids ("inc_1042"), read by app/domain/ids.py."""

from __future__ import annotations

from app.domain import ids
from app.domain.errors import InvalidArgument

EXAMPLES = {
    ids.INCIDENT: "an incident id such as inc_1042",
    ids.ALERT: "an alert id such as alert_57",
    ids.MOVE: "a move id such as move_3",
}


def of_kind(value: str, kind: str, field: str) -> int:
    """The number of the object of this kind that `value` names; InvalidArgument when it is no
    such id (malformed, or another kind's)."""
    number = ids.parse_id(value, kind)
    if number is None:
        raise InvalidArgument(field, f"{field} must be {EXAMPLES[kind]}, got {value[:40]!r}")
    return number


def typed(value: str, field: str) -> tuple[str, int]:
    """(kind, number) of any typed id; InvalidArgument when `value` is none."""
    parsed = ids.parse_typed(value)
    if parsed is None:
        raise InvalidArgument(
            field, f"{field} must be an id this API gave out, such as inc_1042 or alert_57, got {value[:40]!r}"
        )
    return parsed
