"""Ids: the numbers people type, and the typed ids the API hands out. The one parser for both.

Numbers. "1042", " 1042 " and "#1042" (people type the '#') are 1042. Only ASCII digits count:
Python's int() and the regex \\d also read other scripts' digits ("١٢" would be 12), and two '#'
("##12") are a typo, not a number. At most 18 digits, so that every number fits PostgreSQL's
bigint.

Typed ids. Every object a client may refetch has an id unique across types and stable for its
life: its kind's prefix, an underscore and its number ("inc_1042", "alert_57", "log_9", "move_3"). They
are readable on purpose (a ticket can quote one) yet typed, so incident 12 and alert 12 never
share an id and an alert id given where an incident id belongs is refused, not misread. Clients
treat them as opaque: take them from answers, never build them. Surrounding spaces are ignored,
as for numbers; nothing else is (no '#', no other case, no leading zero: one object, one id).
"""

from __future__ import annotations

import re

MAX_DIGITS = 18
_NUMBER = re.compile(rf"#?([0-9]{{1,{MAX_DIGITS}}})")

# The prefixes of the typed ids, by kind of object.
INCIDENT = "inc"
ALERT = "alert"
LOG_ENTRY = "log"
MOVE = "move"
KINDS = (INCIDENT, ALERT, LOG_ENTRY, MOVE)
_TYPED = re.compile(rf"({'|'.join(KINDS)})_([1-9][0-9]{{0,{MAX_DIGITS - 1}}})")


def parse_number(value: str) -> int | None:
    """The number `value` names, or None when it names none."""
    match = _NUMBER.fullmatch(value.strip())
    return int(match.group(1)) if match else None


def typed_id(kind: str, number: int) -> str:
    """The id of object `number` of this kind, as the API shows it."""
    return f"{kind}_{number}"


def parse_typed(value: str) -> tuple[str, int] | None:
    """(kind, number) of a typed id, or None when `value` is not one."""
    match = _TYPED.fullmatch(value.strip())
    return (match.group(1), int(match.group(2))) if match else None


def parse_id(value: str, kind: str) -> int | None:
    """The number of an object of this kind that `value` names, or None when it names none
    (malformed, or another kind's id)."""
    parsed = parse_typed(value)
    return parsed[1] if parsed is not None and parsed[0] == kind else None
