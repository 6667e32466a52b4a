-- Incident.updatedAt for alerts changed in place (replaces 0015's statement trigger).
--
-- 0015's trigger joined the statement's transition tables (every updated alert, old and new)
-- to find the alerts that stayed in their incident. Transition tables have no statistics, and
-- for a merge or its revert (10,000 alerts moved in one statement) the planner's join ran past
-- the 15 s statement timeout beside 16 movers (`make bench`, 2026-12-02 16:18 UTC run): the
-- merge failed. Here the alerts that stayed are found by grouping the two tables' rows (one
-- hash aggregate, linear in the rows), and their incidents are still locked in id order, as
-- every writer of incidents locks them (0006).
CREATE OR REPLACE FUNCTION alerts_changed_in_place() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM incidents i
      WHERE i.id IN (SELECT c.incident_id
                       FROM (SELECT id, incident_id FROM changed_new
                             UNION ALL SELECT id, incident_id FROM changed_old) c
                      GROUP BY c.id, c.incident_id HAVING count(*) = 2)
        AND i.updated_at < now()
      ORDER BY i.id FOR UPDATE;
    UPDATE incidents i SET updated_at = now()
      WHERE i.id IN (SELECT c.incident_id
                       FROM (SELECT id, incident_id FROM changed_new
                             UNION ALL SELECT id, incident_id FROM changed_old) c
                      GROUP BY c.id, c.incident_id HAVING count(*) = 2)
        AND i.updated_at < now();
    RETURN NULL;
END
$$;
