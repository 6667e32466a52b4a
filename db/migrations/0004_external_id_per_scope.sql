-- An externalId names an alert within its scope. Globally unique ids let a source with access
-- to one scope learn, by a missing answer, that an id exists in a scope it may not read.
ALTER TABLE alerts DROP CONSTRAINT alerts_external_id_key;
ALTER TABLE alerts ADD CONSTRAINT alerts_scope_external_id_key UNIQUE (scope, external_id);
