"""Opaque keyset cursors and the page-size rule."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

import orjson

from app.config import settings
from app.domain.errors import InvalidArgument

T = TypeVar("T")


@dataclass(frozen=True)
class Window:
    """The page of a list a client asks for, with Relay's arguments: the `size` items after
    `cursor` (the list's first ones without one) or, `backward`, the `size` items before it (the
    list's last ones without one). Either way the page holds them in the list's own order."""

    size: int
    cursor: str | None = None
    backward: bool = False

    @property
    def cursor_argument(self) -> str:
        """The argument the cursor came in, for an error about it."""
        return "before" if self.backward else "after"

    @property
    def rows(self) -> int:
        """The rows to read from the cursor: the page and one more, which says whether more lie beyond it."""
        return self.size + 1

    # Every list here is ordered by a key descending (newest first): a forward page reads the
    # keys below the cursor's, downwards; a backward one those above it, upwards, along the same
    # index scanned the other way, and puts them back in the list's order.

    @property
    def order(self) -> str:
        """The direction to read a newest-first list's key in, from the cursor."""
        return "ASC" if self.backward else "DESC"

    @property
    def beyond(self) -> str:
        """The comparison that keeps a newest-first list's keys beyond the cursor's."""
        return ">" if self.backward else "<"


def window(
    *, first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None
) -> Window:
    """The page asked for: forward with `first` and `after`, backward with `last` and `before`.

    A page is one or the other: `first` or `after` with `last` or `before` is refused rather than
    guessed at (Relay's clients send the other direction's arguments as null, which is not mixing).
    `last` has `first`'s bounds (MAX_PAGE_SIZE).
    """
    if last is None and before is None:
        if first is None:
            raise InvalidArgument("first", "first or last is needed: how many items the page holds")
        return Window(check_first(first), after)
    backward = "last" if last is not None else "before"
    for name, value in (("first", first), ("after", after)):
        if value is not None:
            raise InvalidArgument(
                backward,
                f"{backward} cannot be combined with {name}: page forward with first and after, "
                "or backward with last and before",
            )
    if last is None:
        raise InvalidArgument("last", "before needs last: how many items before the cursor the page holds")
    return Window(check_first(last, "last"), before, backward=True)


@dataclass(frozen=True)
class Page(Generic[T]):
    """A page of a list in the list's order, whether items follow it and come before it, and each
    item's cursor, made only when asked for (a typeahead reads none of its 60)."""

    items: list[T]
    has_next: bool
    cursor_of: Callable[[T], str]
    first_cursor: str | None = None  # instead of cursor_of(items[0]): a pinned incident's
    # Forward: asked for with `after` (the items up to that cursor come before it, not looked up
    # again). Backward: looked up (page_of).
    has_previous: bool = False

    def cursor(self, n: int) -> str:
        if n == 0 and self.first_cursor is not None:
            return self.first_cursor
        return self.cursor_of(self.items[n])

    @property
    def cursors(self) -> list[str]:
        return [self.cursor(n) for n in range(len(self.items))]

    @property
    def start_cursor(self) -> str | None:
        return self.cursor(0) if self.items else None

    @property
    def end_cursor(self) -> str | None:
        return self.cursor(len(self.items) - 1) if self.items else None


def check_first(first: int, argument: str = "first") -> int:
    """`first` (or `last`, named by `argument`) if it is a page size the settings allow (MAX_PAGE_SIZE)."""
    largest = settings().max_page_size
    if not 1 <= first <= largest:
        raise InvalidArgument(argument, f"{argument} must be between 1 and {largest}, got {first}")
    return first


def encode(kind: str, *key: object) -> str:
    parts = [kind, *(k.isoformat() if isinstance(k, datetime) else k for k in key)]
    return base64.urlsafe_b64encode(orjson.dumps(parts)).decode().rstrip("=")


def decode(cursor: str | None, kind: str, shape: tuple[type, ...], argument: str = "after") -> tuple | None:
    """The key inside a cursor of this kind, or None for no cursor; InvalidArgument, naming the
    argument it came in, if foreign."""
    if cursor is None:
        return None
    return _parsed(lambda: base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)), kind, shape, argument)


# --- sealed cursors ---------------------------------------------------------------------------
# The queue's cursors hold an incident's last activity, which may come from alerts the viewer may
# not read: they are sealed. Deterministic authenticated encryption from HMAC-SHA256 alone (the
# SIV construction: the IV is a MAC of the plaintext, the plaintext is XORed with a keystream
# from the IV), so that a position has one cursor on every path and process, a client learns
# nothing from it, and a forged or altered one is refused.

SEALING_KEY = "SELECT key FROM cursor_sealing_key"
_sealing: tuple[bytes, bytes] | None = None  # (MAC key, stream key), from the database's key


async def ensure_sealing_key(conn) -> None:
    """Read the database's sealing key once per process (db/migrations/0010)."""
    global _sealing
    if _sealing is None:
        key = bytes(await conn.fetchval(SEALING_KEY))
        _sealing = (hmac.digest(key, b"mac", "sha256"), hmac.digest(key, b"stream", "sha256"))


def _keystream(iv: bytes, length: int) -> bytes:
    blocks = (hmac.digest(_sealing[1], iv + n.to_bytes(4, "big"), "sha256") for n in range(length // 32 + 1))
    return b"".join(blocks)[:length]


def seal(kind: str, *key: object) -> str:
    """encode, sealed (ensure_sealing_key first)."""
    parts = [kind, *(k.isoformat() if isinstance(k, datetime) else k for k in key)]
    plain = orjson.dumps(parts)
    iv = hmac.digest(_sealing[0], plain, "sha256")[:16]
    sealed = bytes(a ^ b for a, b in zip(plain, _keystream(iv, len(plain)), strict=True))
    return base64.urlsafe_b64encode(iv + sealed).decode().rstrip("=")


def unseal(cursor: str | None, kind: str, shape: tuple[type, ...], argument: str = "after") -> tuple | None:
    """decode, for a sealed cursor."""
    if cursor is None:
        return None

    def opened() -> bytes:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        iv, sealed = raw[:16], raw[16:]
        plain = bytes(a ^ b for a, b in zip(sealed, _keystream(iv, len(sealed)), strict=True))
        if len(iv) != 16 or not hmac.compare_digest(iv, hmac.digest(_sealing[0], plain, "sha256")[:16]):
            raise ValueError
        return plain

    return _parsed(opened, kind, shape, argument)


def _parsed(raw_of: Callable[[], bytes], kind: str, shape: tuple[type, ...], argument: str) -> tuple:
    try:
        parts = orjson.loads(raw_of())
        if not isinstance(parts, list) or parts[0] != kind or len(parts) != len(shape) + 1:
            raise ValueError
        key = []
        for value, typ in zip(parts[1:], shape, strict=True):
            if typ is datetime:
                moment = datetime.fromisoformat(value)
                if moment.tzinfo is None:
                    raise ValueError
                key.append(moment.astimezone(UTC))
            elif (typ is int and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63) or (
                typ is str and isinstance(value, str)
            ):
                key.append(value)
            else:
                raise ValueError
        return tuple(key)
    except (ValueError, TypeError, IndexError, OverflowError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidArgument(argument, f"{argument} is not a cursor from this list") from None


def page_of(rows: list, window: Window, cursor_of: Callable) -> Page:
    """A page from up to window.rows rows read from its cursor in its direction, nearest first:
    the extra row only says that more lie beyond the page. Forward, items come before the page
    when it was asked for after a cursor; backward, the item at the cursor follows it."""
    items = rows[: window.size]
    if window.backward:
        return Page(items[::-1], window.cursor is not None, cursor_of, has_previous=len(rows) > window.size)
    return Page(items, len(rows) > window.size, cursor_of, has_previous=window.cursor is not None)
