-- Live updates (issue 13): the activity log is the stream, PostgreSQL wakes the listeners.

-- Incident.updatedAt: set by any change to the incident's row, and by a change to one of its
-- alerts that did not move it (a move updates both incidents' rows anyway). Rows that exist now
-- get the migration's time: what changed before is unknown, and "changed since" must not miss it.
ALTER TABLE incidents ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX incidents_updated ON incidents (updated_at, id);

CREATE FUNCTION incident_touched() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER incidents_updated_at BEFORE UPDATE ON incidents FOR EACH ROW EXECUTE FUNCTION incident_touched();

CREATE FUNCTION alerts_changed_in_place() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Rows locked in id order, as every writer of incidents locks them (0006).
    PERFORM 1 FROM incidents i
      WHERE i.id IN (SELECT n.incident_id FROM changed_new n JOIN changed_old o USING (id)
                      WHERE n.incident_id = o.incident_id)
        AND i.updated_at < now()
      ORDER BY i.id FOR UPDATE;
    UPDATE incidents i SET updated_at = now()
      WHERE i.id IN (SELECT n.incident_id FROM changed_new n JOIN changed_old o USING (id)
                      WHERE n.incident_id = o.incident_id)
        AND i.updated_at < now();
    RETURN NULL;
END
$$;
CREATE TRIGGER alerts_touch_incident AFTER UPDATE ON alerts
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION alerts_changed_in_place();

-- The stream's order: the writing transaction, then the entry. xact is the transaction's id
-- (xid8: never wraps). A reader delivers an entry only once every transaction of a lower id has
-- ended (app/live.py), so the order is final when read and a cursor never skips a late
-- commit. Entries written before this migration have none, and are not part of the stream.
ALTER TABLE activity_log ADD COLUMN xact xid8;
ALTER TABLE activity_log ALTER COLUMN xact SET DEFAULT pg_current_xact_id();
CREATE INDEX activity_log_stream ON activity_log (xact, id) WHERE xact IS NOT NULL;

-- One wake-up per committed transaction that wrote the log (PostgreSQL folds identical
-- notifications of one transaction, sends them after COMMIT, and never after a rollback). The
-- payload is empty: the log, not the notification, says what changed.
CREATE FUNCTION activity_logged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('incident_graph_log', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER activity_log_notify AFTER INSERT ON activity_log
    FOR EACH STATEMENT EXECUTE FUNCTION activity_logged();

-- Access changes (a grant, a permission, a token, a user) notify incident_graph_access from the
-- triggers of 0018_access_changes.sql, which live subscriptions and the token cache both hear.
