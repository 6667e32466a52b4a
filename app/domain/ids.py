"""Incident and alert numbers as people and scripts write them: the one parser for both.

"1042", " 1042 " and "#1042" (people type the '#') are 1042. Only ASCII digits count: Python's
int() and the regex \\d also read other scripts' digits ("١٢" would be 12), and two '#' ("##12")
are a typo, not a number. At most 18 digits, so that every number fits PostgreSQL's bigint.
"""

from __future__ import annotations

import re

MAX_DIGITS = 18
_NUMBER = re.compile(rf"#?([0-9]{{1,{MAX_DIGITS}}})")


def parse_number(value: str) -> int | None:
    """The number `value` names, or None when it names none."""
    match = _NUMBER.fullmatch(value.strip())
    return int(match.group(1)) if match else None
