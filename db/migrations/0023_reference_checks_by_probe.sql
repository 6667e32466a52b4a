-- The statement-level reference checks (0014's move_items, 0022's) probe the primary key for each
-- new row, whatever the plan cache holds (issue 18).
--
-- Their OR of NOT EXISTS was never turned into a join, as 0022 meant, but PostgreSQL may turn each
-- NOT EXISTS into `NOT (x = ANY (hashed SubPlan))`: a hash of every row of the referenced table,
-- when that table fits in work_mem. Only `moves` fits (incidents and alerts are too big), and it
-- grows with every move. PL/pgSQL keeps a trigger query's plan for the connection's life, and a
-- transition table's row count at the first run decides it: once a connection had checked a
-- big statement (a linkAlerts of 1,000 alerts, an ingestion batch of 500), every later small
-- statement on it hashed the whole `moves` table, three times per move (log, items, touched
-- incidents). At a million incidents and 50,000 moves that was 15-17 ms per check, 48 ms for a
-- move of 5 alerts whose own statement takes 3; and it grew run after run as moves were added:
-- the writes' decline of issue 18 (make bench, three runs on one seed, 2026-12-04).
--
-- A scalar subquery is never hashed: each reference is one probe of the primary key's index per
-- new row, whatever the transition table's size was when the plan was made.
CREATE OR REPLACE FUNCTION check_activity_log_references() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_entries n
                WHERE (SELECT i.id FROM incidents i WHERE i.id = n.incident_id) IS NULL
                   OR (n.other_incident_id IS NOT NULL
                       AND (SELECT i.id FROM incidents i WHERE i.id = n.other_incident_id) IS NULL)
                   OR (n.alert_id IS NOT NULL AND (SELECT a.id FROM alerts a WHERE a.id = n.alert_id) IS NULL)
                   OR (n.move_id IS NOT NULL AND (SELECT m.id FROM moves m WHERE m.id = n.move_id) IS NULL)) THEN
        RAISE EXCEPTION 'activity_log entries must name existing incidents, alerts and moves'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION check_move_incidents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows n
                WHERE (SELECT i.id FROM incidents i WHERE i.id = n.incident_id) IS NULL
                   OR (SELECT m.id FROM moves m WHERE m.id = n.move_id) IS NULL) THEN
        RAISE EXCEPTION 'move_incidents must name existing incidents and moves'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION check_move_items() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_items n
                WHERE (SELECT m.id FROM moves m WHERE m.id = n.move_id) IS NULL
                   OR (SELECT a.id FROM alerts a WHERE a.id = n.alert_id) IS NULL
                   OR (SELECT i.id FROM incidents i WHERE i.id = n.from_incident_id) IS NULL
                   OR (SELECT i.id FROM incidents i WHERE i.id = n.to_incident_id) IS NULL) THEN
        RAISE EXCEPTION 'move_items must name existing moves, alerts and incidents'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
