"""What text PostgreSQL can store: UTF-8 without NUL characters, and what an index holds."""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True)
class TextLimit:
    """1 to `characters` characters, not all blank, storable, and at most `utf8_bytes` bytes.

    Bytes matter where a btree indexes the text: an entry holds at most 2,704 bytes (a third
    of an 8 kB page), whatever the characters, and text that does not compress gets no help.
    """

    characters: int
    utf8_bytes: int | None = None  # None: any text of that many characters fits where it goes

    def admits(self, text: str) -> bool:
        if not text.strip() or len(text) > self.characters or not storable(text):
            return False
        return self.utf8_bytes is None or len(text.encode("utf-8")) <= self.utf8_bytes

    def __str__(self) -> str:
        in_bytes = f" and at most {self.utf8_bytes:,} bytes in UTF-8" if self.utf8_bytes is not None else ""
        return f"1 to {self.characters:,} characters{in_bytes}, without NUL"
