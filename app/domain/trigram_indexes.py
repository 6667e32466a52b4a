"""Upkeep of the trigram indexes (incident names, alert titles, incidents' evidence values).

GIN indexes collect new entries in a pending list, and whichever write finds it full merges all
of it, which at millions of alerts stalls that write for seconds: a move of one alert, as
likely as anything. The bulk writers (ingestion, moves) have the lists merged after they commit
instead (tens of milliseconds, cheaper per entry than writing each into the index), so that
interactive writes find them short. One merge at a time: a write that finds one running leaves
its entries to it or the next. Only the indexes' owner may merge (a member of the owning role,
or a superuser; not the database's owner nor pg_maintain, who may VACUUM): for anyone else
autovacuum does it.

The small moves' entries are not merged after each move (a merge per move cost the analysts'
moves more than it saved them): every server process merges what is pending every MERGE_EVERY
seconds instead (keep_pending_lists_short). Every search reads the whole pending list of each
index it uses, so lists left to fill to gin_pending_list_limit (4 MB) cost each evidence search
5-7 ms at a million incidents, and the write that finds a list full merges it inline.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

log = logging.getLogger(__name__)

MERGE_LOCK = 7_340_002
TRIGRAM_INDEXES = """c.oid IN (to_regclass('alert_titles_search'), to_regclass('incidents_name_search'),
                 to_regclass('incident_evidence_value_search'))"""
MERGE_PENDING_ENTRIES = f"""
SELECT sum(gin_clean_pending_list(c.oid)) FROM pg_class c
 WHERE {TRIGRAM_INDEXES} AND pg_has_role(c.relowner, 'USAGE') AND pg_try_advisory_xact_lock($1)
"""
# A merge waits for no lock (the index's, behind DDL; its list's, behind autovacuum merging it):
# it would hold a connection of the requests' pool meanwhile.
MERGE_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '100ms'"
OWNS_NONE = (
    f"SELECT coalesce(bool_and(NOT pg_has_role(c.relowner, 'USAGE')), true) FROM pg_class c WHERE {TRIGRAM_INDEXES}"
)


async def merge_pending_entries(*, conn: asyncpg.Connection) -> None:
    """Merge the pending entries, outside any writer's transaction (whose row locks would
    otherwise be held while it runs); nothing when another merge is running."""
    async with conn.transaction():
        await conn.execute(MERGE_LOCK_TIMEOUT)
        await conn.fetchval(MERGE_PENDING_ENTRIES, MERGE_LOCK)


MERGE_EVERY = 1.0  # seconds: 16 analysts' moves leave 10-40 pending pages a second


async def keep_pending_lists_short(pool) -> None:
    """Merge the pending entries every MERGE_EVERY seconds, on the pool's connections (the
    server runs it in each process; the merge lock keeps it one at a time). An empty list costs
    a read of the index's metapage. When the server's role owns none of the indexes (only their
    owner may merge them), it says so once and stops."""
    while True:
        try:
            async with pool.acquire() as conn:
                if await conn.fetchval(OWNS_NONE):
                    log.warning(
                        "the database role does not own the trigram indexes: their pending entries are left"
                        " to autovacuum and to the writes that find a list full (docs/operations.md)"
                    )
                    return
            break
        except Exception:
            if _cancelling():
                raise
            await asyncio.sleep(MERGE_EVERY)
    while True:
        try:
            async with pool.acquire() as conn:
                await merge_pending_entries(conn=conn)
        except Exception:  # an optimisation only: autovacuum merges what this leaves
            if _cancelling():
                raise  # (a cancelled merge whose rollback failed: the task must end)
            log.debug("merging pending index entries failed", exc_info=True)
        await asyncio.sleep(MERGE_EVERY)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
