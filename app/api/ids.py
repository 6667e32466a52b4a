"""IDs in the API are the decimal numbers of incidents and alerts."""

from __future__ import annotations

import re

from app.domain.errors import InvalidArgument

_NUMBER = re.compile(r"^#?(\d{1,18})$")


def number(value: str, field: str) -> int:
    match = _NUMBER.match(value.strip())
    if match is None:
        raise InvalidArgument(field, f"{field} must be a decimal number, got {value[:40]!r}")
    return int(match.group(1))
