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
class Page(Generic[T]):
    """Up to `first` items, whether more follow, whether it was asked for after a cursor, and
    each item's cursor, made only when asked for (a typeahead reads none of its 60)."""

    items: list[T]
    has_next: bool
    cursor_of: Callable[[T], str]
    first_cursor: str | None = None  # instead of cursor_of(items[0]): a pinned incident's
    has_previous: bool = False  # asked for with `after`: the rows up to that cursor come before it

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


def check_first(first: int) -> int:
    """`first` if it is a page size the settings allow (MAX_PAGE_SIZE)."""
    largest = settings().max_page_size
    if not 1 <= first <= largest:
        raise InvalidArgument("first", f"first must be between 1 and {largest}, got {first}")
    return first


def encode(kind: str, *key: object) -> str:
    parts = [kind, *(k.isoformat() if isinstance(k, datetime) else k for k in key)]
    return base64.urlsafe_b64encode(orjson.dumps(parts)).decode().rstrip("=")


def decode(cursor: str | None, kind: str, shape: tuple[type, ...]) -> tuple | None:
    """The key inside a cursor of this kind, or None for no cursor; InvalidArgument if foreign."""
    if cursor is None:
        return None
    return _parsed(lambda: base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)), kind, shape)


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


def unseal(cursor: str | None, kind: str, shape: tuple[type, ...]) -> tuple | None:
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

    return _parsed(opened, kind, shape)


def _parsed(raw_of: Callable[[], bytes], kind: str, shape: tuple[type, ...]) -> tuple:
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
        raise InvalidArgument("after", "after is not a cursor from this list") from None


def page_of(
    rows: list, first: int, cursor_of: Callable, first_cursor: str | None = None, after: str | None = None
) -> Page:
    """Build a page from up to first+1 rows (the extra row only says there is more), read after
    the cursor `after` if one was given."""
    return Page(
        items=rows[:first],
        has_next=len(rows) > first,
        cursor_of=cursor_of,
        first_cursor=first_cursor,
        has_previous=after is not None,
    )
