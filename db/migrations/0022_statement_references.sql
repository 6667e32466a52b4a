-- References checked once per statement, not once per row (issue 18), as move_items' are (0014).
--
-- A foreign key checks each inserted row in a query of its own, and a move's one statement
-- inserted 15-20 rows under five of them: EXPLAIN ANALYZE of a bench move of 8 alerts at a
-- million incidents (2026-12-04) spent 1.4 of its 3.5 ms in 88 such checks, while the move held
-- the row locks that the 16 movers queue for; an ingestion of 500 alerts runs about 2,000 and
-- a move of 100 alerts about 500. Here each table's new rows are checked by one trigger per
-- statement, each reference by the primary key's index: the same guarantee for the writers,
-- whatever the number of rows.
--
-- A foreign key also kept the rows it references from being deleted or renumbered; nothing
-- deletes incidents, alerts or moves, nor changes their ids, and now nothing can (TRUNCATE, an
-- operator's tool, is left alone: a foreign key would refuse it, unless CASCADE, where every
-- referencing table is truncated too).
ALTER TABLE activity_log
    DROP CONSTRAINT activity_log_incident_id_fkey,
    DROP CONSTRAINT activity_log_other_incident_id_fkey,
    DROP CONSTRAINT activity_log_alert_id_fkey,
    DROP CONSTRAINT activity_log_move_id_fkey;
ALTER TABLE move_incidents
    DROP CONSTRAINT move_incidents_incident_id_fkey,
    DROP CONSTRAINT move_incidents_move_id_fkey;
ALTER TABLE alert_entities DROP CONSTRAINT alert_entities_alert_id_fkey;
ALTER TABLE alerts DROP CONSTRAINT alerts_incident_id_fkey;

-- Each reference is its own index probe per row: an OR of NOT EXISTS, or a scalar subquery, is
-- never turned into a join, which the planner would cost without a transition table's
-- statistics (0020) and could make a scan of a five-million-row table.
CREATE FUNCTION check_activity_log_references() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_entries n
                WHERE NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = n.incident_id)
                   OR (n.other_incident_id IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = n.other_incident_id))
                   OR (n.alert_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.id = n.alert_id))
                   OR (n.move_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM moves m WHERE m.id = n.move_id))) THEN
        RAISE EXCEPTION 'activity_log entries must name existing incidents, alerts and moves'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER activity_log_refer AFTER INSERT ON activity_log REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION check_activity_log_references();
CREATE TRIGGER activity_log_refer_update AFTER UPDATE ON activity_log REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION check_activity_log_references();

CREATE FUNCTION check_move_incidents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows n
                WHERE NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = n.incident_id)
                   OR NOT EXISTS (SELECT 1 FROM moves m WHERE m.id = n.move_id)) THEN
        RAISE EXCEPTION 'move_incidents must name existing incidents and moves'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER move_incidents_refer AFTER INSERT ON move_incidents REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION check_move_incidents();
CREATE TRIGGER move_incidents_refer_update AFTER UPDATE ON move_incidents REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION check_move_incidents();

CREATE FUNCTION check_alert_entities() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows n WHERE (SELECT a.id FROM alerts a WHERE a.id = n.alert_id) IS NULL) THEN
        RAISE EXCEPTION 'alert_entities must name existing alerts' USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER alert_entities_refer AFTER INSERT ON alert_entities REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION check_alert_entities();
CREATE TRIGGER alert_entities_refer_update AFTER UPDATE ON alert_entities REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION check_alert_entities();

-- Every alert's incident, for the alerts a statement inserted or changed (a move changes
-- incident_id; a row whose incident_id stayed is checked too: incidents are never deleted, so
-- that probe always finds it).
CREATE FUNCTION check_alert_incidents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows n WHERE (SELECT i.id FROM incidents i WHERE i.id = n.incident_id) IS NULL) THEN
        RAISE EXCEPTION 'every alert must belong to an existing incident' USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER alerts_refer AFTER INSERT ON alerts REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION check_alert_incidents();
CREATE TRIGGER alerts_refer_update AFTER UPDATE ON alerts REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION check_alert_incidents();

CREATE FUNCTION refuse_deletes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted: the activity log and the moves refer to them', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE TRIGGER incidents_kept BEFORE DELETE ON incidents FOR EACH STATEMENT EXECUTE FUNCTION refuse_deletes();
CREATE TRIGGER alerts_kept BEFORE DELETE ON alerts FOR EACH STATEMENT EXECUTE FUNCTION refuse_deletes();
CREATE TRIGGER moves_kept BEFORE DELETE ON moves FOR EACH STATEMENT EXECUTE FUNCTION refuse_deletes();

-- Nor renumbered (a foreign key refused that too): only a statement that names id in its SET
-- list fires these.
CREATE FUNCTION refuse_renumbering() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% % keeps its id: the activity log and the moves refer to it', TG_TABLE_NAME, OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE TRIGGER incidents_numbered BEFORE UPDATE OF id ON incidents
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION refuse_renumbering();
CREATE TRIGGER alerts_numbered BEFORE UPDATE OF id ON alerts
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION refuse_renumbering();
CREATE TRIGGER moves_numbered BEFORE UPDATE OF id ON moves
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION refuse_renumbering();
