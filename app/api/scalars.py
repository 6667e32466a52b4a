"""Scalars of the schema that strawberry's built-ins do not describe well enough.

DATE_TIME replaces strawberry's DateTime (build_schema's scalar_overrides) to say what the text
is and where it is specified (@specifiedBy); it serialises and parses with strawberry's own
functions, so answers and inputs are what they were.
"""

from __future__ import annotations

import strawberry
from strawberry.schema.types.base_scalars import DateTimeDefinition

DATE_TIME = strawberry.scalar(
    name="DateTime",
    description="A moment in time as RFC 3339 text (ISO 8601 with the offset), e.g. "
    '"2026-03-14T09:26:53.589793+00:00". Answers always carry the offset (+00:00: UTC) and give microseconds '
    "when there are any. In inputs a value without an offset is read as UTC.",
    specified_by_url="https://datatracker.ietf.org/doc/html/rfc3339",
    serialize=DateTimeDefinition.serialize,
    parse_value=DateTimeDefinition.parse_value,
)
