"""The titles' search in a table of its own (db/migrations/0029): a move writes nothing into it,
and it holds every alert's title as the alert does."""

from __future__ import annotations

import asyncio
import re
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from app.config import ROOT
from app.domain import alerts, trigram_indexes
from app.domain.viewers import Viewer
from tests import invariants
from tests.conftest import alert_in, inc
from tests.test_queries import ALERTS
from tests.test_revert import link


async def _titles(api, search: str, **flt) -> list[str]:
    page = (await api(ALERTS, filter={"search": search, **flt}, first=50))["alerts"]
    return [e["node"]["title"] for e in page["edges"]]


async def test_no_index_of_alerts_is_a_gin_index(pool):
    """A move rewrites its alerts' rows (incident_id is indexed, so no update is HOT) and so adds an
    entry to every index of alerts: a trigram index there would take some 40 for each alert moved,
    whose pending-list merges and full-page images were the slow moves of issue 18."""
    methods = await pool.fetch(
        "SELECT c.relname, am.amname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
        " JOIN pg_am am ON am.oid = c.relam WHERE x.indrelid = 'alerts'::regclass"
    )
    assert methods and all(r["amname"] == "btree" for r in methods), methods


async def test_a_move_leaves_the_titles_alone_and_the_search_follows_the_alert(admin, ingest, pool):
    a, b = await ingest(alert_in("a", "Beacon to rare domain"), alert_in("b", "Credential dump", category="Other"))
    version = "SELECT xmin::text FROM alert_titles WHERE alert_id = $1"
    before = await pool.fetchval(version, a.id)
    await link(admin, [a.id], existingIncidentId=inc(b.incident_id))
    assert await pool.fetchval(version, a.id) == before  # the row was not written again
    assert await _titles(admin, "rare beacon", incidentId=inc(b.incident_id)) == ["Beacon to rare domain"]
    assert await _titles(admin, "rare beacon", incidentId=inc(a.incident_id)) == []
    await invariants.assert_invariants(pool)


async def test_a_changed_title_is_searched_as_it_now_reads(admin, ingest, pool):
    (a,) = await ingest(alert_in("a", "Suspicious logon"))
    await pool.execute("UPDATE alerts SET title = 'Impossible travel' WHERE id = $1", a.id)
    assert await _titles(admin, "impossible") == ["Impossible travel"]
    assert await _titles(admin, "suspicious") == []
    assert await pool.fetch(invariants.WRONG_TITLES) == []


async def test_emptying_the_alerts_empties_the_search(ingest, pool):
    await ingest(alert_in("a"), alert_in("b"))
    await pool.execute("TRUNCATE alerts, incidents CASCADE")
    assert await pool.fetchval("SELECT count(*) FROM alert_titles") == 0


UNDO_0029 = """
DROP TRIGGER alerts_titles ON alerts; DROP TRIGGER alerts_title_changed ON alerts;
DROP TRIGGER alerts_titles_truncate ON alerts;
DROP FUNCTION add_alert_titles(), change_alert_title(), alerts_titles_truncated();
DROP TABLE alert_titles;
CREATE INDEX alerts_title_trgm ON alerts USING gin (title gin_trgm_ops);
"""


async def test_the_migration_searches_the_titles_of_the_alerts_already_there(ingest, pool):
    await ingest(alert_in("a", "Beacon to rare domain"), alert_in("b", "Credential dump", category="Other"))
    migration = (ROOT / "db" / "migrations" / "0029_alert_title_search.sql").read_text()
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(UNDO_0029)  # the database as the version before left it
            await conn.execute(migration)
            assert await conn.fetch(invariants.WRONG_TITLES) == []
            assert await conn.fetchval("SELECT count(*) FROM alert_titles") == 2
            assert await conn.fetchval("SELECT to_regclass('alerts_title_trgm')") is None
        finally:
            await transaction.rollback()


async def test_a_search_by_title_alone_finds_words_with_and_without_trigrams(admin, ingest):
    """A word of two letters has no trigram, so the search is by title alone (no evidence), and the
    other word may be found through alert_titles' index: both must hold."""
    await ingest(alert_in("a", "Beacon to rare domain"), alert_in("b", "Beacon from host", category="Other"))
    assert await _titles(admin, "to beacon") == ["Beacon to rare domain"]
    assert await _titles(admin, "BEACON TO") == ["Beacon to rare domain"]
    assert await _titles(admin, "to dump") == []
    page = (await admin(ALERTS, filter={"search": "to beacon"}, first=50))["alerts"]
    assert page["totalCount"] == 1


async def test_a_server_whose_role_owns_no_trigram_index_says_so_once_and_stops_merging(database_url, pool, caplog):
    """Only an index's owner may merge its list: under another role every merge would be skipped
    in silence, the lists left to fill (docs/operations.md)."""
    role = f"ig_not_owner_{uuid.uuid4().hex[:12]}"
    await pool.execute(f"CREATE ROLE {role} LOGIN")
    try:
        url = urlsplit(database_url)
        as_role = urlunsplit(url._replace(netloc=f"{role}@{url.netloc.rpartition('@')[2]}"))
        other = await asyncpg.create_pool(as_role, min_size=1, max_size=1)
        try:
            await asyncio.wait_for(trigram_indexes.keep_pending_lists_short(other), 10)  # it returns
        finally:
            await other.close()
    finally:
        await pool.execute(f"DROP ROLE {role}")
    assert "does not own the trigram indexes" in caplog.text


async def test_the_ownership_check_names_the_indexes_the_merge_names(pool):
    assert await pool.fetchval(trigram_indexes.OWNS_NONE) is False  # the tests' role owns them
    assert re.findall(r"to_regclass\('(\w+)'\)", trigram_indexes.OWNS_NONE) == re.findall(
        r"to_regclass\('(\w+)'\)", trigram_indexes.MERGE_PENDING_ENTRIES
    )


async def test_every_gin_index_has_its_pending_entries_merged_after_bulk_writes(pool):
    """trigram_indexes names its indexes with to_regclass, which skips a name that is not there:
    a renamed or new GIN index would silently be left to inline merges (issue 18's slow moves)."""
    named = set(re.findall(r"to_regclass\('(\w+)'\)", trigram_indexes.MERGE_PENDING_ENTRIES))
    gin = await pool.fetch(
        "SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_am am ON am.oid = c.relam"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE am.amname = 'gin' AND n.nspname = current_schema()"
    )
    assert {r["relname"] for r in gin} == named


PENDING_PAGES = "SELECT gin_clean_pending_list(to_regclass($1))"  # merges, and says how many pages were pending


async def test_a_server_merges_the_pending_entries_of_small_writes(monkeypatch, settings, pool, ingest):
    """A write too small to have them merged after it leaves its entries pending, where every
    search would read them until the list is full: the server merges them every MERGE_EVERY s."""
    from app.server import create_app

    indexes = ["incidents_name_search", "incident_evidence_value_search", "alert_titles_search"]
    monkeypatch.setattr(trigram_indexes, "MERGE_EVERY", 0.05)
    app = create_app(settings)
    async with pool.acquire() as holder, app.router.lifespan_context(app):
        # Given every merge held back (the server's, and those of other servers on this database)
        await holder.execute("SELECT pg_advisory_lock($1)", trigram_indexes.MERGE_LOCK)
        try:
            await ingest(alert_in("held", "Beacon held back", entities=[("device", "srv-held-1")]))
            await asyncio.sleep(0.3)
            assert all([await holder.fetchval(PENDING_PAGES, index) > 0 for index in indexes])
        finally:  # (the pool keeps its sessions: a lock left held would stop every later merge)
            await holder.execute("SELECT pg_advisory_unlock($1)", trigram_indexes.MERGE_LOCK)
        # When the lock is free, the same write's entries are merged within a few rounds
        await ingest(alert_in("merged", "Beacon merged", entities=[("device", "srv-merged-1")]))
        await asyncio.sleep(0.5)
        assert [await holder.fetchval(PENDING_PAGES, index) for index in indexes] == [0, 0, 0]


def test_the_titles_index_is_asked_only_by_a_search_by_title_alone():
    """In an OR with the evidence (one incident's alerts, or a count over every alert) the alerts
    are read and each title with its row; a probe of alert_titles would only cost. By title alone
    (a word without trigrams) its index may serve."""
    viewer = Viewer(id=1, name="v", can_view_incidents=True, can_ingest=False, grants={"*": "read"})
    with_evidence = alerts._filtered(viewer, alerts.AlertFilter(search="beacon rare"))
    assert "alert_titles" not in with_evidence.conditions and "alert_entities" in with_evidence.conditions
    by_title = alerts._filtered(viewer, alerts.AlertFilter(search="to beacon"))
    assert "alert_titles" in by_title.conditions and "alert_entities" not in by_title.conditions
    assert by_title.values.count("%beacon%") == 1  # one parameter, used inline and in the probe
    only_short = alerts._filtered(viewer, alerts.AlertFilter(search="to"))
    assert "alert_titles" not in only_short.conditions
