"""Evidence search (issue 16): incidents and alerts found by their alerts' entities, the
entity filter, and what a viewer who may not read an alert never finds through it."""

from __future__ import annotations

import json

import pytest

from app.domain import alerts, evidence, incidents
from app.domain.errors import InvalidArgument
from app.domain.params import Params
from app.domain.viewers import Viewer
from tests import invariants
from tests.conftest import alert_id, alert_in, inc

QUEUE = """
query($f: IncidentFilter, $first: Int, $after: String) {
  incidents(filter: $f, first: $first, after: $after) {
    totalCount
    edges { node { number name matchedEvidence { kind value } alerts(first: 5) { edges { node { externalId } } } } }
    pageInfo { endCursor hasNextPage }
  }
}
"""
ALERTS = """
query($f: AlertFilter) { alerts(filter: $f, first: 20) { totalCount edges { node { externalId } } } }
"""
EVERYONE = Viewer(id=0, name="admin", can_view_incidents=True, can_ingest=False, grants={"*": "write"})


async def listed(api, search=None, first=20, **flt) -> list[tuple[int, list[tuple[str, str]]]]:
    """(number, matched evidence) of each incident the queue lists."""
    if search is not None:
        flt["search"] = search
    data = await api(QUEUE, f=flt, first=first)
    return [
        (e["node"]["number"], [(m["kind"], m["value"]) for m in e["node"]["matchedEvidence"]])
        for e in data["incidents"]["edges"]
    ]


async def alerts_found(api, **flt) -> list[str]:
    return [e["node"]["externalId"] for e in (await api(ALERTS, f=flt))["alerts"]["edges"]]


@pytest.fixture
async def soc(ingest):
    """Four incidents, oldest first (each alert opens its own: no evidence is shared)."""
    return await ingest(
        alert_in("a1", "Suspicious PowerShell command line", entities=[("device", "SRV-9408-51"), ("user", "bob")]),
        alert_in("a2", "Phishing email delivered", minutes=10, entities=[("mailbox", "alice.smith@contoso.com")]),
        alert_in("a3", "Connection to known C2 server", minutes=20, entities=[("ip", "10.20.30.40")]),
        alert_in("a4", "Beaconing from srv-9408 reported", minutes=30, entities=[("device", "WS-1")]),
    )


async def test_a_host_fragment_finds_the_incident_holding_it(admin, soc):
    # Given an incident named after a PowerShell detection whose alert was on SRV-9408-51,
    # when an analyst types the host's digits, the incident is listed with the host as the reason;
    # the incident whose name holds the digits is listed too, newest first, with no evidence.
    assert await listed(admin, "9408") == [(4, []), (1, [("DEVICE", "SRV-9408-51")])]


@pytest.mark.parametrize("typed", ["srv-9408-5", "SRV-9408-51", "Srv-9408"])
async def test_evidence_matches_whatever_the_case(admin, soc, typed):
    found = await listed(admin, typed)
    assert (1, [("DEVICE", "SRV-9408-51")]) in found


async def test_an_email_local_part_and_a_partial_ip_find_their_incidents(admin, soc):
    assert await listed(admin, "alice.smith") == [(2, [("MAILBOX", "alice.smith@contoso.com")])]
    assert await listed(admin, "10.20.3") == [(3, [("IP", "10.20.30.40")])]
    # Every word in one value, in any order.
    assert await listed(admin, "contoso alice") == [(2, [("MAILBOX", "alice.smith@contoso.com")])]
    # Words spread over two values of one incident are not evidence of it.
    assert await listed(admin, "srv-9408-51 bob") == []


async def test_the_number_comes_first_then_name_and_evidence_matches_newest_first(admin, ingest):
    # Given incidents 1 and 2, then 3 whose alert names host SRV-0002-7, then 4 named after 0002
    await ingest(
        alert_in("n1", "Alert one"),
        alert_in("n2", "Alert two", minutes=1),
        alert_in("n3", "Alert three", minutes=2, entities=[("device", "SRV-0002-7")]),
        alert_in("n4", "Upload of report-0002.zip", minutes=3),
    )
    # when "0002" is typed, incident 2 is first (its number), then 4 (name) and 3 (evidence)
    assert await listed(admin, "0002") == [(2, []), (4, []), (3, [("DEVICE", "SRV-0002-7")])]


async def test_an_incident_matching_by_name_and_evidence_shows_its_evidence(admin, ingest):
    await ingest(alert_in("x1", "Logon to WS-4821 failed", entities=[("device", "WS-4821")]))
    assert await listed(admin, "ws-4821") == [(1, [("DEVICE", "WS-4821")])]


async def test_matched_evidence_is_each_matching_value_once_by_kind_then_value(admin, ingest):
    await ingest(
        alert_in("m1", "First", entities=[("device", "WS-77"), ("user", "ws-77-admin"), ("device", "web-1")]),
        alert_in("m2", "Second", minutes=1, entities=[("device", "ws-77"), ("ip", "10.0.0.77")]),
    )
    # WS-77 and ws-77 are one value: either spelling stands for both.
    [(number, matched)] = await listed(admin, "ws-77")
    assert number == 1
    assert [(kind, value.lower()) for kind, value in matched] == [("DEVICE", "ws-77"), ("USER", "ws-77-admin")]


async def test_matched_evidence_is_empty_outside_a_search(admin, soc):
    data = await admin("{ incident(number: 1) { matchedEvidence { kind value } } }")
    assert data["incident"]["matchedEvidence"] == []
    assert await listed(admin) == [(4, []), (3, []), (2, []), (1, [])]


async def test_short_words_are_looked_for_in_names_only(admin, ingest):
    await ingest(
        alert_in("s1", "Ransomware on FS-1", entities=[("device", "fs-1")]),
        alert_in("s2", "Other detection", minutes=1, entities=[("device", "fs-2")]),
    )
    assert await listed(admin, "fs") == [(1, [])]


async def test_paging_through_name_and_evidence_matches(admin, ingest):
    # Given six incidents, alternately named after host 5150 and holding it as evidence only
    await ingest(
        *(
            alert_in(
                f"p{n}",
                f"Detection {n} on host-5150" if n % 2 else f"Detection {n}",
                minutes=n,
                entities=[("device", f"other-{n}")] if n % 2 else [("device", f"HOST-5150-{n}")],
            )
            for n in range(6)
        )
    )
    seen = []
    after = None
    while True:
        page = (await admin(QUEUE, f={"search": "host-5150"}, first=2, after=after))["incidents"]
        seen += [e["node"]["number"] for e in page["edges"]]
        assert page["totalCount"] == 6
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [6, 5, 4, 3, 2, 1]


async def test_evidence_matches_come_with_their_first_alerts(admin, soc):
    data = await admin(QUEUE, f={"search": "alice.smith"}, first=5)
    assert [a["node"]["externalId"] for a in data["incidents"]["edges"][0]["node"]["alerts"]["edges"]] == ["a2"]


async def test_alert_search_finds_titles_and_entities(admin, soc):
    assert await alerts_found(admin, search="9408") == ["a4", "a1"]
    assert await alerts_found(admin, search="CONTOSO.COM") == ["a2"]
    assert await alerts_found(admin, search="c2 server") == ["a3"]


async def test_the_entity_filter_is_exact_and_ignores_case(admin, soc):
    device = {"kind": "DEVICE", "value": "srv-9408-51"}
    assert await listed(admin, entity=device) == [(1, [])]
    assert await listed(admin, entity={"kind": "DEVICE", "value": "9408"}) == []
    assert await listed(admin, entity={"kind": "USER", "value": "SRV-9408-51"}) == []
    assert await listed(admin, entity={"kind": "USER", "value": " BOB "}) == [(1, [])]
    assert await alerts_found(admin, entity=device) == ["a1"]
    assert (await admin(QUEUE, f={"entity": device}, first=5))["incidents"]["totalCount"] == 1


async def test_the_entity_filter_pivots_to_every_incident_sharing_it(admin, ingest):
    # Alerts a week apart are not correlated: two incidents share the host.
    await ingest(alert_in("w1", "First", entities=[("device", "WS-9")]))
    await ingest(alert_in("w2", "Second", minutes=60 * 24 * 7, entities=[("device", "ws-9")]))
    assert await listed(admin, entity={"kind": "DEVICE", "value": "WS-9"}) == [(2, []), (1, [])]


# --- permissions ---------------------------------------------------------------------------


@pytest.fixture
async def mixed(ingest):
    """One incident holding a default alert and an hr alert (a deployment correlating across scopes)."""
    return await ingest(
        alert_in("d1", "Sign-in anomaly on WS-1", entities=[("device", "WS-1"), ("user", "carol")]),
        alert_in(
            "h1",
            "Payroll export",
            scope="hr",
            minutes=5,
            entities=[("device", "ws-1"), ("device", "WS-1-PAYROLL"), ("file", "salaries-2026.xlsx")],
        ),
        across_scopes=True,
    )


async def test_evidence_of_alerts_the_viewer_cannot_read_never_matches(make_user, admin, mixed):
    dana = await make_user("dana", "default=read")
    # The admin finds the incident by the hr alert's file; dana, who sees the incident through
    # its default alert, does not.
    assert await listed(admin, "salaries") == [(1, [("FILE", "salaries-2026.xlsx")])]
    assert await listed(dana, "salaries") == []
    assert (await dana(QUEUE, f={"search": "salaries"}, first=5))["incidents"]["totalCount"] == 0
    assert await alerts_found(dana, search="salaries") == []
    assert await listed(dana, entity={"kind": "FILE", "value": "salaries-2026.xlsx"}) == []
    assert await alerts_found(dana, entity={"kind": "FILE", "value": "salaries-2026.xlsx"}) == []


async def test_matched_evidence_shows_only_readable_alerts_evidence(make_user, admin, mixed):
    dana = await make_user("dana", "default=read")
    [(number, matched)] = await listed(admin, "ws-1")
    assert number == 1
    assert [(kind, value.lower()) for kind, value in matched] == [("DEVICE", "ws-1"), ("DEVICE", "ws-1-payroll")]
    assert await listed(dana, "ws-1") == [(1, [("DEVICE", "WS-1")])]


async def test_a_viewer_of_the_other_scope_alone_finds_what_their_alert_holds(make_user, mixed):
    harry = await make_user("harry", "hr=read")
    assert await listed(harry, "payroll") == [(1, [("DEVICE", "WS-1-PAYROLL")])]
    assert await listed(harry, "carol") == []


async def test_a_viewer_without_any_grant_finds_nothing_by_evidence(make_user, mixed):
    nobody = await make_user("nobody", "finance=read")
    assert await listed(nobody, "ws-1") == []


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flt", "field"),
    [
        ({"search": "x" * 201}, "filter.search"),
        ({"entity": {"kind": "DEVICE", "value": "   "}}, "filter.entity.value"),
        ({"entity": {"kind": "DEVICE", "value": "h" * 1001}}, "filter.entity.value"),
    ],
)
async def test_bad_input_is_a_typed_error(admin, soc, flt, field):
    errors = await admin.errors(QUEUE, f=flt, first=5)
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert errors[0]["extensions"]["field"] == field


async def test_an_unknown_entity_kind_is_refused_before_running(admin, soc):
    errors = await admin.errors(QUEUE, f={"entity": {"kind": "HASH", "value": "abc"}}, first=5)
    assert errors[0]["extensions"]["code"] in ("BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED")


async def test_an_empty_search_is_the_whole_queue(admin, soc):
    assert [n for n, _ in await listed(admin, "")] == [4, 3, 2, 1]


def test_the_domain_refuses_an_unknown_kind_and_an_empty_value():
    with pytest.raises(InvalidArgument):
        evidence.entity_match("hash", "abc")
    with pytest.raises(InvalidArgument):
        evidence.entity_match("device", " \x00 ")
    assert evidence.entity_match("device", " WS-1 ") == evidence.EntityMatch("device", "WS-1")


# --- moves: the evidence goes with the alerts ---------------------------------------------------

LINK = """
mutation($ids: [ID!]!, $target: LinkTarget!) {
  linkAlerts(alertIds: $ids, target: $target, comment: "same host") { errors { code } }
}
"""


@pytest.mark.parametrize("walk_size", [0, 1_000])
async def test_evidence_follows_alerts_moved_between_incidents(admin, soc, monkeypatch, walk_size):
    # Both ways (walking the newest incidents, and the value index) after each move.
    monkeypatch.setattr(evidence, "walk_size", lambda *a: walk_size)
    # Given incident 1's alert on SRV-9408-51, moved to incident 3,
    data = await admin(LINK, ids=[alert_id(1)], target={"existingIncidentId": inc(3)})
    assert data["linkAlerts"]["errors"] == []
    # the host's digits find incident 3 by it, and incident 1 (empty now) no longer;
    assert await listed(admin, "9408-5") == [(3, [("DEVICE", "SRV-9408-51")])]
    # moved on to a new incident, it is found there, and no longer in incident 3.
    data = await admin(LINK, ids=[alert_id(1)], target={"createNew": True})
    assert data["linkAlerts"]["errors"] == []
    assert await listed(admin, "9408-5") == [(5, [("DEVICE", "SRV-9408-51")])]
    assert (await admin(QUEUE, f={"search": "9408-5"}))["incidents"]["totalCount"] == 1


COUNTED = """
SELECT a.incident_id, e.value_key, e.kind::text, a.scope, count(*)::integer AS entities
  FROM alert_entities e JOIN alerts a ON a.id = e.alert_id GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""
KEPT = "SELECT incident_id, value_key, kind::text, scope, entities FROM incident_evidence ORDER BY 1, 2, 3, 4"


async def _written(pool) -> list:
    """What incident_evidence_text holds that is not the incidents' distinct values, or the reverse."""
    return [tuple(r) for r in await pool.fetch(invariants.WRONG_EVIDENCE_TEXT)]


@pytest.mark.parametrize("filler", [0, 70])
async def test_each_incident_s_values_are_counted_exactly_through_moves(admin, ingest, pool, filler):
    # Two alerts on one host in one incident, one in another scope elsewhere, then moves: one
    # alert out (the host stays, counted once), the other after it (the host goes), and back.
    # With 70 more values on the first alert, its incident has text (0025), then the one it
    # moves to, which gets it; the text is checked against the counts each time.
    await ingest(
        alert_in("h1", "First", entities=[("device", "SRV-1"), ("user", "bob"), *_filler("h1", filler)]),
        alert_in("h2", "Second", minutes=1, entities=[("device", "srv-1"), ("ip", "10.0.0.1")]),
        alert_in("h3", "Third", minutes=600, scope="hr", entities=[("device", "SRV-1")]),
    )
    # (about 40 bytes a value: the text is two rows)
    assert [
        tuple(r) for r in await pool.fetch("SELECT incident_id, count(*) FROM incident_evidence_text GROUP BY 1")
    ] == ([(1, 2)] if filler else [])
    assert [tuple(r) for r in await pool.fetch(KEPT)] == [tuple(r) for r in await pool.fetch(COUNTED)]
    assert await _written(pool) == []
    for ids, target in (
        ([2], {"createNew": True}),
        ([1], {"existingIncidentId": inc(3)}),
        ([1, 2], {"existingIncidentId": inc(1)}),
    ):
        data = await admin(LINK, ids=[alert_id(i) for i in ids], target=target)
        assert data["linkAlerts"]["errors"] == []
        assert [tuple(r) for r in await pool.fetch(KEPT)] == [tuple(r) for r in await pool.fetch(COUNTED)]
        assert await _written(pool) == []
        assert await _bits_missing(pool) == []
    assert await _written(pool) == []
    # One statement moving alerts both ways between two incidents that share a value (a revert's
    # shape), one of them changing scope too: each (incident, value, kind, scope) by its net.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM incidents WHERE id IN (1, 2) ORDER BY id FOR UPDATE")
        await conn.execute(
            "UPDATE alerts SET incident_id = CASE id WHEN 3 THEN 1 ELSE 2 END,"
            " scope = CASE id WHEN 2 THEN 'hr' ELSE scope END WHERE id IN (2, 3)"
        )
    assert [tuple(r) for r in await pool.fetch(KEPT)] == [tuple(r) for r in await pool.fetch(COUNTED)]
    assert await _written(pool) == []
    assert await _bits_missing(pool) == []
    # An entity removed, and one changed: counted as well.
    await pool.execute("DELETE FROM alert_entities WHERE value = '10.0.0.1'")
    await pool.execute("UPDATE alert_entities SET value = 'alice' WHERE value = 'bob'")
    assert [tuple(r) for r in await pool.fetch(KEPT)] == [tuple(r) for r in await pool.fetch(COUNTED)]
    assert await _written(pool) == []


async def _bits_missing(pool) -> list:
    return [tuple(r) for r in await pool.fetch(invariants.MISSING_EVIDENCE_BITS)]


def _filler(tag: str, n: int = 70) -> list[tuple[str, str]]:
    """Files enough for an incident of 64 values or more: one whose text the walk reads first (0025)."""
    return [("file", f"{tag}-filler-{k}-{'x' * 24}.dll") for k in range(n)]


@pytest.mark.parametrize("filler", [0, 70])
@pytest.mark.parametrize("walk_size", [0, 1_000])
async def test_an_incident_matches_when_one_value_holds_every_word(admin, ingest, monkeypatch, walk_size, filler):
    # With 70 more values, the walk first reads each incident's values as one text: "alpha beta"
    # is in incident 1's (in two values), in one value of incident 2's alone, and in a value split
    # by a newline in incident 3's.
    monkeypatch.setattr(evidence, "walk_size", lambda *a: walk_size)
    await ingest(
        alert_in("w1", "First", entities=[("device", "alpha-host"), ("user", "beta-user"), *_filler("w1", filler)]),
        alert_in("w2", "Second", minutes=600, entities=[("device", "alpha-beta-host"), *_filler("w2", filler)]),
        alert_in("w3", "Third", minutes=1200, entities=[("file", "c:\\alpha\nbeta.exe"), *_filler("w3", filler)]),
    )
    split = (3, [("FILE", "c:\\alpha\nbeta.exe")])
    assert await listed(admin, "alpha beta") == [split, (2, [("DEVICE", "alpha-beta-host")])]
    assert await listed(admin, "beta.exe") == [split]
    assert await listed(admin, "a-user") == [(1, [("USER", "beta-user")])]
    assert await listed(admin, "w2-filler-69") == [(2, [("FILE", f"w2-filler-69-{'x' * 24}.dll")])] * bool(filler)


# --- both ways of finding evidence matches give the same pages ----------------------------------


@pytest.fixture
async def many(ingest):
    """30 incidents, every third holding host 7777 as evidence, every fifth named after it."""
    return await ingest(
        *(
            alert_in(
                f"k{n}",
                f"Detection {n} on ws-7777" if n % 5 == 0 else f"Detection {n}",
                minutes=(n - 30) * 60 * 24 * 2,  # two days apart: never correlated
                entities=[("device", "WS-7777-X" if n % 3 == 0 else f"ws-{n}")],
            )
            for n in range(30)
        )
    )


async def _pages(pool, search: str, first: int | None = None, last: int | None = None) -> list[list[tuple[int, tuple]]]:
    """Every page of a search, forward with `first` or backward with `last`: each incident's
    number and matched evidence."""
    pages, cursor = [], None
    while True:
        if last is None:
            page = await incidents.list_incidents(
                conn=pool, viewer=EVERYONE, flt=incidents.IncidentFilter(search=search), first=first, after=cursor
            )
        else:
            page = await incidents.list_incidents(
                conn=pool, viewer=EVERYONE, flt=incidents.IncidentFilter(search=search), last=last, before=cursor
            )
        pages.append([(i.id, getattr(i, "matched_evidence", ())) for i in page.items])
        if not (page.has_next if last is None else page.has_previous):
            return pages
        cursor = page.end_cursor if last is None else page.start_cursor


@pytest.mark.parametrize("walk_size", [1_000, 4])
async def test_walking_and_the_value_index_give_the_same_pages(pool, many, monkeypatch, walk_size):
    monkeypatch.setattr(evidence, "walk_size", lambda *a: 0)
    through_values = await _pages(pool, "7777", 4)
    # 4: walks that stop short of filling the page, then the index
    monkeypatch.setattr(evidence, "walk_size", lambda *a: walk_size)
    walking = await _pages(pool, "7777", 4)
    assert walking == through_values
    found = [n for page in walking for n, _ in page]
    assert found == sorted({n for n in range(1, 31) if (n - 1) % 3 == 0 or (n - 1) % 5 == 0}, reverse=True)


def _counting_regions(monkeypatch) -> list[int]:
    """The limits of the REGION counts _fetch_evidence runs from now on."""
    counted: list[int] = []

    class Counting(str):
        def format(self, *args, **kwargs):
            counted.append(kwargs["most"])
            return str.format(self, *args, **kwargs)

    monkeypatch.setattr(incidents, "REGION", Counting(incidents.REGION))
    return counted


def _walks(monkeypatch) -> list[int]:
    """The walks' sizes of the evidence steps from now on (0: the values' index)."""
    walks: list[int] = []
    step = incidents._evidence_step
    monkeypatch.setattr(
        incidents, "_evidence_step", lambda q, w, walk, *a, **k: walks.append(walk) or step(q, w, walk, *a, **k)
    )
    return walks


@pytest.mark.parametrize("most", [1_000, 5_000])
async def test_a_walk_bounded_by_the_name_matches_gives_the_value_index_s_pages(pool, many, monkeypatch, most):
    monkeypatch.setattr(evidence, "walk_size", lambda *a: 0)
    through_values = await _pages(pool, "7777", 4)
    # The name matches fill each page: the few incidents before the last of them are all walked.
    # (At this small table one statement finds them, so no NEAR step tells how many lie there:
    # they are counted, up to the walk's allowance.)
    monkeypatch.setattr(evidence, "most_walked", lambda *a: most)
    counted = _counting_regions(monkeypatch)
    steps = _walks(monkeypatch)
    assert await _pages(pool, "7777", 4) == through_values
    # (the later pages, which the name matches do not fill, go to the index)
    assert most + 1 in steps and set(steps) <= {0, most + 1}
    assert counted and set(counted) == {most + 1}


@pytest.mark.parametrize("near", [1_000, 2])
@pytest.mark.parametrize("backward", [False, True])
async def test_the_near_step_tells_how_many_incidents_lie_before_the_name_matches(
    pool, many, monkeypatch, near, backward
):
    # The typeahead's steps, whatever the table's size. A NEAR step that fills the page puts
    # its last name match within NEAR incidents of the cursor: a walk allowed that many walks
    # them all, uncounted. One that does not fill it (NEAR of 2 incidents) puts it beyond: no
    # walk of them all, no count either, and the values' index. The same pages either way.
    monkeypatch.setattr(incidents, "PLANNER_CHOOSES_BELOW", 0)
    monkeypatch.setattr(evidence, "walk_size", lambda *a: 0)
    paging = {"last": 4} if backward else {"first": 4}
    through_values = await _pages(pool, "7777", **paging)
    monkeypatch.setattr(incidents, "NEAR", near)
    monkeypatch.setattr(evidence, "most_walked", lambda *a: 1_000)
    counted = _counting_regions(monkeypatch)
    steps = _walks(monkeypatch)
    assert await _pages(pool, "7777", **paging) == through_values
    assert counted == []
    # (the first page's name matches fill it; a page that they do not fill goes to the index)
    assert steps[0] == (1_001 if near == 1_000 else 0) and 0 in steps and set(steps) <= {0, steps[0]}


def _plan_nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


@pytest.mark.parametrize("walk_size", [1_000, 4])
async def test_where_a_walk_stopped_is_read_only_when_the_page_is_not_full(pool, many, monkeypatch, walk_size):
    # A walk's statement (WALKED) also reads where it stopped, a scan of the recency index as
    # long as the walk (at the top of the queue, whose pages writes keep from being all-visible,
    # about what the walk itself costs), behind a one-time filter on the matches it found: never
    # run when the walk filled the page (a walk of 1,000 here), run when it did not (of 4).
    monkeypatch.setattr(incidents, "PLANNER_CHOOSES_BELOW", 0)
    monkeypatch.setattr(incidents, "NEAR", 2)
    monkeypatch.setattr(evidence, "walk_size", lambda *a: walk_size)
    walked = []
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda r: walked.append((r.query, r.args)) if "walked_incident" in r.query else None)
        page = await incidents.list_incidents(
            conn=conn, viewer=EVERYONE, flt=incidents.IncidentFilter(search="7777"), first=4
        )
        await conn.fetchval("SELECT 1")
        assert len(page.items) == 4 and walked
        sql, args = walked[0]
        plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args))[0]["Plan"]
    gates = [n for n in _plan_nodes(plan) if "walked_incident" in n.get("One-Time Filter", "")]
    assert len(gates) == 1, "where the walk stopped is read behind a one-time filter"
    read = [n["Actual Loops"] for n in _plan_nodes(gates[0]) if n.get("Relation Name") == "incidents"]
    assert read == ([0] if walk_size == 1_000 else [1])


@pytest.mark.parametrize("walk_size", [1_000, 4])
@pytest.mark.parametrize("backward", [False, True])
async def test_one_walk_for_names_and_evidence_gives_the_steps_pages(pool, many, monkeypatch, walk_size, backward):
    # The typeahead's steps, whatever the table's size, and a NEAR step of 2 incidents that finds
    # too few name matches: then one walk for both kinds (_walk_both) settles the page, or, when
    # 4 incidents do not fill it, the steps go on. Either way the pages of the steps alone.
    monkeypatch.setattr(incidents, "PLANNER_CHOOSES_BELOW", 0)
    monkeypatch.setattr(incidents, "NEAR", 2)
    paging = {"last": 4} if backward else {"first": 4}
    monkeypatch.setattr(evidence, "walk_size", lambda *a: 0)
    through_steps = await _pages(pool, "7777", **paging)
    monkeypatch.setattr(evidence, "walk_size", lambda *a: walk_size)
    steps, walks = [], []
    step, evidence_step = incidents._step, incidents._evidence_step
    monkeypatch.setattr(incidents, "_step", lambda q, s, *a, **k: steps.append(s) or step(q, s, *a, **k))
    monkeypatch.setattr(
        incidents,
        "_evidence_step",
        lambda q, w, walk, *a, **k: walks.append((walk, k.get("names", False))) or evidence_step(q, w, walk, *a, **k),
    )
    assert await _pages(pool, "7777", **paging) == through_steps
    found = sorted((n for page in through_steps for n, _ in page), reverse=True)
    assert found == sorted({n for n in range(1, 31) if (n - 1) % 3 == 0 or (n - 1) % 5 == 0}, reverse=True)
    # (the walk of 1,000 settles every page after its NEAR step; a walk of 4, none, and the
    # evidence's own steps do not walk those 4 again: the values' index)
    assert (incidents.INDEXED_STEP in steps) == (walk_size == 4)
    assert {walk for walk, names in walks if not names} <= {0}


@pytest.mark.parametrize("backward", [False, True])
async def test_the_evidence_walk_goes_on_from_where_the_walk_of_both_stopped(pool, many, monkeypatch, backward):
    # When the walk for both kinds (_walk_both) does not settle the page, a longer walk for the
    # evidence goes on from the last incident it checked, with the evidence matches it found,
    # instead of walking those incidents again: the pages of the steps alone all the same.
    monkeypatch.setattr(incidents, "PLANNER_CHOOSES_BELOW", 0)
    monkeypatch.setattr(incidents, "NEAR", 2)
    paging = {"last": 4} if backward else {"first": 4}
    monkeypatch.setattr(evidence, "walk_size", lambda *a: 0)
    through_steps = await _pages(pool, "7777", **paging)
    monkeypatch.setattr(evidence, "walk_size", lambda *a: 3)
    monkeypatch.setattr(evidence, "longer_walk", lambda estimate, words, walked: 1_000 if walked < 1_000 else 0)
    walks = []
    evidence_step = incidents._evidence_step
    monkeypatch.setattr(
        incidents,
        "_evidence_step",
        lambda q, w, walk, *a, **k: (
            walks.append((walk, k.get("names", False), k.get("after") is not None))
            or evidence_step(q, w, walk, *a, **k)
        ),
    )
    assert await _pages(pool, "7777", **paging) == through_steps
    assert (3, True, False) in walks
    assert any(walk and not names and after for walk, names, after in walks)


@pytest.mark.parametrize("walk_size", [0, 1_000, 4])
async def test_the_pages_with_their_first_alerts_hold_the_same_incidents(pool, many, monkeypatch, walk_size):
    # The typeahead's one statement with each incident's first alerts (the lean path's), through
    # the walk of both kinds, the evidence's own walk and the values' index: the incidents of the
    # pages without alerts, each with its alert.
    monkeypatch.setattr(incidents, "PLANNER_CHOOSES_BELOW", 0)
    monkeypatch.setattr(incidents, "NEAR", 2)
    monkeypatch.setattr(evidence, "walk_size", lambda *a: walk_size)
    without = await _pages(pool, "7777", 4)
    pages, cursor = [], None
    while True:
        page, alerts = await incidents.list_incidents_with_alerts(
            conn=pool,
            viewer=EVERYONE,
            flt=incidents.IncidentFilter(search="7777"),
            first=4,
            after=cursor,
            alerts_first=5,
        )
        pages.append([(i.id, getattr(i, "matched_evidence", ())) for i in page.items])
        assert {i.id: [a.incident_id for a in alerts[i.id].items] for i in page.items} == {
            i.id: [i.id] for i in page.items
        }
        if not page.has_next:
            break
        cursor = page.end_cursor
    assert pages == without


# Values and every fragment of them of 3 characters or more: the bits a search computes for the
# fragment (evidence.query_bits) are set in the value's (0026's evidence_bits), and the trigrams
# it computes are among pg_trgm's, so that the walk never passes an incident holding the fragment.
VALUES_FOR_BITS = [
    "srv-9408_51.a b",
    "alice.smith@contoso.com",
    "10.20.30.40",
    "c:\\windows\\system32\\cmd.exe",
    "https://x-y.example.org/a?b=c&d=%41",
    "-x-y-",
    "a",
    "ws-0042",
    "o'brien  (admin)",
    "é-srv-9é",
]


async def test_a_value_s_bits_hold_the_bits_of_every_fragment_it_holds(pool):
    for value in VALUES_FOR_BITS:
        key = value.lower()
        bits, wide, trigrams = await pool.fetchrow(
            "SELECT evidence_bits($1)::text, evidence_wide_bits($1)::text, show_trgm($1)", key
        )
        assert bits.count("1") == len({evidence.trigram_bit(t) for t in trigrams if t.isascii()}) or not key.isascii()
        assert wide.count("1") == len({evidence.trigram_wide_bit(t) for t in trigrams}) or not key.isascii()
        # A trigram's narrow bit is its wide bit's first 8 of 12.
        assert {b >> 4 for b, c in enumerate(wide) if c == "1"} == {b for b, c in enumerate(bits) if c == "1"}
        for start in range(len(key)):
            for end in range(start + 3, len(key) + 1):
                fragment = key[start:end]
                mask = evidence.query_bits([fragment])
                if not fragment.isascii():
                    assert mask is None  # not checked: pg_trgm hashes other letters by the locale
                    continue
                assert evidence.query_trigrams(fragment) <= set(trigrams), (value, fragment)
                assert all(b == "1" for b, m in zip(bits, mask, strict=True) if m == "1"), (value, fragment)
                wide_mask = evidence.query_wide_bits([fragment])
                assert all(b == "1" for b, m in zip(wide, wide_mask, strict=True) if m == "1"), (value, fragment)


async def test_a_search_the_bits_do_not_cover_still_finds_its_incident(admin, ingest, monkeypatch):
    # A non-ASCII fragment: the walk does not check the bits, and finds the value.
    monkeypatch.setattr(evidence, "walk_size", lambda *a: 1_000)
    await ingest(alert_in("u1", "First", entities=[("user", "björn.ström@contoso.com")]))
    assert evidence.query_bits(["ström"]) is None
    assert await listed(admin, "ström@") == [(1, [("USER", "björn.ström@contoso.com")])]
    assert await listed(admin, "rn.str") == [(1, [("USER", "björn.ström@contoso.com")])]


def _hosts(tag: str, n: int) -> list[tuple[str, str]]:
    """Hosts of scattered digits: their trigrams set more than half of an incident's 256 bits."""
    return [("device", f"{tag}-{k * 7919 % 100_000:05d}") for k in range(n)]


@pytest.mark.parametrize("walk_size", [0, 1_000])
async def test_an_incident_of_many_values_is_found_by_each_of_them(admin, ingest, pool, monkeypatch, walk_size):
    # Given an incident whose values grew past half of its 256 bits (then it keeps 4,096 too,
    # db/migrations/0028, computed from all its values at that moment), a fragment of its first
    # value, and of a value that joined it afterwards (by ingestion, then by a move), still finds it.
    monkeypatch.setattr(evidence, "walk_size", lambda *a: walk_size)
    wide = "SELECT bit_count(evidence_bits), evidence_wide_bits IS NOT NULL FROM incidents WHERE id = 1"
    await ingest(alert_in("m0", "First", entities=[("device", "first-host-zq")]))
    assert tuple(await pool.fetchrow(wide))[1] is False
    await ingest(
        *(
            alert_in(f"m{k}", "More", minutes=k, entities=[("device", "first-host-zq"), *_hosts(f"h{k}", 40)])
            for k in range(1, 4)
        )
    )
    count, kept = await pool.fetchrow(wide)
    assert count >= 128 and kept
    assert await _bits_missing(pool) == []
    assert await listed(admin, "st-host-z") == [(1, [("DEVICE", "first-host-zq")])]
    await ingest(alert_in("m4", "Later", minutes=5, entities=[("device", "first-host-zq"), ("user", "late.qx@corp")]))
    assert await listed(admin, "late.qx") == [(1, [("USER", "late.qx@corp")])]
    (other,) = await ingest(alert_in("o1", "Elsewhere", minutes=3000, entities=[("ip", "172.31.254.9")]))
    data = await admin(LINK, ids=[alert_id(other.id)], target={"existingIncidentId": inc(1)})
    assert data["linkAlerts"]["errors"] == []
    assert await _bits_missing(pool) == []
    assert await listed(admin, "31.254.9") == [(1, [("IP", "172.31.254.9")])]
    # An incident that reaches the threshold through a move gets the bits of the values it held.
    (target,) = await ingest(alert_in("t1", "Target", minutes=6000, entities=[("device", "target-only-kz")]))
    (source,) = await ingest(alert_in("s1", "Source", minutes=6100, entities=_hosts("s", 90)))
    kept = "SELECT evidence_wide_bits IS NOT NULL FROM incidents WHERE id = $1"
    assert await pool.fetchval(kept, source.incident_id) is True
    assert await pool.fetchval(kept, target.incident_id) is False
    data = await admin(LINK, ids=[alert_id(source.id)], target={"existingIncidentId": inc(target.incident_id)})
    assert data["linkAlerts"]["errors"] == []
    assert await pool.fetchval(kept, target.incident_id) is True
    assert await _bits_missing(pool) == []
    assert await listed(admin, "only-kz") == [(target.incident_id, [("DEVICE", "target-only-kz")])]


async def test_the_wide_bits_pass_by_an_incident_the_narrow_bits_let_through(ingest, pool):
    # Given an incident that keeps wide bits, a word whose trigrams' narrow bits it has all set
    # but whose wide bits it lacks: the walk's check (bits_may_hold) passes it by; a fragment of
    # one of its values passes.
    await ingest(alert_in("b1", "Big", entities=[("device", "big-one-qv"), *_hosts("b", 99)]))
    narrow, wide = await pool.fetchrow(
        "SELECT evidence_bits::text, evidence_wide_bits::text FROM incidents WHERE id = 1"
    )
    assert wide is not None

    def holds(have: str, mask: str | None) -> bool:
        return mask is not None and all(h == "1" for h, m in zip(have, mask, strict=True) if m == "1")

    words = (f"{a}{b}{c}" for a in "qxzjkvw" for b in "qxzjkvw" for c in "qxzjkvw")
    lacking = next(
        w for w in words if holds(narrow, evidence.query_bits([w])) and not holds(wide, evidence.query_wide_bits([w]))
    )

    async def passes(word: str) -> bool:
        params = Params()
        check = evidence.bits_may_hold(params, [word], "i")
        return await pool.fetchval(f"SELECT {check} FROM incidents i WHERE i.id = 1", *params.values)

    assert await passes(lacking) is False
    assert await passes("one-qv") is True


def _sampled(values_of, incidents=1_000, total_incidents=1_000_000) -> evidence.Sample:
    """A sample of `incidents` incidents (values_of(n): incident n's values), standing for
    `total_incidents` with as many pairs each."""
    pairs = [(n, v) for n in range(incidents) for v in values_of(n)]
    return evidence.Sample.of(pairs, len(pairs) * total_incidents / incidents)


def test_the_estimate_walks_for_common_fragments_and_twice_the_expected_incidents():
    # Four values an incident; contoso's mailbox in one incident of five, alice.smith's in one of
    # 125 (twice in it), bob's in one of 1,000.
    def values_of(n):
        mailbox = "bob@fabrikam.com" if n == 7 else f"user{n}@contoso.com" if n % 5 == 0 else f"user{n}@x.org"
        alice = ["alice.smith@tailspin.io", "alice.smith2@tailspin.io"] if n % 125 == 0 else [f"file{n}.exe"]
        return [f"ws-{n}", f"10.1.{n % 250}.{n // 250}", mailbox, *alice]

    sample = _sampled(values_of)
    assert sample.incidents_share(["contoso"]) == pytest.approx(0.2)
    assert sample.share(["contoso"]) == pytest.approx(200 / 4008)
    assert evidence.walk_size(sample, ["contoso"], 11) == evidence.LEAST_WALKED
    assert evidence.walk_size(sample, ["9408"], 11) == 0
    assert evidence.walk_size(evidence.EMPTY, ["contoso"], 11) == 0
    # alice.smith: the page's 11 expected within 1,375 incidents; twice that walked (3.3 ms at
    # most) rather than reading 16,000 pairs and their incidents.
    assert sample.incidents_share(["alice.smith"]) == pytest.approx(0.008)
    assert evidence.walk_size(sample, ["alice.smith"], 11) == 2 * 1375
    # bob@fabrikam, in one incident of 1,000: its ten trigrams' bits pass almost no incident
    # without it (0026), so a walk to the page's 11th, about 11,000 incidents at 0.4 microsecond,
    # costs less than reading its 1,000 pairs and their incidents (4.6 ms): a walk, twice the
    # expected incidents but at most MOST_WALKED. At 100,000 incidents it has 100 pairs: VALUES.
    assert evidence.walk_size(sample, ["bob@fabrikam"], 11) == evidence.MOST_WALKED
    assert evidence.walk_size(_sampled(values_of, total_incidents=100_000), ["bob@fabrikam"], 11) == 0
    # In one incident of 2,000 (and 10,000,000 incidents, so that VALUES costs ten times more), the
    # page is expected at the 22,000th incident: beyond what a walk reaches (WALK_REACH), VALUES.
    rarer = _sampled(values_of, incidents=2_000, total_incidents=10_000_000)
    assert rarer.incidents_share(["bob@fabrikam"]) == pytest.approx(1 / 2_000)
    assert evidence.walk_size(rarer, ["bob@fabrikam"], 11) == 0
    # A walk that did not fill the page walks on when VALUES would cost more.
    assert evidence.longer_walk(sample, ["contoso"], 200) == evidence.MOST_WALKED
    assert evidence.longer_walk(sample, ["contoso"], evidence.MOST_WALKED) == 0
    assert evidence.longer_walk(sample, ["bob@fabrikam"], 200) == 0


def test_a_fragment_counted_often_is_extrapolated_from_the_part_of_the_sample_read():
    sample = _sampled(lambda n: [f"ws-{n}", "contoso.com"], incidents=5_000)
    assert sample.share(["contoso"]) == pytest.approx(0.5, rel=0.01)
    assert sample.incidents_share(["contoso"]) == pytest.approx(1.0, rel=0.01)


def test_several_words_are_judged_by_the_values_holding_them_all():
    def values_of(n):
        user = "ursula" if n % 10 == 0 else "alice.smith@contoso.com" if n % 10 == 1 else f"user{n}"
        return [user, "teamviewer_setup.exe" if n % 10 == 2 else f"f{n}.exe"]

    sample = _sampled(values_of)
    # A user and a file that no value holds together: no walk, the value index finds both parts.
    assert sample.share(["ursula"]) == pytest.approx(0.05)
    assert sample.share(["ursula", "teamviewer_setup"]) == 0.0
    assert evidence.walk_size(sample, ["ursula", "teamviewer_setup"], 11) == 0
    # Words that come together in values keep their share.
    assert sample.share(["alice", "smith"]) == pytest.approx(0.05)
    assert sample.share(["contoso", "alice"]) == pytest.approx(0.05)
    assert evidence.walk_size(sample, ["alice", "smith"], 11) > 0


@pytest.mark.parametrize("walk_size", [0, 4, 1_000])
async def test_backward_pages_hold_what_forward_pages_hold(pool, many, monkeypatch, walk_size):
    monkeypatch.setattr(evidence, "walk_size", lambda *a: walk_size)
    forward = [row for page in await _pages(pool, "7777", 4) for row in page]
    backward = [row for page in reversed(await _pages(pool, "7777", last=4)) for row in page]
    assert backward == forward
    assert len(forward) == 14


def test_the_value_index_looks_up_only_the_rarest_parts_and_checks_every_word():
    # "camille" in 8 of 1,000 sampled values, "hayes11" in none: the index reads hayes11's short lists only.
    sample = _sampled(lambda n: ["camille.x" if n < 8 else f"v{n}"])

    def lookup(words):
        params = Params()
        return evidence.index_lookup(params, words, sample), params.values

    sql, values = lookup(["camille.hayes11"])
    assert sql == "d.value_key LIKE $1 AND textlike(d.value_key, $2)"
    assert values == ["%hayes11%", "%camille.hayes11%"]
    # A word that is its own part ("9408") is looked up as it is; "srv-69871" by its digits.
    sql, values = lookup(["9408", "srv-69871"])
    assert sql == "d.value_key LIKE $1 AND d.value_key LIKE $2 AND textlike(d.value_key, $3)"
    assert values == ["%9408%", "%69871%", "%srv-69871%"]
    # A part two words share is looked up once.
    params = Params()
    sql = evidence.index_lookup(params, ["srv-123456", "srv-999999"], sample)
    assert params.values.count("%srv%") <= 1
    assert sql.count("textlike") == 2
    # Without a sample (no evidence yet) the index looks up the whole words.
    params = Params()
    assert evidence.index_lookup(params, ["camille.hayes11"], evidence.EMPTY) == "d.value_key LIKE $1"
    assert params.values == ["%camille.hayes11%"]
    # A part no rarer than one of its trigrams is looked up by that trigram alone: one list read
    # instead of seven ("pro", "war" and "are" are in other values too).
    domains = _sampled(
        lambda n: [
            "ivan.smith@proseware.com"
            if n < 20
            else "bob@software.org"
            if n < 500
            else "program.exe"
            if n < 700
            else "x"
        ]
    )
    params = Params()
    assert evidence.index_lookup(params, ["proseware"], domains) == "d.value_key LIKE $1 AND textlike(d.value_key, $2)"
    assert params.values == ["%ros%", "%proseware%"]
    # Two common parts are both looked up: together they narrow what each alone would not.
    common = _sampled(lambda n: ["stewart@fourthcoffee" if n < 50 else "x"])
    params = Params()
    assert evidence.index_lookup(params, ["stewart@fourthcoffee"], common) == (
        "d.value_key LIKE $1 AND d.value_key LIKE $2 AND textlike(d.value_key, $3)"
    )


def test_a_word_is_looked_up_by_its_pieces_when_its_run_is_common_and_the_word_is_not(monkeypatch):
    # A host number shared by many hosts' names ("fs-85218", "ws-85218", ...): the run finds all
    # of them, the word's pieces ("fs-" with the run) only the one host's, which pays for
    # intersecting the prefix's list with the run's.
    def values_of(n):
        return [f"{('ws', 'lt', 'srv', 'web')[n % 4]}-85218" if n % 20 < 16 else f"v{n}", "fs-85218" if n == 3 else "x"]

    sample = _sampled(values_of, total_incidents=1_000_000)

    def lookup(words, estimate=sample):
        params = Params()
        return evidence.index_lookup(params, words, estimate), params.values

    sql, values = lookup(["fs-85218"])
    assert sql == "d.value_key LIKE $1 AND d.value_key LIKE $2 AND textlike(d.value_key, $3)"
    # ("85218" by its rarest trigram: here each of its trigrams is in exactly the values holding it)
    assert values == ["%852%", "%fs-%", "%fs-85218%"]
    run = "852"
    # A word whose only long run is short has no parts but itself: its pieces, never the padded
    # trigrams of the run ("  5", " 52"); a word without a long run is looked up whole.
    assert lookup(["lt-527"]) == (
        "d.value_key LIKE $1 AND d.value_key LIKE $2 AND textlike(d.value_key, $3)",
        ["%lt-%", "%527%", "%lt-527%"],
    )
    assert lookup(["fs-54"]) == ("d.value_key LIKE $1", ["%fs-54%"])
    # A run that few values hold is looked up alone, the word checked on the rows it finds.
    assert lookup(["fs-4821"]) == ("d.value_key LIKE $1 AND textlike(d.value_key, $2)", ["%4821%", "%fs-4821%"])
    # Runs that are all common, in a word that no value holds: looked up by its runs, each
    # checked on the rows they find.
    files = _sampled(lambda n: [f"vpn_{n}.dll" if n < 200 else f"x{n}"], total_incidents=10_000)
    sql, values = lookup(["vpn_vpn.dll"], files)
    assert sql == "d.value_key LIKE $1 AND d.value_key LIKE $2 AND textlike(d.value_key, $3)"
    assert sorted(values[:2]) == ["%dll%", "%vpn%"] and values[2] == "%vpn\\_vpn.dll%"

    # A word without punctuation keeps its rarest trigram, whatever the rows it adds ("sew" in
    # a third more values than "proseware": looked up by "sew" alone, never whole).
    def values_of(n):
        if n < 60:
            return ["proseware.com"]
        return ["sewing" if n < 80 else "newark" if n < 100 else "prose software" if n < 600 else f"x{n}"]

    words = _sampled(values_of)
    assert lookup(["proseware"], words) == (
        "d.value_key LIKE $1 AND textlike(d.value_key, $2)",
        ["%sew%", "%proseware%"],
    )
    # VALUES' estimate counts a piece's list where the run's entries are, and the padded lists of
    # what it looks up whole: two runs' worth.
    with_pieces = evidence.values_cost(sample, ["fs-85218"])
    monkeypatch.setattr(evidence, "PIECE_ROW_COST", 0.0)
    expected = 0.7 * sample.share([run]) * sample.rows
    assert with_pieces - evidence.values_cost(sample, ["fs-85218"]) == pytest.approx(expected)
    with_lists = evidence.values_cost(sample, ["fs-54"])
    monkeypatch.setattr(evidence, "WHOLE_LOOKUP_COST", 0.0)
    assert with_lists - evidence.values_cost(sample, ["fs-54"]) == pytest.approx(2 * 1_250.0)


async def test_a_walk_that_stops_on_a_near_miss_does_not_list_it(pool, ingest, monkeypatch):
    # A walk of one incident that stops on a near miss: its values hold every trigram of the
    # words but not the words ("abc bcd" against "abcd"), so its bits pass and no value matches,
    # a condition that is null (holds_evidence's last subquery finds no row): not a match. The
    # older incident holding the words, found past where the walk stopped, is the page.
    monkeypatch.setattr(incidents, "PLANNER_CHOOSES_BELOW", 0)
    monkeypatch.setattr(incidents, "NEAR", 2)
    monkeypatch.setattr(evidence, "walk_size", lambda *a: 1)
    (older,) = await ingest(alert_in("m", "Sign-in from a new country", entities=[("user", "xabcdx")]))
    (newer,) = await ingest(alert_in("n", "Sign-in from a new device", minutes=5, entities=[("user", "abc bcd")]))
    walked = []
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda r: walked.append(r.query) if "walked_incident" in r.query else None)
        page = await incidents.list_incidents(
            conn=conn, viewer=EVERYONE, flt=incidents.IncidentFilter(search="abcd"), first=4
        )
        await conn.fetchval("SELECT 1")
    assert walked, "the search walked"
    assert [i.id for i in page.items] == [older.incident_id]
    assert newer.incident_id != older.incident_id


# --- alerts: the walk of the newest alerts, then the indexes --------------------------------------


async def _alert_pages(pool, viewer: Viewer, search: str, first=None, last=None) -> list[list[str]]:
    """Every page of an alerts search, forward with `first` or backward with `last`: external ids."""
    pages, cursor = [], None
    flt = alerts.AlertFilter(search=search)
    while True:
        if last is None:
            page = await alerts.list_alerts(conn=pool, viewer=viewer, flt=flt, first=first, after=cursor)
        else:
            page = await alerts.list_alerts(conn=pool, viewer=viewer, flt=flt, last=last, before=cursor)
        pages.append([a.external_id for a in page.items])
        if not (page.has_next if last is None else page.has_previous):
            return pages
        cursor = page.end_cursor if last is None else page.start_cursor


def _statements(monkeypatch) -> list[str]:
    """Which way the alerts search's evidence side takes from now on (ALERTS: the walk, INDEXED_EVIDENCE)."""
    ran: list[str] = []
    for name in ("ALERTS", "INDEXED_EVIDENCE"):

        class Recording(str):
            def format(self, *args, _name=name, **kwargs):
                if "alert_entities" in kwargs.get("where", ""):
                    ran.append(_name)
                return str.format(self, *args, **kwargs)

        monkeypatch.setattr(alerts, name, Recording(getattr(alerts, name)))
    return ran


@pytest.mark.parametrize("by_index", [True, False])
async def test_an_alert_search_finds_evidence_through_the_index_or_walking_alike(pool, many, monkeypatch, by_index):
    # Host 7777 in every third alert's device and every fifth alert's title: whether the evidence
    # is found through the incidents' values or by walking the newest alerts, the pages are the
    # rule's, forward and backward, and so is the count.
    monkeypatch.setattr(alerts, "INDEXED_EVIDENCE_MOST", 1.0 if by_index else -1.0)
    ran = _statements(monkeypatch)
    expected = [f"k{n}" for n in range(29, -1, -1) if n % 3 == 0 or n % 5 == 0]
    forward = await _alert_pages(pool, EVERYONE, "7777", first=4)
    assert [a for page in forward for a in page] == expected
    assert [len(page) for page in forward] == [4, 4, 4, 2]
    backward = await _alert_pages(pool, EVERYONE, "7777", last=4)
    assert [a for page in reversed(backward) for a in page] == expected
    # Words in a title alone, and in an entity's value alone.
    assert [a for page in await _alert_pages(pool, EVERYONE, "on ws-7777", first=3) for a in page] == [
        f"k{n}" for n in range(25, -1, -5)
    ]
    assert await _alert_pages(pool, EVERYONE, "ws-13", first=3) == [["k13"]]
    assert set(ran) == {"INDEXED_EVIDENCE" if by_index else "ALERTS"}
    assert await alerts.count_alerts(conn=pool, viewer=EVERYONE, flt=alerts.AlertFilter(search="7777")) == 14


@pytest.mark.parametrize("by_index", [True, False])
async def test_an_alert_search_s_count_is_the_rule_s_either_way(pool, many, mixed, monkeypatch, by_index):
    monkeypatch.setattr(alerts, "INDEXED_EVIDENCE_MOST", 1.0 if by_index else -1.0)

    async def count(viewer, search):
        return await alerts.count_alerts(conn=pool, viewer=viewer, flt=alerts.AlertFilter(search=search))

    assert await count(EVERYONE, "7777") == 14
    assert await count(EVERYONE, "detection 1") == 12  # 1, 10-19 and 21: titles only
    assert await count(EVERYONE, "ws-1") == 10  # ws-1, ws-1x but 12, 15 and 18 (WS-7777-X); d1, h1
    dana = Viewer(id=0, name="dana", can_view_incidents=True, can_ingest=False, grants={"default": "read"})
    assert await count(dana, "salaries") == 0 and await count(EVERYONE, "salaries") == 1
    assert await _alert_pages(pool, dana, "salaries", first=5) == [[]]
    assert await _alert_pages(pool, dana, "payroll", first=5) == [[]]
    assert await _alert_pages(pool, EVERYONE, "payroll", first=5) == [["h1"]]


def test_a_count_of_several_words_walks_the_rarest_and_counts_what_any_walk_would():
    # Many "lt-" hosts, few "527"s: the count walks the occurrences of "527" (its trigram the
    # rarer), and finds the same texts a walk of "lt-" would.
    texts = [f"lt-{n}" for n in range(3_000)] + ["ws-527", "lt-527", "lt-5271"]
    names = evidence.Trigrams.of(texts)
    assert evidence._anchor(["lt-", "527"], names) == "527"
    assert evidence._anchor(["lt-", "x.y"], names) == "lt-"  # (no trigram counted: the longest)
    assert names.holding(["lt-", "527"]) == sum("lt-" in t and "527" in t for t in texts)
    values = evidence.Sample.of([(n, t) for n, t in enumerate(texts)], float(len(texts)))
    assert values.share(["lt-", "527"]) == pytest.approx(sum("lt-" in t and "527" in t for t in texts) / len(texts))
