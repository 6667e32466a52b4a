-- Moves (issue 14): every linkAlerts, mergeIncidents and revertMove call that changed something,
-- with each alert it moved (where from, where to). An alert's history is its items in move order;
-- a revert puts each alert of a move back where that move's item says it came from.
CREATE TYPE move_kind AS ENUM ('link', 'merge', 'revert');
CREATE TYPE merge_reason AS ENUM ('duplicate', 'same_actor', 'same_campaign', 'same_asset', 'other');
-- One summary entry per incident and counterpart, not two per alert: merges and reverts move
-- thousands of alerts at once (their alerts are in move_items). Values added to an existing enum
-- cannot be used in the transaction that adds them: the checks below compare kind as text.
ALTER TYPE activity_kind ADD VALUE 'incident_merged';      -- on a merge's target: a source merged here
ALTER TYPE activity_kind ADD VALUE 'incident_redirected';  -- on a merge's source: merged into the target
ALTER TYPE activity_kind ADD VALUE 'alerts_returned';      -- a revert brought alerts back here
ALTER TYPE activity_kind ADD VALUE 'alerts_sent_back';     -- a revert took alerts back from here
ALTER TYPE activity_kind ADD VALUE 'incident_unmerged';    -- a revert of a merge: no longer redirected

-- Provenance is history: items are never changed nor removed.
CREATE FUNCTION refuse_move_item_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'move_items are append-only' USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE TABLE moves (
    -- A move's number is a GraphQL Int, as incidents' and alerts' are (0013).
    id                   bigint GENERATED ALWAYS AS IDENTITY (MAXVALUE 2147483647) PRIMARY KEY
                         CHECK (id BETWEEN 1 AND 2147483647),
    kind                 move_kind NOT NULL,
    actor                text NOT NULL,
    comment              text NOT NULL CHECK (length(comment) BETWEEN 1 AND 30000),
    created_at           timestamptz NOT NULL DEFAULT now(),
    reasons              merge_reason[] NOT NULL DEFAULT '{}',
    -- Where the alerts went; a revert sends them back to several incidents, so it has none.
    target_incident_id   bigint REFERENCES incidents,
    -- The move created its target (createNew): a revert resolves it once emptied.
    created_target       boolean NOT NULL DEFAULT false,
    -- UNIQUE: a move is reverted at most once, however many reverts race for it.
    reverts_move_id      bigint UNIQUE REFERENCES moves,
    -- Its items' alerts (they never change scope): who may read its comment, and how many it moved.
    alert_count          integer NOT NULL CHECK (alert_count >= 0),
    alert_scopes         text[] NOT NULL,
    -- The incidents alerts left (a merge's sources, even those that held none).
    source_incident_ids  bigint[] NOT NULL,
    CHECK ((kind = 'revert') = (reverts_move_id IS NOT NULL)),
    CHECK ((kind = 'revert') = (target_incident_id IS NULL)),
    CHECK (kind = 'merge' OR reasons = '{}'),
    CHECK (NOT created_target OR kind = 'link'),
    CHECK (reverts_move_id < id),
    CHECK (NOT target_incident_id = ANY(source_incident_ids))
);

-- Its references are checked once per statement (move_items_refer below), not by foreign keys:
-- a foreign key checks each row in a query of its own, 15-45 us, four of them 0.5-1.6 s on a
-- 9,000-alert merge. Nothing deletes moves, alerts or incidents.
CREATE TABLE move_items (
    move_id           bigint NOT NULL,
    alert_id          bigint NOT NULL,
    from_incident_id  bigint NOT NULL,
    to_incident_id    bigint NOT NULL,
    PRIMARY KEY (move_id, alert_id),
    CHECK (from_incident_id <> to_incident_id)
);
CREATE FUNCTION check_move_items() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_items n
                WHERE NOT EXISTS (SELECT 1 FROM moves m WHERE m.id = n.move_id)
                   OR NOT EXISTS (SELECT 1 FROM alerts a WHERE a.id = n.alert_id)
                   OR NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = n.from_incident_id)
                   OR NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = n.to_incident_id)) THEN
        RAISE EXCEPTION 'move_items must name existing moves, alerts and incidents'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER move_items_refer AFTER INSERT ON move_items REFERENCING NEW TABLE AS new_items
    FOR EACH STATEMENT EXECUTE FUNCTION check_move_items();
CREATE TRIGGER move_items_append_only BEFORE UPDATE OR DELETE ON move_items
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_move_item_changes();
-- An alert's history, oldest first, and "has it moved since": one index range per alert.
CREATE INDEX move_items_alert ON move_items (alert_id, move_id);

-- Every incident a move touched (alerts left or reached it, or it was redirected): an incident's
-- moves newest first, by one index range; and who may see a move.
CREATE TABLE move_incidents (
    incident_id  bigint NOT NULL REFERENCES incidents,
    move_id      bigint NOT NULL REFERENCES moves,
    PRIMARY KEY (incident_id, move_id)
);
CREATE INDEX move_incidents_move ON move_incidents (move_id);

ALTER TABLE activity_log ADD COLUMN move_id bigint REFERENCES moves;
CREATE INDEX activity_log_move ON activity_log (move_id) WHERE move_id IS NOT NULL;
-- The summary entries come from moves and say which incident and how many alerts.
ALTER TABLE activity_log ADD CONSTRAINT activity_log_summaries CHECK (
    kind::text NOT IN ('incident_merged', 'incident_redirected', 'alerts_returned', 'alerts_sent_back',
                       'incident_unmerged')
    OR (move_id IS NOT NULL AND other_incident_id IS NOT NULL AND alert_count IS NOT NULL AND alert_id IS NULL)
);

-- Redirects never loop: an incident is never redirected to itself, nor to an incident that is
-- itself redirected when the redirect is made. Chains are history (B merged into A, A later into
-- C: B still points at A); a loop would need its newest redirect to point at an incident already
-- redirected, so following redirectIncident always ends, within the number of incidents, at an
-- incident that is not redirected. The trigger fires only when the redirect changes: an incident
-- whose target was merged since keeps its (older) redirect whatever else a statement writes.
ALTER TABLE incidents ADD CONSTRAINT incidents_redirect_elsewhere CHECK (redirect_incident_id <> id);
-- A redirected incident holds no alert: every statement that redirects an incident sets its
-- alert_count (0) and status in the same row update.
ALTER TABLE incidents ADD CONSTRAINT incidents_redirected_empty CHECK (status <> 'redirected' OR alert_count = 0);
CREATE FUNCTION refuse_redirect_to_redirected() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM incidents WHERE id = NEW.redirect_incident_id AND status = 'redirected') THEN
        RAISE EXCEPTION 'incident % cannot be redirected to incident %, which is itself redirected',
            NEW.id, NEW.redirect_incident_id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER incidents_redirect_ends BEFORE INSERT ON incidents
    FOR EACH ROW WHEN (NEW.redirect_incident_id IS NOT NULL) EXECUTE FUNCTION refuse_redirect_to_redirected();
CREATE TRIGGER incidents_redirect_changes_end BEFORE UPDATE OF redirect_incident_id ON incidents
    FOR EACH ROW WHEN (NEW.redirect_incident_id IS NOT NULL
                       AND OLD.redirect_incident_id IS DISTINCT FROM NEW.redirect_incident_id)
    EXECUTE FUNCTION refuse_redirect_to_redirected();
