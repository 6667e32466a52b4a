"""Work a request starts and does not wait for: merging the trigram indexes' pending entries
after a write has committed (app/domain/trigram_indexes.py). At most one at a time in a
process; the server lets a running one finish before it closes its pool."""

from __future__ import annotations

import asyncio
import logging

from app.api.context import Context
from app.domain import trigram_indexes

log = logging.getLogger(__name__)
_running: set[asyncio.Task] = set()  # held so that the tasks are not collected


def merge_pending_index_entries(ctx: Context) -> None:
    if not _running:
        task = asyncio.create_task(_merge(ctx))
        _running.add(task)
        task.add_done_callback(_running.discard)


async def finish(timeout: float = 10.0) -> None:
    if _running:
        await asyncio.wait(list(_running), timeout=timeout)


async def _merge(ctx: Context) -> None:
    try:
        async with ctx.pool.acquire() as conn:
            await trigram_indexes.merge_pending_entries(conn=conn)
    except Exception:  # an optimisation only: autovacuum merges what this leaves
        log.debug("merging pending index entries failed", exc_info=True)
