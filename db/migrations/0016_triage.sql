-- Triage (issue 15): an incident's lifecycle. Who works on it, what it turned out to be, and a log
-- entry for every change, with the old and the new value.
-- Microsoft Graph's incident fields: classification and determination start 'unknown'.
CREATE TYPE incident_classification AS ENUM (
    'unknown', 'true_positive', 'false_positive', 'informational_expected_activity'
);
CREATE TYPE incident_determination AS ENUM (
    'unknown', 'malware', 'phishing', 'compromised_account', 'multi_staged_attack', 'malicious_user_activity',
    'unwanted_software', 'security_testing', 'security_personnel', 'line_of_business_application',
    'confirmed_activity', 'not_malicious', 'not_enough_data_to_validate', 'other'
);
-- Columns with a constant default are added without rewriting the table.
ALTER TABLE incidents
    ADD COLUMN assigned_to text REFERENCES users (name),
    ADD COLUMN classification incident_classification NOT NULL DEFAULT 'unknown',
    ADD COLUMN determination incident_determination NOT NULL DEFAULT 'unknown',
    ADD CONSTRAINT incidents_determination_classified CHECK (determination = 'unknown' OR classification <> 'unknown');

-- The typed entries: old_value and new_value hold the status, the assignee's name or the
-- classification (with ':' and the determination) before and after, as stored.
ALTER TYPE activity_kind ADD VALUE 'status_changed';
ALTER TYPE activity_kind ADD VALUE 'assigned';
ALTER TYPE activity_kind ADD VALUE 'classified';
ALTER TYPE activity_kind ADD VALUE 'commented';
ALTER TABLE activity_log ADD COLUMN old_value text, ADD COLUMN new_value text;

-- The queue's sorts, each with the number as the tiebreak, so that keyset paging walks one index
-- in either direction. By last activity: incidents_recent (0001); by creation: the primary key
-- (numbers are given in creation order). Severity changes rarely; an update that changes the
-- alert count mostly changes the last activity too, and so was not a HOT update already.
CREATE INDEX incidents_by_severity ON incidents (severity DESC, last_activity_at DESC, id DESC);
CREATE INDEX incidents_by_alert_count ON incidents (alert_count DESC, last_activity_at DESC, id DESC);
-- "Assigned to me": an analyst's few incidents, found without walking a sort's whole index (a
-- filter on a sort's index reads rows until a page is full: for a rare value, all of them). Only
-- assigned incidents are in it, so the others' writes do not pay for it.
CREATE INDEX incidents_assigned ON incidents (assigned_to, last_activity_at DESC, id DESC) WHERE assigned_to IS NOT NULL;
-- A classification filter likewise: classified incidents are few, and mostly resolved (rarely written).
CREATE INDEX incidents_classified ON incidents (classification, last_activity_at DESC, id DESC)
    WHERE classification <> 'unknown';
