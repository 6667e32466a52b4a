"""IDs in the API are the decimal numbers of incidents and alerts (app/domain/ids.py)."""

from __future__ import annotations

from app.domain.errors import InvalidArgument
from app.domain.ids import parse_number


def number(value: str, field: str) -> int:
    parsed = parse_number(value)
    if parsed is None:
        raise InvalidArgument(field, f"{field} must be a decimal number, got {value[:40]!r}")
    return parsed
