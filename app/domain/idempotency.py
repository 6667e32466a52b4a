"""Safe retries for scripts: a linkAlerts, mergeIncidents or revertMove call with an idempotency
key runs at most once.

The key is claimed in the same transaction as the move, so two concurrent calls with one key
serialize on the primary key: the second waits for the first to commit, then returns the first
result. The same key with a different input is refused. Keys are kept for at least
KEY_TTL (24 hours); older ones are purged as new ones are claimed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import orjson

from app.domain import activity, linking, merging, models, reverting, triage
from app.domain.errors import Problem, ProblemCode, Refused
from app.domain.incidents import is_visible
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


def _check_key(key: str) -> None:
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


async def _claimed(conn: asyncpg.Connection, viewer: Viewer, key: str, digest: bytes) -> dict | None:
    """None when this call claimed the key (it runs); else the first call's recorded result.
    Refused when the key was used with another input."""
    await conn.execute(PURGE, KEY_TTL)
    if await conn.fetchval(CLAIM, viewer.id, key, digest):
        return None
    row = await conn.fetchrow(FIND, viewer.id, key)
    if row["request_hash"] != digest:
        raise Refused(
            [
                Problem(
                    ProblemCode.INVALID_INPUT, "This idempotencyKey was used with a different input.", "idempotencyKey"
                )
            ]
        )
    return orjson.loads(row["result"])


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
    _check_key(key)
    first = await _claimed(conn, viewer, key, request_hash(alert_ids, target, comment))
    if first is None:
        result = await linking.link_alerts(
            conn=conn, viewer=viewer, alert_ids=alert_ids, target=target, comment=comment
        )
        await conn.execute(RECORD, viewer.id, key, orjson.dumps(_ids(result)).decode())
        return result
    return linking.visible_result(await _replay(conn, first), viewer)


async def once(
    *,
    conn: asyncpg.Connection,
    viewer: Viewer,
    key: str,
    operation: str,
    request: dict,
    run: Callable[[], Awaitable[Any]],
    replay: Callable[[asyncpg.Connection, Viewer, dict], Awaitable[Any]],
) -> Any:
    """mergeIncidents or revertMove under an idempotency key (`request`: its input, canonical);
    runs in the caller's transaction. The first result is recorded as the ids of what it made."""
    _check_key(key)
    digest = hashlib.sha256(orjson.dumps({"operation": operation, **request})).digest()
    first = await _claimed(conn, viewer, key, digest)
    if first is None:
        result = await run()
        await conn.execute(RECORD, viewer.id, key, orjson.dumps(_recorded(result)).decode())
        return result
    return await replay(conn, viewer, first)


def _recorded(result: merging.MergeResult | reverting.RevertResult | triage.TriageResult) -> dict:
    if isinstance(result, triage.TriageResult):
        return {"incident": result.incident.id, "entries": [e.id for e in result.entries]}
    if isinstance(result, merging.MergeResult):
        return {
            "target": result.target.id if result.target else None,
            "sources": [i.id for i in result.sources],
            "entries": [e.id for e in result.entries],
            "move": result.move_id,
        }
    return {
        "move": result.move_id,
        "reverted": result.reverted_id,
        "incidents": [i.id for i in result.incidents],
        "alerts": [a.id for a in result.alerts],
        "entries": [e.id for e in result.entries],
    }


async def replay_merge(conn: asyncpg.Connection, viewer: Viewer, ids: dict) -> merging.MergeResult:
    """The first merge's result: its incidents as they are now, its log entries."""
    wanted = [n for n in [ids["target"], *ids["sources"]] if n is not None]
    incidents = {r["id"]: models.incident(r) for r in await conn.fetch(INCIDENTS, wanted)}
    return merging.visible_result(
        merging.MergeResult(
            target=incidents.get(ids["target"]),
            sources=[incidents[i] for i in ids["sources"]],
            entries=await activity.entries_by_id(conn=conn, ids=ids["entries"]),
            move_id=ids["move"],
        ),
        viewer,
    )


def replay_triage(field: str):
    """The replay of updateIncident (field "id") or addComment ("incidentId"): the first result,
    the incident as it is now and its entries; refused as not found, at the mutation's own
    argument, when the viewer can no longer see the incident."""

    async def replay(conn: asyncpg.Connection, viewer: Viewer, ids: dict) -> triage.TriageResult:
        row = await conn.fetchrow(INCIDENTS, [ids["incident"]])
        incident = models.incident(row)
        if not is_visible(incident, viewer):
            message = f"No incident found with id {incident.node_id}."
            raise Refused([Problem(ProblemCode.INCIDENT_NOT_FOUND, message, field)])
        return triage.TriageResult(incident, await activity.entries_by_id(conn=conn, ids=ids["entries"]))

    return replay


async def replay_revert(conn: asyncpg.Connection, viewer: Viewer, ids: dict) -> reverting.RevertResult:
    """The first revert's result: its incidents and alerts as they are now, its log entries."""
    incidents = [models.incident(r) for r in await conn.fetch(INCIDENTS, ids["incidents"])]
    shown = {i.id for i in incidents if is_visible(i, viewer)}
    alerts = {r["id"]: models.alert(r) for r in await conn.fetch(ALERTS, ids["alerts"])}
    return reverting.RevertResult(
        move_id=ids["move"],
        reverted_id=ids["reverted"],
        incidents=sorted((i for i in incidents if i.id in shown), key=lambda i: i.id),
        alerts=[alerts[a] for a in ids["alerts"] if viewer.can_read(alerts[a].scope)],
        entries=[e for e in await activity.entries_by_id(conn=conn, ids=ids["entries"]) if e.incident_id in shown],
    )


def _ids(result: linking.LinkResult) -> dict:
    return {
        "target": result.target.id,
        "sources": [i.id for i in result.sources],
        "alerts": [a.id for a in result.alerts],
        "entries": [e.id for e in result.entries],
        "move": result.move_id,
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
        move_id=ids.get("move"),  # (keys recorded before moves were: none)
    )
