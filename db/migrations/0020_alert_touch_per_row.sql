-- Incident.updatedAt for alerts changed in place, per row (replaces 0015's statement trigger).
--
-- 0015's trigger joined the statement's transition tables (every updated alert, old and new)
-- to find the alerts that stayed in their incident. Transition tables have no statistics, and
-- for a merge or its revert (10,000 alerts moved in one statement) that join ran past the 15 s
-- statement timeout beside 16 movers (`make bench`, 2026-12-02 16:26): the merge failed. A row
-- trigger whose WHEN clause skips every moved alert costs a move nothing, and an alert changed
-- in place stamps its own incident, which its writer has locked already (writers lock incidents
-- in id order before their alerts: 0006).
DROP TRIGGER alerts_touch_incident ON alerts;
DROP FUNCTION alerts_changed_in_place();

CREATE FUNCTION alert_changed_in_place() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE incidents SET updated_at = now() WHERE id = NEW.incident_id AND updated_at < now();
    RETURN NULL;
END
$$;
CREATE TRIGGER alerts_touch_incident AFTER UPDATE ON alerts
    FOR EACH ROW WHEN (OLD.incident_id = NEW.incident_id) EXECUTE FUNCTION alert_changed_in_place();
