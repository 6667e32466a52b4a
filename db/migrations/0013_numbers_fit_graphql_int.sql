-- Incident and alert numbers are GraphQL Ints for people and scripts (number: Int!,
-- incident(number:), alert(number:)): 32-bit signed. The identity sequences stop there, and the
-- constraints say it for ids given explicitly (the bulk seed gives them), so that no number the
-- API hands out is one GraphQL cannot represent. 2,147,483,647 alerts is about 58 years at
-- 100,000 alerts a day; an installation nearing it must renumber (README, Ids).
ALTER TABLE incidents ALTER COLUMN id SET MAXVALUE 2147483647;
ALTER TABLE alerts ALTER COLUMN id SET MAXVALUE 2147483647;
ALTER TABLE incidents ADD CONSTRAINT incidents_number_is_an_int CHECK (id BETWEEN 1 AND 2147483647) NOT VALID;
ALTER TABLE alerts ADD CONSTRAINT alerts_number_is_an_int CHECK (id BETWEEN 1 AND 2147483647) NOT VALID;
ALTER TABLE incidents VALIDATE CONSTRAINT incidents_number_is_an_int;
ALTER TABLE alerts VALIDATE CONSTRAINT alerts_number_is_an_int;
