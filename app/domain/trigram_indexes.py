"""Upkeep of the trigram indexes (incident names, alert titles, incidents' evidence values).

GIN indexes collect new entries in a pending list, and whichever write finds it full merges all
of it, which at millions of alerts stalls that write for seconds: a move of one alert, as
likely as anything. The bulk writers (ingestion, moves) have the lists merged after they commit
instead (tens of milliseconds, cheaper per entry than writing each into the index), so that
interactive writes find them short. One merge at a time: a write that finds one running leaves
its entries to it or the next. Only the indexes' owner may merge (as for VACUUM); for anyone
else autovacuum does it.
"""

from __future__ import annotations

import asyncpg

MERGE_LOCK = 7_340_002
MERGE_PENDING_ENTRIES = """
SELECT sum(gin_clean_pending_list(c.oid)) FROM pg_class c
 WHERE c.oid IN (to_regclass('alert_titles_search'), to_regclass('incidents_name_search'),
                 to_regclass('incident_evidence_value_search'))
   AND pg_has_role(c.relowner, 'USAGE') AND pg_try_advisory_xact_lock($1)
"""


async def merge_pending_entries(*, conn: asyncpg.Connection) -> None:
    """Merge the pending entries, outside any writer's transaction (whose row locks would
    otherwise be held while it runs); nothing when another merge is running."""
    async with conn.transaction():
        await conn.fetchval(MERGE_PENDING_ENTRIES, MERGE_LOCK)
