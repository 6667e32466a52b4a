"""Users, their permissions, grants and API tokens, and the audit of every change to them.

Every change locks the user's row first, so changes to one user take turns and the old values
written to access_audit are the ones each change replaced. The audit entries are written in the
transaction of the change.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from app.domain.models import Access
from app.domain.viewers import ALL_SCOPES, SYSTEM_ACTOR, Viewer

TOKEN_PREFIX = "igt_"
MAX_TOKEN_LENGTH = 200
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MAX_SCOPE = 200
MAX_OPERATOR = 200
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class AccessAction(StrEnum):
    """What a change did, as access_audit records it (the database's access_action)."""

    USER_CREATED = "user_created"
    PERMISSION_CHANGED = "permission_changed"
    GRANT_SET = "grant_set"
    GRANT_REMOVED = "grant_removed"
    USER_DISABLED = "user_disabled"
    USER_ENABLED = "user_enabled"
    TOKEN_ISSUED = "token_issued"
    TOKENS_REVOKED = "tokens_revoked"


@dataclass(frozen=True)
class Change:
    """One change to a user: an entry of access_audit."""

    action: AccessAction
    details: dict


@dataclass(frozen=True)
class User:
    """A user as an operator sees them: how many tokens are unrevoked, never the tokens."""

    name: str
    enabled: bool
    can_view_incidents: bool
    can_ingest: bool
    grants: dict[str, str]
    tokens: int


class UserChangeRefused(ValueError):
    """A change to a user was refused as a whole; nothing changed."""


class UserDisabled(UserChangeRefused):
    """The user is disabled, and only enabling them explicitly brings them back."""


CREATE_USER = """
INSERT INTO users (name, can_view_incidents, can_ingest)
VALUES ($1, coalesce($2, true), coalesce($3, false))
ON CONFLICT (name) DO NOTHING
RETURNING id, enabled, can_view_incidents, can_ingest
"""

LOCK_USER = "SELECT id, enabled, can_view_incidents, can_ingest FROM users WHERE name = $1 FOR UPDATE"

SET_PERMISSIONS = "UPDATE users SET can_view_incidents = $2, can_ingest = $3 WHERE id = $1"

SET_ENABLED = "UPDATE users SET enabled = $2 WHERE id = $1"

GRANTS_OF = "SELECT scope, access::text FROM grants WHERE user_id = $1"

UPSERT_GRANT = """
INSERT INTO grants (user_id, scope, access) VALUES ($1, $2, $3::access_level)
ON CONFLICT (user_id, scope) DO UPDATE SET access = excluded.access
"""

DELETE_GRANTS = "DELETE FROM grants WHERE user_id = $1 AND scope = ANY($2::text[])"

INSERT_TOKEN = "INSERT INTO api_tokens (user_id, token_hash) VALUES ($1, $2) RETURNING id"

UNREVOKED_TOKENS = "SELECT count(*) FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL"

REVOKE_TOKENS = "UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL"

AUDIT = """
INSERT INTO access_audit (operator, action, user_id, user_name, details)
VALUES ($1, $2::access_action, $3, $4, $5::jsonb)
"""

# One statement, by the token hash's unique index, for every request the process's token cache
# (app/token_cache.py) cannot answer. A disabled user's tokens find no row.
VIEWER_BY_TOKEN = """
SELECT u.id, u.name, u.can_view_incidents, u.can_ingest,
       coalesce(array_agg(g.scope) FILTER (WHERE g.scope IS NOT NULL), '{}') AS scopes,
       coalesce(array_agg(g.access::text) FILTER (WHERE g.scope IS NOT NULL), '{}') AS accesses
  FROM api_tokens t
  JOIN users u ON u.id = t.user_id
  LEFT JOIN grants g ON g.user_id = u.id
 WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.enabled
 GROUP BY u.id
"""

USERS = """
SELECT u.name, u.enabled, u.can_view_incidents, u.can_ingest,
       ARRAY(SELECT g.scope FROM grants g WHERE g.user_id = u.id ORDER BY g.scope) AS scopes,
       ARRAY(SELECT g.access::text FROM grants g WHERE g.user_id = u.id ORDER BY g.scope) AS accesses,
       (SELECT count(*) FROM api_tokens t WHERE t.user_id = u.id AND t.revoked_at IS NULL)::int AS tokens
  FROM users u
 WHERE cardinality($1::text[]) = 0 OR u.name = ANY($1::text[])
 ORDER BY u.name
"""

# Each lookup is a probe of alerts' (scope, external_id) unique index.
SCOPES_WITHOUT_ALERTS = """
SELECT s.scope FROM unnest($1::text[]) WITH ORDINALITY AS s(scope, n)
 WHERE NOT EXISTS (SELECT 1 FROM alerts a WHERE a.scope = s.scope)
 ORDER BY s.n
"""


def parse_grant(text: str) -> tuple[str, str]:
    """Parse 'SCOPE=read|write' (scope '*' means every scope)."""
    scope, sep, access = text.rpartition("=")
    if not sep or not scope or access not in tuple(Access):
        raise ValueError(f"grant must look like SCOPE=read or SCOPE=write, got {text!r}")
    if len(scope) > MAX_SCOPE:
        raise ValueError(f"scopes are at most {MAX_SCOPE} characters, got {len(scope)}")
    return scope, access


def check_operator(operator: str) -> None:
    """Who makes a change, as access_audit records it: 1-200 characters, none of them a control character."""
    if len(operator) > MAX_OPERATOR or not operator.strip() or CONTROL_CHARACTERS.search(operator):
        raise UserChangeRefused(
            f"the operator must be 1-{MAX_OPERATOR} characters without control characters, got {operator!r}"
        )


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def add_user(
    *,
    conn: asyncpg.Connection,
    name: str,
    grants: Iterable[tuple[str, str]] = (),
    can_view_incidents: bool | None = None,
    can_ingest: bool | None = None,
    operator: str = SYSTEM_ACTOR,
) -> str:
    """Create the user if new (or change the permissions given), set grants, return a fresh token.

    An existing user keeps permissions and grants not named in this call. A disabled user is
    refused with UserDisabled: only set_enabled brings a user back. `operator` defaults to
    'system' for programs (tests, the benchmark) that make their users themselves.
    """
    if not NAME_PATTERN.match(name):
        raise UserChangeRefused("user names are 1-64 letters, digits or _ . @ -")
    check_operator(operator)
    grants = _distinct(grants)
    async with conn.transaction():
        user = await conn.fetchrow(CREATE_USER, name, can_view_incidents, can_ingest)
        if user is not None:
            changes = [
                Change(AccessAction.USER_CREATED, {"queue": user["can_view_incidents"], "ingest": user["can_ingest"]})
            ]
        else:
            user = await _lock_user(conn, name)
            if not user["enabled"]:
                raise UserDisabled(f"user {name!r} is disabled; nothing changed and no token was made")
            changes = await _set_permissions(conn, user, can_view_incidents, can_ingest)
        changes += await _set_grants(conn, user["id"], grants)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = await conn.fetchval(INSERT_TOKEN, user["id"], hash_token(token))
        changes.append(Change(AccessAction.TOKEN_ISSUED, {"token_id": token_id}))
        await _audit(conn, operator, user["id"], name, changes)
    return token


async def set_grants(
    *, conn: asyncpg.Connection, name: str, grants: Iterable[tuple[str, str]], operator: str
) -> list[Change]:
    """Add grants to an existing user or change their access; grants not named stay."""
    check_operator(operator)
    grants = _distinct(grants)
    async with conn.transaction():
        user = await _lock_user(conn, name)
        changes = await _set_grants(conn, user["id"], grants)
        await _audit(conn, operator, user["id"], name, changes)
    return changes


async def remove_grants(*, conn: asyncpg.Connection, name: str, scopes: Iterable[str], operator: str) -> list[Change]:
    """Remove grants of a user. A scope the user has no grant on refuses the whole call.

    Removing '*' removes that grant only: grants on single scopes stay.
    """
    check_operator(operator)
    scopes = list(dict.fromkeys(scopes))
    async with conn.transaction():
        user = await _lock_user(conn, name)
        current = dict(await conn.fetch(GRANTS_OF, user["id"]))
        missing = [scope for scope in scopes if scope not in current]
        if missing:
            held = ", ".join(f"{scope}={access}" for scope, access in sorted(current.items())) or "none"
            raise UserChangeRefused(
                f"user {name!r} has no grant on {', '.join(map(repr, missing))} (their grants: {held}); nothing changed"
            )
        await conn.execute(DELETE_GRANTS, user["id"], scopes)
        changes = [Change(AccessAction.GRANT_REMOVED, {"scope": scope, "old": current[scope]}) for scope in scopes]
        await _audit(conn, operator, user["id"], name, changes)
    return changes


async def set_permissions(
    *,
    conn: asyncpg.Connection,
    name: str,
    can_view_incidents: bool | None = None,
    can_ingest: bool | None = None,
    operator: str,
) -> list[Change]:
    """Give or take the queue and ingest permissions of an existing user (None: unchanged)."""
    check_operator(operator)
    async with conn.transaction():
        user = await _lock_user(conn, name)
        changes = await _set_permissions(conn, user, can_view_incidents, can_ingest)
        await _audit(conn, operator, user["id"], name, changes)
    return changes


async def set_enabled(*, conn: asyncpg.Connection, name: str, enabled: bool, operator: str) -> list[Change]:
    """Disable a user (their tokens stop authenticating at once) or enable them again.

    Disabling revokes nothing: enabling makes the user's unrevoked tokens work again.
    """
    check_operator(operator)
    async with conn.transaction():
        user = await _lock_user(conn, name)
        if user["enabled"] == enabled:
            return []
        await conn.execute(SET_ENABLED, user["id"], enabled)
        tokens = await conn.fetchval(UNREVOKED_TOKENS, user["id"])
        action = AccessAction.USER_ENABLED if enabled else AccessAction.USER_DISABLED
        changes = [Change(action, {"tokens": tokens})]
        await _audit(conn, operator, user["id"], name, changes)
    return changes


async def revoke_tokens(*, conn: asyncpg.Connection, name: str, operator: str = SYSTEM_ACTOR) -> int | None:
    """Revoke every token of a user at once. Returns how many were revoked; None: no such user."""
    check_operator(operator)
    async with conn.transaction():
        user = await conn.fetchrow(LOCK_USER, name)
        if user is None:
            return None
        revoked = int((await conn.execute(REVOKE_TOKENS, user["id"])).split()[-1])
        if revoked:
            await _audit(conn, operator, user["id"], name, [Change(AccessAction.TOKENS_REVOKED, {"tokens": revoked})])
    return revoked


async def list_users(*, conn: asyncpg.Connection, names: Iterable[str] = ()) -> list[User]:
    """Every user, disabled ones included (or those named), by name."""
    rows = await conn.fetch(USERS, list(names))
    return [
        User(
            name=r["name"],
            enabled=r["enabled"],
            can_view_incidents=r["can_view_incidents"],
            can_ingest=r["can_ingest"],
            grants=dict(zip(r["scopes"], r["accesses"], strict=True)),
            tokens=r["tokens"],
        )
        for r in rows
    ]


async def scopes_without_alerts(*, conn: asyncpg.Connection, scopes: Iterable[str]) -> list[str]:
    """The scopes ('*' aside) no alert has (yet): a grant on one shows nothing until a source sends there."""
    scopes = [scope for scope in scopes if scope != ALL_SCOPES]
    return [r["scope"] for r in await conn.fetch(SCOPES_WITHOUT_ALERTS, scopes)] if scopes else []


def well_formed(token: str) -> bool:
    """Whether the token could be one of ours (a prefix, a bounded length), before any lookup."""
    return token.startswith(TOKEN_PREFIX) and len(token) <= MAX_TOKEN_LENGTH


async def viewer_for_token(*, conn: asyncpg.Connection | asyncpg.Pool, token: str) -> Viewer | None:
    """The viewer a bearer token stands for, or None (unknown, revoked, or its user disabled).

    The lookup is by SHA-256 hash through a unique index, so no comparison ever runs on the
    secret itself and its timing tells nothing about stored tokens.
    """
    if not well_formed(token):
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


def _distinct(grants: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    grants = list(grants)
    seen: set[str] = set()
    for scope, _ in grants:
        if scope in seen:
            raise UserChangeRefused(f"scope {scope!r} is named twice; nothing changed")
        seen.add(scope)
    return grants


async def _lock_user(conn: asyncpg.Connection, name: str) -> asyncpg.Record:
    user = await conn.fetchrow(LOCK_USER, name)
    if user is None:
        raise UserChangeRefused(f"no user named {name!r}; nothing changed")
    return user


async def _set_permissions(
    conn: asyncpg.Connection, user: asyncpg.Record, can_view_incidents: bool | None, can_ingest: bool | None
) -> list[Change]:
    old = {"queue": user["can_view_incidents"], "ingest": user["can_ingest"]}
    new = {
        "queue": old["queue"] if can_view_incidents is None else can_view_incidents,
        "ingest": old["ingest"] if can_ingest is None else can_ingest,
    }
    if new == old:
        return []
    await conn.execute(SET_PERMISSIONS, user["id"], new["queue"], new["ingest"])
    return [
        Change(
            AccessAction.PERMISSION_CHANGED, {"permission": permission, "old": old[permission], "new": new[permission]}
        )
        for permission in ("queue", "ingest")
        if old[permission] != new[permission]
    ]


async def _set_grants(conn: asyncpg.Connection, user_id: int, grants: list[tuple[str, str]]) -> list[Change]:
    current = dict(await conn.fetch(GRANTS_OF, user_id)) if grants else {}
    changes = []
    for scope, access in grants:
        if current.get(scope) != access:
            await conn.execute(UPSERT_GRANT, user_id, scope, access)
            changes.append(Change(AccessAction.GRANT_SET, {"scope": scope, "old": current.get(scope), "new": access}))
    return changes


async def _audit(conn: asyncpg.Connection, operator: str, user_id: int, name: str, changes: list[Change]) -> None:
    if changes:
        await conn.executemany(
            AUDIT, [(operator, change.action, user_id, name, json.dumps(change.details)) for change in changes]
        )
