-- The rare statuses: IN_PROGRESS (the incidents analysts are working) and REDIRECTED (merged
-- away) are few beside ACTIVE and RESOLVED, so a status filter on one of them, read along a
-- sort's index, read rows until a page was full: when its matches are few or old, most of the
-- index at 1M incidents. This
-- partial index serves them in the default order (last activity) and hands the other sorts the
-- few matches to sort; only incidents in those statuses are in it, so the others' writes do not
-- pay for it. The queue adds its predicate to such a filter (app/domain/incidents.py: _filtered).
CREATE INDEX incidents_rare_status ON incidents (status, last_activity_at DESC, id DESC)
    WHERE status IN ('in_progress', 'redirected');
