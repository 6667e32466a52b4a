"""Users, their grants and their API tokens."""

from __future__ import annotations

import hashlib
import re
import secrets

import asyncpg

from app.domain.models import Access
from app.domain.viewers import Viewer

TOKEN_PREFIX = "igt_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")

UPSERT_USER = """
INSERT INTO users (name, can_view_incidents, can_ingest)
VALUES ($1, coalesce($2, true), coalesce($3, false))
ON CONFLICT (name) DO UPDATE
   SET can_view_incidents = coalesce($2, users.can_view_incidents),
       can_ingest = coalesce($3, users.can_ingest)
RETURNING id
"""

UPSERT_GRANT = """
INSERT INTO grants (user_id, scope, access) VALUES ($1, $2, $3::access_level)
ON CONFLICT (user_id, scope) DO UPDATE SET access = excluded.access
"""

INSERT_TOKEN = "INSERT INTO api_tokens (user_id, token_hash) VALUES ($1, $2)"

VIEWER_BY_TOKEN = """
SELECT u.id, u.name, u.can_view_incidents, u.can_ingest,
       coalesce(array_agg(g.scope) FILTER (WHERE g.scope IS NOT NULL), '{}') AS scopes,
       coalesce(array_agg(g.access::text) FILTER (WHERE g.scope IS NOT NULL), '{}') AS accesses
  FROM api_tokens t
  JOIN users u ON u.id = t.user_id
  LEFT JOIN grants g ON g.user_id = u.id
 WHERE t.token_hash = $1 AND t.revoked_at IS NULL
 GROUP BY u.id
"""

REVOKE_TOKENS = """
UPDATE api_tokens SET revoked_at = now()
 WHERE revoked_at IS NULL AND user_id = (SELECT id FROM users WHERE name = $1)
"""


def parse_grant(text: str) -> tuple[str, str]:
    """Parse 'SCOPE=read|write' (scope '*' means every scope)."""
    scope, sep, access = text.rpartition("=")
    if not sep or not scope or access not in tuple(Access):
        raise ValueError(f"grant must look like SCOPE=read or SCOPE=write, got {text!r}")
    return scope, access


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def add_user(
    *,
    conn: asyncpg.Connection,
    name: str,
    grants: list[tuple[str, str]] = (),  # type: ignore[assignment]
    can_view_incidents: bool | None = None,
    can_ingest: bool | None = None,
) -> str:
    """Create the user if new (or update the flags given), upsert grants, return a fresh token.

    An existing user keeps flags and grants not named in this call.
    """
    if not NAME_PATTERN.match(name):
        raise ValueError("user names are 1-64 letters, digits or _ . @ -")
    async with conn.transaction():
        user_id = await conn.fetchval(UPSERT_USER, name, can_view_incidents, can_ingest)
        for scope, access in grants:
            await conn.execute(UPSERT_GRANT, user_id, scope, access)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await conn.execute(INSERT_TOKEN, user_id, hash_token(token))
    return token


async def revoke_tokens(*, conn: asyncpg.Connection, name: str) -> int | None:
    """Revoke every token of a user at once. Returns how many were revoked; None: no such user."""
    if await conn.fetchval("SELECT id FROM users WHERE name = $1", name) is None:
        return None
    status = await conn.execute(REVOKE_TOKENS, name)
    return int(status.split()[-1])


async def viewer_for_token(*, conn: asyncpg.Connection | asyncpg.Pool, token: str) -> Viewer | None:
    """The viewer a bearer token stands for, or None.

    The lookup is by SHA-256 hash through a unique index, so no comparison ever runs on the
    secret itself and its timing tells nothing about stored tokens.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = await conn.fetchrow(VIEWER_BY_TOKEN, hash_token(token))
    if row is None:
        return None
    return Viewer(
        id=row["id"],
        name=row["name"],
        can_view_incidents=row["can_view_incidents"],
        can_ingest=row["can_ingest"],
        grants=dict(zip(row["scopes"], row["accesses"], strict=True)),
    )
