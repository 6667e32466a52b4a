-- Costs at SOC scale (issue 3): a million incidents, millions of alerts.

-- Room on each page for a row's next version. An incident whose count, severity or status
-- changes (every move touches two, every ingested alert one) is then updated in place (a HOT
-- update) instead of writing a new entry into each of its indexes, the trigram index among
-- them; a moved alert's new version stays on its page. Applies to pages written from now on
-- (a bulk seed writes them all).
ALTER TABLE incidents SET (fillfactor = 85);
ALTER TABLE alerts SET (fillfactor = 90);

