-- The scopes of the alerts an incident was named after: its name is shown to a viewer only when
-- they may read every one of them (README, Permissions). Incidents named before this column
-- existed have NULL, read as their alert_scopes: the best that is known of them.
ALTER TABLE incidents ADD COLUMN name_scopes text[];
