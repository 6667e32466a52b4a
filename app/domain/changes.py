"""The activity log as a stream of changes: one change per incident per committed transaction.

Every transaction that changes incidents writes their activity log in the same transaction, and
each entry records the writing transaction's id (`xact`, db/migrations/0015). The stream is the
entries in (xact, id) order, grouped into one change per (xact, incident), each change placed by
its first entry.

Why transaction ids and not entry ids: entry ids are handed out when rows are inserted, not when
their transaction commits, so a reader that remembered "entries up to 41 delivered" would skip
entry 40 of a transaction that committed after 41's. Instead a reader only reads transactions
below the horizon (`horizon`): the lowest id of a transaction of this database still running.
Every transaction below it has ended, so what the reader sees below it is final and no later
commit can land behind its position. A long transaction holds the stream back until it ends
(its changes and everyone else's then arrive at once); read-only transactions have no id and
hold back nothing.

Transactions on one incident that conflict are serialized by the incident's row lock, which the
writer takes with its first write; so their xact order is their commit order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

import asyncpg

from app.domain import models, pagination
from app.domain.errors import InvalidArgument
from app.domain.models import ENTRY_COLUMNS, ENTRY_FROM, ActivityEntry

Conn = asyncpg.Connection | asyncpg.Pool

# The horizon, read in a statement of its own before the entries are read (a later snapshot): a
# transaction running when this statement looked is below it only if it ended before, and then
# the next statement sees its rows. pg_snapshot_xmin would also wait for other databases'
# transactions; pg_stat_activity says which of the snapshot's running ones are this database's.
HORIZON = """
SELECT coalesce(
         (SELECT min(x) FROM pg_snapshot_xip(s.snap) x
           WHERE x::text::bigint % 4294967296 IN (
                 SELECT a.backend_xid::text::bigint FROM pg_stat_activity a
                  WHERE a.datname = current_database() AND a.backend_xid IS NOT NULL)),
         pg_snapshot_xmax(s.snap))::text
  FROM (SELECT pg_current_snapshot() AS snap) s
"""

# Entries of the transactions from $1 below the horizon $2 (final), in stream order, whole (the
# feed delivers them); then the first entry a transaction at or above the horizon committed, if any
# (not final: one such row says that changes wait for the horizon to move, without reading them).
ENTRIES_FROM = f"""
(SELECT l.xact::text AS xact, true AS final, {ENTRY_COLUMNS}
   FROM {ENTRY_FROM}
  WHERE l.xact IS NOT NULL AND l.xact >= $1::text::xid8 AND l.xact < $2::text::xid8
  ORDER BY l.xact, l.id
  LIMIT $3)
UNION ALL
(SELECT l.xact::text, false, {ENTRY_COLUMNS}
   FROM {ENTRY_FROM}
  WHERE l.xact IS NOT NULL AND l.xact >= greatest($1::text::xid8, $2::text::xid8)
  ORDER BY l.xact, l.id
  LIMIT 1)
"""
ENTRIES_OF_TRANSACTION = f"""
SELECT l.xact::text AS xact, {ENTRY_COLUMNS}
  FROM {ENTRY_FROM} WHERE l.xact = $1::text::xid8 ORDER BY l.id
"""
# Entries below $2 from the position $1 on: of every incident (the stream's index), and of the
# incidents $4 (their logs' index, for an old cursor). Two statements: one with `$4 IS NULL OR`
# walks the stream's whole range under a generic plan (0.2 s at 600,000 entries).
ENTRIES_BETWEEN = """
SELECT l.xact::text AS xact, l.id, l.incident_id
  FROM activity_log l
 WHERE l.xact IS NOT NULL AND l.xact >= $1::text::xid8 AND l.xact < $2::text::xid8
 ORDER BY l.xact, l.id
 LIMIT $3
"""
ENTRIES_BETWEEN_OF = """
SELECT l.xact::text AS xact, l.id, l.incident_id
  FROM activity_log l
 WHERE l.incident_id = ANY($4::bigint[]) AND l.xact IS NOT NULL AND l.xact >= $1::text::xid8
   AND l.xact < $2::text::xid8
 ORDER BY l.xact, l.id
 LIMIT $3
"""
CURSOR_ENTRY = "SELECT created_at, xact::text AS xact FROM activity_log WHERE id = $1"

# Rows read at once; a transaction with more is read whole (ENTRIES_OF_TRANSACTION).
BATCH_ROWS = 5000


@dataclass(frozen=True, order=True)
class Position:
    """A place in the stream: a change's (transaction, first entry)."""

    xact: int
    entry_id: int

    @cached_property
    def cursor(self) -> str:
        """Sealed (pagination.ensure_sealing_key first): it names an entry of an incident the
        holder may no longer see, so it must say nothing and be unforgeable. Made once per change
        for every subscription of the process (sealing is deterministic: the same for each)."""
        return pagination.seal("chg", str(self.xact), self.entry_id)


@dataclass(frozen=True)
class Change:
    """What one committed transaction wrote in one incident's log."""

    position: Position
    incident_id: int
    entry_ids: tuple[int, ...]


@dataclass(frozen=True)
class Read:
    """Changes read from the stream, and where the next read starts (every transaction below
    `next_xact` has been read). `more`: read again soon: committed changes lie beyond, held back
    by a transaction still running, or the batch was full."""

    changes: list[Change]
    next_xact: int
    more: bool
    # The rows of the changes' entries by id, whole (read_from; read_between does not read them):
    # `entry` makes one an ActivityEntry, for the changes a reader wants.
    entries: dict[int, asyncpg.Record] = field(default_factory=dict)


def decode_cursor(cursor: str, argument: str = "after") -> Position:
    """The position a change's cursor names; InvalidArgument when it is not one (ensure_sealing_key first)."""
    xact, entry_id = pagination.unseal(cursor, "chg", (str, int), argument)
    if not xact.isdigit() or len(xact) > 20:
        raise InvalidArgument(argument, f"{argument} is not a cursor from incidentChanges")
    return Position(int(xact), entry_id)


class CursorExpired(InvalidArgument):
    """A cursor older than the stream keeps (or of an entry that is gone)."""

    code = "CURSOR_EXPIRED"


async def check_cursor(*, conn: Conn, position: Position, keep: timedelta, now: datetime) -> None:
    """Refuse a cursor whose change is older than `keep`, or that names no change of the stream.

    One refusal for both: which one it is would tell whether an entry the caller may not see
    exists, and how old it is."""
    row = await conn.fetchrow(CURSOR_ENTRY, position.entry_id)
    if row is None or row["xact"] is None or int(row["xact"]) != position.xact or row["created_at"] < now - keep:
        hours = keep.total_seconds() / 3600
        raise CursorExpired(
            "after",
            f"after is not a cursor this server gave, or it is older than the {hours:g} hours of changes a "
            "subscription may resume from: reload, then subscribe without it",
        )


async def horizon(*, conn: Conn) -> int:
    """The stream's horizon now: every transaction below it has ended."""
    return int(await conn.fetchval(HORIZON))


def _changes(rows: list) -> list[Change]:
    grouped: dict[tuple[int, int], list[int]] = {}
    for r in rows:
        grouped.setdefault((int(r["xact"]), r["incident_id"]), []).append(r["id"])
    return [
        Change(Position(xact, min(entry_ids)), incident_id, tuple(sorted(entry_ids)))
        for (xact, incident_id), entry_ids in sorted(grouped.items(), key=lambda kv: (kv[0][0], min(kv[1])))
    ]


async def read_from(*, conn: Conn, xact: int) -> Read:
    """The final changes of transactions from `xact` on (as many as one batch holds).

    Only rows below the horizon are read: while a running transaction holds the horizon back, a
    read costs the horizon and an index probe, however many changes wait behind it."""
    limit = await horizon(conn=conn)
    rows = await conn.fetch(ENTRIES_FROM, str(xact), str(limit), BATCH_ROWS)
    final = sorted((r for r in rows if r["final"]), key=lambda r: (int(r["xact"]), r["id"]))
    held_back = len(final) < len(rows)
    if len(final) < BATCH_ROWS:
        # Every transaction below the horizon was read whole.
        return _read(final, max(limit, xact), held_back)
    # A full batch: its last transaction may continue beyond it. Read it whole when it is the only one.
    last = int(final[-1]["xact"])
    if int(final[0]["xact"]) == last:
        return _read(await conn.fetch(ENTRIES_OF_TRANSACTION, str(last)), last + 1, True)
    return _read([r for r in final if int(r["xact"]) != last], last, True)


def _read(rows: list, next_xact: int, more: bool) -> Read:
    return Read(_changes(rows), next_xact, more, {r["id"]: r for r in rows})


def entry(row: asyncpg.Record) -> ActivityEntry:
    """An entry's row of a Read as an ActivityEntry."""
    return models.entry({k: v for k, v in row.items() if k not in ("xact", "final")})


async def read_between(*, conn: Conn, after: Position, below_xact: int, incident_ids: list[int] | None) -> Read:
    """The next changes after `after` of transactions below `below_xact` (final: the caller's feed
    has read up to there), of those incidents (None: all), in stream order: one batch (a
    transaction with more entries whole). `more`: read again from `next_xact`."""
    start = after.xact
    while start < below_xact:
        if incident_ids is None:
            rows = await conn.fetch(ENTRIES_BETWEEN, str(start), str(below_xact), BATCH_ROWS)
        else:
            rows = await conn.fetch(ENTRIES_BETWEEN_OF, str(start), str(below_xact), BATCH_ROWS, incident_ids)
        last = int(rows[-1]["xact"]) if rows else below_xact
        if len(rows) == BATCH_ROWS:
            if int(rows[0]["xact"]) == last:
                rows = [r for r in await conn.fetch(ENTRIES_OF_TRANSACTION, str(last)) if _wanted(r, incident_ids)]
                start = last + 1
            else:
                rows = [r for r in rows if int(r["xact"]) != last]
                start = last
        else:
            start = below_xact
        found = [c for c in _changes(rows) if c.position > after]
        if found:
            return Read(found, start, start < below_xact)
    return Read([], below_xact, False)


def _wanted(row, incident_ids: list[int] | None) -> bool:
    return incident_ids is None or row["incident_id"] in incident_ids
