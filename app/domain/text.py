"""What text PostgreSQL can store: UTF-8 without NUL characters."""

from __future__ import annotations


def storable(text: str) -> bool:
    """False for text holding NUL or lone surrogates, which a text column refuses."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def only_storable(text: str) -> str:
    """The text without the characters a text column refuses (for searches: they match nothing)."""
    return text.replace("\x00", "").encode("utf-8", "ignore").decode("utf-8")
