"""Persisted documents: texts stored under the SHA-256 of their UTF-8 bytes.

Two ways in. An operator registers a client's manifest (`trust`): trusted, one row per document,
found by everyone. A client's first use registers a document for its user alone (Apollo's
automatic persisted queries, `remember`): untrusted, one row per user and document, found only
by that user, so the hash alone never tells anyone whether somebody else sent that text. A
row's body never changes under its hash, so any process may cache it, keyed like its row.

What bounds storage, so that no user can turn APQ off for others: a remembered body is at most
the request body limit (MAX_BODY_BYTES) and MAX_REMEMBERED_BYTES (past it, the document still
runs but is not stored); each user keeps at most MAX_REMEMBERED_PER_USER untrusted documents and
all of them together at most MAX_REMEMBERED, the oldest evicted to make room. Untrusted rows may
be deleted at any time: their clients send the text again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

MAX_REMEMBERED = 20_000
MAX_REMEMBERED_PER_USER = 200
MAX_REMEMBERED_BYTES = 100_000


def digest(body: str) -> bytes:
    """The document's id: the SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(body.encode()).digest()


def storable(body: str) -> bool:
    """Whether PostgreSQL's text can hold body: never a NUL (U+0000), which GraphQL allows in
    comments and strings."""
    return "\x00" not in body


@dataclass(frozen=True)
class Document:
    sha256: bytes
    body: str
    trusted: bool
    created_at: datetime
    trusted_at: datetime | None
    registered_by: int | None


class Trusted(StrEnum):
    """What `trust` did to one document."""

    NEW = "new"  # stored now
    NOW_TRUSTED = "now trusted"  # registered through APQ before, trusted now
    ALREADY = "already trusted"


# The trusted row first; a user's own untrusted row only when user_id is not NULL.
FIND = """
(SELECT body, true AS trusted FROM persisted_documents WHERE sha256 = $1 AND trusted)
UNION ALL
(SELECT body, false FROM persisted_documents WHERE sha256 = $1 AND registered_by = $2 AND NOT trusted)
LIMIT 1
"""

# One statement, so that it needs no transaction of the caller's. It sees the table as it was
# before its own insert: the new row is one more of its user's and of all, hence the OFFSETs of
# one less than each cap. Under concurrency the counts are approximate (each statement sees the
# others' rows only once they commit), which is close enough for bounds that only stop abuse.
# The global cap's OFFSET reads its whole index (about 2-10 ms at 20,000 rows), only when a row
# was stored. Nothing is stored for a document that is trusted already: everyone finds that one.
REMEMBER = """
WITH stored AS (
    INSERT INTO persisted_documents (sha256, body, registered_by)
    SELECT $1, $2, $3
    WHERE NOT EXISTS (SELECT FROM persisted_documents WHERE sha256 = $1 AND trusted)
    ON CONFLICT (sha256, registered_by) WHERE NOT trusted DO NOTHING
    RETURNING 1
), evicted AS (
    DELETE FROM persisted_documents
    WHERE NOT trusted AND EXISTS (SELECT FROM stored) AND (
        (registered_by = $3 AND created_at <= (
            SELECT created_at FROM persisted_documents WHERE NOT trusted AND registered_by = $3
            ORDER BY created_at DESC OFFSET $4 - 1 LIMIT 1))
        OR created_at <= (
            SELECT created_at FROM persisted_documents WHERE NOT trusted
            ORDER BY created_at DESC OFFSET $5 - 1 LIMIT 1)
    )
)
SELECT EXISTS (SELECT FROM stored)
    OR EXISTS (SELECT FROM persisted_documents WHERE sha256 = $1 AND trusted)
    OR EXISTS (SELECT FROM persisted_documents WHERE sha256 = $1 AND registered_by = $3 AND NOT trusted)
"""

# A trusted document is found by everyone: the users' own copies of it are redundant.
TRUST = """
WITH copies AS (
    DELETE FROM persisted_documents WHERE sha256 = $1 AND NOT trusted RETURNING 1
), stored AS (
    INSERT INTO persisted_documents (sha256, body, trusted, trusted_at)
    VALUES ($1, $2, true, now())
    ON CONFLICT (sha256) WHERE trusted DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT FROM stored) AS inserted, EXISTS (SELECT FROM copies) AS registered_by_apq
"""

LIST = """
SELECT sha256, body, trusted, created_at, trusted_at, registered_by
FROM persisted_documents
WHERE trusted OR NOT $1
ORDER BY created_at, sha256, registered_by
"""


async def find(*, conn, sha256: bytes, user_id: int | None) -> tuple[str, bool] | None:
    """The body stored under sha256 that this user may run, and whether it is trusted, or None:
    a trusted document, or one this user registered (none when user_id is None)."""
    row = await conn.fetchrow(FIND, sha256, user_id)
    return None if row is None else (row["body"], row["trusted"])


async def remember(*, conn, body: str, registered_by: int) -> bool:
    """Store a document this user sent, untrusted and for this user alone, evicting the oldest
    past the caps; True when the user's hash now finds it (stored now or before, or trusted).

    Runs its insert every time it is called, even if a process cached the document: rows may
    have been deleted since."""
    if not storable(body) or len(body.encode()) > MAX_REMEMBERED_BYTES:
        return False
    return await conn.fetchval(REMEMBER, digest(body), body, registered_by, MAX_REMEMBERED_PER_USER, MAX_REMEMBERED)


async def trust(*, conn, bodies: list[str]) -> list[Trusted]:
    """Store these documents as trusted (idempotent); what happened to each, in order.

    The caller owns the transaction: a manifest is registered whole or not at all. Every body
    must be `storable`.
    """
    outcomes = []
    for body in bodies:
        row = await conn.fetchrow(TRUST, digest(body), body)
        if not row["inserted"]:
            outcomes.append(Trusted.ALREADY)
        else:
            outcomes.append(Trusted.NOW_TRUSTED if row["registered_by_apq"] else Trusted.NEW)
    return outcomes


async def list_documents(*, conn, trusted_only: bool = False) -> list[Document]:
    """Every stored document (or only the trusted ones), oldest first."""
    return [Document(**row) for row in await conn.fetch(LIST, trusted_only)]
