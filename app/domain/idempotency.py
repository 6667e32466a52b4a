"""Safe retries for scripts: a linkAlerts call with an idempotency key runs at most once.

The key is claimed in the same transaction as the move, so two concurrent calls with one key
serialize on the primary key: the second waits for the first to commit, then returns the first
result. The same key with a different input is refused. Keys are kept for at least
KEY_TTL (24 hours); older ones are purged as new ones are claimed.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import asyncpg
import orjson

from app.domain import activity, linking, models
from app.domain.errors import Problem, ProblemCode, Refused
from app.domain.models import ALERT_COLUMNS, INCIDENT_COLUMNS
from app.domain.text import storable
from app.domain.viewers import Viewer

KEY_TTL = timedelta(hours=24)
MAX_KEY = 200

# Expired keys go a few at a time; rows another request is purging are skipped, not waited on.
PURGE = """
DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM idempotency_keys WHERE created_at < now() - $1::interval - interval '1 hour'
     LIMIT 100 FOR UPDATE SKIP LOCKED))
"""
CLAIM = """
INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3)
ON CONFLICT (user_id, key) DO NOTHING RETURNING true
"""
FIND = "SELECT request_hash, result FROM idempotency_keys WHERE user_id = $1 AND key = $2"
RECORD = "UPDATE idempotency_keys SET result = $3 WHERE user_id = $1 AND key = $2"
INCIDENTS = f"SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE i.id = ANY($1::bigint[])"
ALERTS = f"SELECT {ALERT_COLUMNS} FROM alerts a WHERE a.id = ANY($1::bigint[])"


def request_hash(alert_ids: list[str], target: linking.Target, comment: str) -> bytes:
    canonical = {
        "alertIds": list(dict.fromkeys(i.strip() for i in alert_ids)),
        "target": [target.existing_incident_id, target.create_new],
        "comment": comment.strip(),
    }
    return hashlib.sha256(orjson.dumps(canonical)).digest()


async def link_alerts_once(
    *,
    conn: asyncpg.Connection,
    viewer: Viewer,
    key: str,
    alert_ids: list[str],
    target: linking.Target,
    comment: str,
) -> linking.LinkResult:
    """linkAlerts under an idempotency key; runs in the caller's transaction."""
    if not 1 <= len(key) <= MAX_KEY or not storable(key):
        raise Refused(
            [
                Problem(
                    ProblemCode.INVALID_INPUT,
                    f"idempotencyKey must be 1 to {MAX_KEY} characters, without NUL.",
                    "idempotencyKey",
                )
            ]
        )
    digest = request_hash(alert_ids, target, comment)
    await conn.execute(PURGE, KEY_TTL)
    if await conn.fetchval(CLAIM, viewer.id, key, digest):
        result = await linking.link_alerts(
            conn=conn, viewer=viewer, alert_ids=alert_ids, target=target, comment=comment
        )
        await conn.execute(RECORD, viewer.id, key, orjson.dumps(_ids(result)).decode())
        return result
    row = await conn.fetchrow(FIND, viewer.id, key)
    if row["request_hash"] != digest:
        raise Refused(
            [
                Problem(
                    ProblemCode.INVALID_INPUT, "This idempotencyKey was used with a different input.", "idempotencyKey"
                )
            ]
        )
    return linking.visible_result(await _replay(conn, orjson.loads(row["result"])), viewer)


def _ids(result: linking.LinkResult) -> dict:
    return {
        "target": result.target.id,
        "sources": [i.id for i in result.sources],
        "alerts": [a.id for a in result.alerts],
        "entries": [e.id for e in result.entries],
    }


async def _replay(conn: asyncpg.Connection, ids: dict) -> linking.LinkResult:
    """The first call's result: its incidents and alerts as they are now, its log entries."""
    incidents = {r["id"]: models.incident(r) for r in await conn.fetch(INCIDENTS, [ids["target"], *ids["sources"]])}
    alerts = {r["id"]: models.alert(r) for r in await conn.fetch(ALERTS, ids["alerts"])}
    return linking.LinkResult(
        target=incidents[ids["target"]],
        sources=[incidents[i] for i in ids["sources"]],
        alerts=[alerts[i] for i in ids["alerts"]],
        entries=await activity.entries_by_id(conn=conn, ids=ids["entries"]),
    )
