"""Typeahead text: how typed words become ILIKE patterns, and a tiny SQL parameter builder.

Every typed word must appear somewhere in the text, in any order, case-insensitively; the words
are substrings, not prefixes, because SOC names are full of host names, accounts and file names
("4821" must find "WS-4821", "smith" must find "alice.smith@contoso.com"). Characters such as
% _ \\ are escaped so they are plain text. Each word becomes its own ILIKE clause so that the
pg_trgm GIN index can serve each of them.
"""

from __future__ import annotations

import re

from app.domain.errors import InvalidArgument
from app.domain.text import only_storable

MAX_WORDS = 8
MAX_SEARCH_LENGTH = 200
_NUMBER = re.compile(r"^#?(\d{1,18})$")


def words(search: str | None) -> list[str]:
    """The distinct words of a search; InvalidArgument past MAX_SEARCH_LENGTH or MAX_WORDS.

    Words are never dropped silently: a search either means all of its words, or is refused.
    """
    if not search:
        return []
    if len(search) > MAX_SEARCH_LENGTH:
        raise InvalidArgument("filter.search", f"search is limited to {MAX_SEARCH_LENGTH} characters")
    found: list[str] = []
    for word in only_storable(search).lower().split():
        if word not in found:
            found.append(word)
    # A word contained in another adds nothing: "lat lateral" means "lateral".
    kept = [w for w in found if not any(w != o and w in o for o in found)]
    if len(kept) > MAX_WORDS:
        raise InvalidArgument("filter.search", f"search is limited to {MAX_WORDS} words")
    return kept


def like_pattern(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def as_number(search: str | None) -> int | None:
    """The incident or alert number a search names, if it is one ("1042" or "#1042")."""
    if not search:
        return None
    match = _NUMBER.match(search.strip())
    return int(match.group(1)) if match else None


class Params:
    """Collects positional parameters; SQL text is built only from fixed fragments."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def __call__(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}"
