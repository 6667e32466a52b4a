"""Statements built from named parts (app/domain/params.py), and the viewer's visibility as one
of those parts in every statement of the typeahead: each step, the part counts, the first alerts."""

from __future__ import annotations

import pytest

from app.domain import incidents, search
from app.domain.params import Params
from app.domain.viewers import Viewer
from tests.test_queries import RecordingConnection, choose_way


def test_each_value_gets_the_next_placeholder_and_clauses_join_with_and():
    params = Params()

    params.where(f"a.id = {params.add(7)}")
    params.where_any("a.status", None, "alert_status")
    params.where_any("a.severity", ["high"], "severity")

    assert params.conditions == "a.id = $1 AND a.severity = ANY($2::severity[])"
    assert params.values == [7, ["high"]]
    assert Params().conditions == "true"


SEARCHES = [
    "on",
    "lateral",
    "ws-12",
    "ws-29",
    "fs-1",
    "user5@contoso",
    "powershell ws-77",
    "lateral ws-2",  # several parts in enough names that the NEAR step runs, counting them
    "rare ws-3",
    "c2",
    "rare",
    "zanzibar",
    "nothing-like-this",
    "12",
    "inc_12",  # an incident's id pasted: its number
]


@pytest.mark.parametrize("way", ["steps", "planner"])
@pytest.mark.parametrize("with_alerts", [False, True])
async def test_a_scoped_viewer_sees_only_visible_incidents_and_readable_alerts_at_every_step(
    pool, with_alerts, way, monkeypatch
):
    choose_way(monkeypatch, way)
    # Given 3,000 incidents over 21 days: a third with alerts in hr only, a third in default
    # only, a third in both, and every tenth one that never held an alert (visible to all).
    await pool.execute(
        """
        INSERT INTO incidents (name, severity, last_activity_at, alert_count, alert_scopes)
        SELECT concat_ws(' ',
                   CASE WHEN g % 5 = 0 THEN 'Lateral movement' ELSE 'Suspicious PowerShell' END,
                   'on', CASE WHEN g % 7 = 0 THEN 'FS-' ELSE 'WS-' END || g,
                   CASE WHEN g % 3 = 0 THEN 'by user' || (g % 97) || '@contoso.com' END,
                   CASE WHEN g % 211 = 0 THEN 'rare' END, CASE WHEN g = 2500 THEN 'Zanzibar' END,
                   CASE WHEN g % 13 = 0 THEN 'C2 beacon' END),
               'medium', now() - g * interval '10 minutes', 0,
               CASE WHEN g % 10 = 0 THEN '{}' WHEN g % 3 = 0 THEN ARRAY['hr'] WHEN g % 3 = 1 THEN ARRAY['default']
                    ELSE ARRAY['default', 'hr'] END
          FROM generate_series(1, 3000) g
        """
    )
    await pool.execute(
        """
        INSERT INTO alerts (external_id, title, severity, category, scope, detected_at, incident_id)
        SELECT 'x' || i.id || '-' || n, i.name, 'medium', 'Execution',
               i.alert_scopes[n % cardinality(i.alert_scopes) + 1],
               i.last_activity_at - n * interval '1 second', i.id
          FROM incidents i, generate_series(1, 3) n WHERE i.alert_scopes <> '{}'
        """
    )
    await pool.execute("ANALYZE incidents")
    hr = Viewer(id=1, name="hr", can_view_incidents=True, can_ingest=False, grants={"hr": "read"})

    async with pool.acquire() as conn:
        recorder = RecordingConnection(conn)
        for text in SEARCHES:
            # When the hr analyst searches, three pages of 10,
            patterns = [f"%{word}%" for word in text.split()]
            number = search.as_number(text)  # "12", "inc_12": incident 12 first, then the names holding 12
            expected = [
                r["id"]
                for r in await pool.fetch(
                    "SELECT id FROM incidents WHERE (alert_scopes && '{hr}' OR alert_scopes = '{}')"
                    # a name is matched only when the analyst may read the alerts it was named after
                    " AND (name ILIKE ALL($1::text[]) AND coalesce(name_scopes, alert_scopes) <@ '{hr}' OR id = $2)"
                    " ORDER BY id IS NOT DISTINCT FROM $2 DESC, last_activity_at DESC, id DESC LIMIT 30",
                    patterns,
                    number,
                )
            ]
            found: list[int] = []
            after = None
            for _ in range(3):
                flt = incidents.IncidentFilter(search=text)
                if with_alerts:
                    page, alert_pages = await incidents.list_incidents_with_alerts(
                        conn=recorder, viewer=hr, flt=flt, first=10, after=after, alerts_first=2
                    )
                    # then each incident comes with its newest alerts in hr, and none other,
                    for incident in page.items:
                        if incident.id == number:
                            continue  # the pinned incident is read apart, without its alerts
                        readable = [
                            r["id"]
                            for r in await pool.fetch(
                                "SELECT id FROM alerts WHERE incident_id = $1 AND scope = 'hr'"
                                " ORDER BY detected_at DESC, id DESC LIMIT 2",
                                incident.id,
                            )
                        ]
                        assert [a.id for a in alert_pages[incident.id].items] == readable, (text, incident.id)
                else:
                    page = await incidents.list_incidents(conn=recorder, viewer=hr, flt=flt, first=10, after=after)
                found += [i.id for i in page.items]
                if not page.has_next:
                    break
                after = page.cursors[-1]
            # and the incidents are those holding an hr alert or none, in the plain rule's order.
            assert found == expected, text
            count = await incidents.count_incidents(conn=recorder, viewer=hr, flt=incidents.IncidentFilter(search=text))
            assert count == await pool.fetchval(
                "SELECT count(*) FROM incidents"
                " WHERE (name ILIKE ALL($1::text[]) AND coalesce(name_scopes, alert_scopes) <@ '{hr}' OR id = $2)"
                " AND (alert_scopes && '{hr}' OR alert_scopes = '{}')",
                patterns,
                number,
            ), text
    # Every step answered some of them: the newest 1,000 with and without the part counts, the
    # last 7 days, and everything.
    statements = [sql for sql, _ in recorder.statements]
    if way == "planner":
        # The plain rule's statement (after the newest 1,000 for several words), no other step;
        # the evidence step (incident_evidence) has ways of its own.
        statements = [sql for sql in statements if "incident_evidence" not in sql]
        assert not any("activity_day" in sql or "interval '0'" in sql or "part_counts" in sql for sql in statements)
        return
    assert any("LIMIT 1000" in sql and "part_counts" not in sql for sql in statements)
    assert any("part_counts" in sql for sql in statements)
    assert any("activity_day" in sql for sql in statements)
    assert any("interval '0'" in sql and "activity_day" not in sql for sql in statements)
