"""Persisted documents: texts stored under the SHA-256 of their UTF-8 bytes.

Two ways in. A client's first use registers a document (Apollo's automatic persisted queries,
`remember`), untrusted; an operator registers a client's manifest (`trust`), trusted. A row's
body never changes, so any process may cache it by its hash.

What bounds storage: each remembered body is at most the request body limit (MAX_BODY_BYTES)
and MAX_REMEMBERED_BYTES, and at most MAX_REMEMBERED untrusted documents are kept; past either,
the document still runs but is not stored. Untrusted rows may be deleted at any time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

MAX_REMEMBERED = 10_000
MAX_REMEMBERED_BYTES = 100_000


def digest(body: str) -> bytes:
    """The document's id: the SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(body.encode()).digest()


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


FIND = "SELECT body, trusted FROM persisted_documents WHERE sha256 = $1"

# ON CONFLICT DO NOTHING: a document registered by two processes at once is the same row.
# The count is approximate under concurrency (each insert sees the others' rows only once they
# commit), which is close enough for a cap that only bounds abuse.
REMEMBER = """
WITH stored AS (
    INSERT INTO persisted_documents (sha256, body, registered_by)
    SELECT $1, $2, $3
    WHERE (SELECT count(*) FROM persisted_documents WHERE NOT trusted) < $4
    ON CONFLICT (sha256) DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT FROM stored) OR EXISTS (SELECT FROM persisted_documents WHERE sha256 = $1)
"""

TRUST = """
INSERT INTO persisted_documents AS d (sha256, body, trusted, trusted_at)
VALUES ($1, $2, true, now())
ON CONFLICT (sha256) DO UPDATE SET trusted = true, trusted_at = coalesce(d.trusted_at, now())
RETURNING (xmax = 0) AS inserted,
    (SELECT trusted FROM persisted_documents WHERE sha256 = $1) AS was_trusted
"""

LIST = """
SELECT sha256, body, trusted, created_at, trusted_at, registered_by
FROM persisted_documents
WHERE trusted OR NOT $1
ORDER BY created_at, sha256
"""


async def find(*, conn, sha256: bytes) -> tuple[str, bool] | None:
    """The body stored under sha256 and whether it is trusted, or None."""
    row = await conn.fetchrow(FIND, sha256)
    return None if row is None else (row["body"], row["trusted"])


async def remember(*, conn, body: str, registered_by: int) -> bool:
    """Store a document a client sent, untrusted, unless a bound says no; True when it is
    stored (now or before; False too, rarely, when another process stores it at this moment)."""
    if len(body.encode()) > MAX_REMEMBERED_BYTES:
        return False
    return await conn.fetchval(REMEMBER, digest(body), body, registered_by, MAX_REMEMBERED)


async def trust(*, conn, bodies: list[str]) -> list[Trusted]:
    """Store these documents as trusted (idempotent); what happened to each, in order.

    The caller owns the transaction: a manifest is registered whole or not at all.
    """
    outcomes = []
    for body in bodies:
        row = await conn.fetchrow(TRUST, digest(body), body)
        if row["inserted"]:
            outcomes.append(Trusted.NEW)
        else:
            outcomes.append(Trusted.ALREADY if row["was_trusted"] else Trusted.NOW_TRUSTED)
    return outcomes


async def list_documents(*, conn, trusted_only: bool = False) -> list[Document]:
    """Every stored document (or only the trusted ones), oldest first."""
    return [Document(**row) for row in await conn.fetch(LIST, trusted_only)]
