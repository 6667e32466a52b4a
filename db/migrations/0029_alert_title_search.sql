-- Writes that are fast every time (issue 18): the alerts' titles are searched in a table of
-- their own, so that a move no longer writes into the title's trigram index.
--
-- A move changes alerts.incident_id, which alerts_incident indexes, so the update is never HOT
-- and every index of alerts gets an entry for the row's new version: the title's trigram index
-- about 40 (one per trigram of the title) for each alert moved, 4,000 for a move of 100, though
-- no title changed. Those entries filled the index's pending list, whose merges were the slow
-- moves; and the first merge after a checkpoint writes a full-page image of every page it
-- touches: of the 26 MB of WAL written while the bench's second move after one ran, 22 MB were
-- images of that index's pages, from the merge the first had set off (README, Benchmarks,
-- "Soak, stalls and repeatability"). Titles never change
-- when an alert moves, so here they are indexed in alert_titles, which only ingestion writes,
-- and the index on alerts goes: a move now writes into four btree indexes of alerts and into no
-- GIN index. Measured B/A/B/A at a million incidents: 14-24% less WAL for the moves, more idle
-- CPU, and no change in their time or rate beyond the runs' spread; no vacuum of alerts reads
-- the title index any more.
--
-- alerts.title stays what every read shows; alert_titles is kept by the triggers below and
-- nothing else writes it (no foreign key: its rows are made from the alerts' own, and alerts are
-- never deleted, 0022). app/domain/alerts.py finds a title's words here.
SET LOCAL maintenance_work_mem = '512MB';  -- the build, at five million titles

CREATE TABLE alert_titles (
    alert_id bigint PRIMARY KEY,
    title    text NOT NULL
);
-- Only inserts, so that its vacuums only freeze, and each reads the whole trigram index (0017):
-- every million new titles, as for alerts.
ALTER TABLE alert_titles SET (autovacuum_vacuum_insert_threshold = 1000000,
                              autovacuum_vacuum_insert_scale_factor = 0);

-- No alert arrives between the backfill's snapshot and the triggers' creation (reads go on;
-- ingestion and moves wait for this migration: 51 s at five million alerts). Servers
-- of the version before search titles on alerts until they are replaced (docs/operations.md).
LOCK TABLE alerts IN SHARE ROW EXCLUSIVE MODE;

CREATE FUNCTION add_alert_titles() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_titles (alert_id, title) SELECT n.id, n.title FROM new_rows n;
    RETURN NULL;
END
$$;
CREATE TRIGGER alerts_titles AFTER INSERT ON alerts REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION add_alert_titles();

-- No statement changes a title today; one that does keeps the search in step (a trigger named
-- by column fires only for statements that set it, so moves never run it).
CREATE FUNCTION change_alert_title() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_titles (alert_id, title) VALUES (NEW.id, NEW.title)
        ON CONFLICT (alert_id) DO UPDATE SET title = excluded.title;
    RETURN NULL;
END
$$;
CREATE TRIGGER alerts_title_changed AFTER UPDATE OF title ON alerts
    FOR EACH ROW WHEN (OLD.title IS DISTINCT FROM NEW.title) EXECUTE FUNCTION change_alert_title();

INSERT INTO alert_titles (alert_id, title) SELECT id, title FROM alerts ORDER BY id;
CREATE INDEX alert_titles_search ON alert_titles USING gin (title gin_trgm_ops);
DROP INDEX IF EXISTS alerts_title_trgm;
ANALYZE alert_titles;

-- A TRUNCATE of alerts (cascading from incidents; tests, a reset) empties the search with them.
-- (DELETE, not TRUNCATE: a TRUNCATE of both tables at once may be running when this fires.)
CREATE FUNCTION alerts_titles_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM alert_titles;
    RETURN NULL;
END
$$;
CREATE TRIGGER alerts_titles_truncate AFTER TRUNCATE ON alerts
    FOR EACH STATEMENT EXECUTE FUNCTION alerts_titles_truncated();
