"""The queue's triage filters (assignee, classification) and sorts, with keyset paging on each."""

from __future__ import annotations

import json

import pytest

from app.domain import incidents
from app.domain.models import SEVERITY_ORDER
from app.domain.viewers import Viewer
from tests.conftest import alert_in, inc
from tests.test_queries import RecordingConnection, index_names

QUEUE = """
query($filter: IncidentFilter, $sort: IncidentSort!, $first: Int, $after: String, $last: Int, $before: String) {
  incidents(filter: $filter, sort: $sort, first: $first, after: $after, last: $last, before: $before) {
    totalCount
    edges { node { id number severity alertCount lastActivityAt assignedTo classification } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""
UPDATE = """
mutation($id: ID!, $assignedTo: String, $classification: Classification) {
  updateIncident(id: $id, assignedTo: $assignedTo, classification: $classification) { errors { code } }
}
"""
SEVERITIES = ["low", "high", "medium", "high", "informational", "low", "medium"]


async def seven_incidents(ingest) -> list[int]:
    """Seven incidents of 1 to 3 alerts, on their own hosts, of mixed severities and times."""
    numbers = []
    for n, severity in enumerate(SEVERITIES):
        alerts = [
            alert_in(f"x{n}-{k}", severity=severity, minutes=(n * 37) % 11 + k, entities=[("device", f"h{n}")])
            for k in range(n % 3 + 1)
        ]
        numbers.append((await ingest(*alerts))[0].incident_id)
    return numbers


async def every_page(api, sort: str, backward: bool = False, size: int = 3, **variables) -> list[dict]:
    """Every incident of the queue, page by page, in the queue's order."""
    nodes: list[dict] = []
    cursor = None
    while True:
        if backward:
            data = (await api(QUEUE, sort=sort, last=size, before=cursor, **variables))["incidents"]
            nodes = [e["node"] for e in data["edges"]] + nodes
            if not data["pageInfo"]["hasPreviousPage"]:
                return nodes
            cursor = data["pageInfo"]["startCursor"]
        else:
            data = (await api(QUEUE, sort=sort, first=size, after=cursor, **variables))["incidents"]
            nodes += [e["node"] for e in data["edges"]]
            if not data["pageInfo"]["hasNextPage"]:
                return nodes
            cursor = data["pageInfo"]["endCursor"]


def expected(nodes: list[dict], sort: str) -> list[str]:
    keys = {
        "LAST_ACTIVITY": lambda n: (n["lastActivityAt"], n["number"]),
        "SEVERITY": lambda n: (SEVERITY_ORDER.index(n["severity"].lower()), n["lastActivityAt"], n["number"]),
        "ALERT_COUNT": lambda n: (n["alertCount"], n["lastActivityAt"], n["number"]),
        "CREATED": lambda n: (n["number"],),
    }
    return [n["id"] for n in sorted(nodes, key=keys[sort], reverse=True)]


@pytest.mark.parametrize("sort", ["LAST_ACTIVITY", "SEVERITY", "ALERT_COUNT", "CREATED"])
async def test_every_sort_pages_forward_and_backward_through_the_same_order(admin, ingest, sort):
    await seven_incidents(ingest)

    forward = await every_page(admin, sort)
    backward = await every_page(admin, sort, backward=True)

    assert len(forward) == 7
    assert [n["id"] for n in forward] == expected(forward, sort)
    assert backward == forward


async def test_a_cursor_of_one_sort_is_refused_by_another(admin, ingest):
    await seven_incidents(ingest)
    page = (await admin(QUEUE, sort="SEVERITY", first=2))["incidents"]

    errors = await admin.errors(QUEUE, sort="CREATED", first=2, after=page["pageInfo"]["endCursor"])

    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "after" in errors[0]["message"]


async def test_sorting_by_severity_or_alert_count_needs_a_grant_on_every_scope(make_user, ingest):
    await seven_incidents(ingest)
    scoped = await make_user("ana", "default=write")

    for sort in ("SEVERITY", "ALERT_COUNT"):
        errors = await scoped.errors(QUEUE, sort=sort, first=5)
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "every scope" in errors[0]["message"]
    # the orders that tell nothing of unreadable alerts are open to them
    assert len(await every_page(scoped, "CREATED")) == 7


async def test_filters_by_assignee_me_unassigned_and_classification(admin, make_user, ingest):
    numbers = await seven_incidents(ingest)
    ana = await make_user("ana", "*=write")
    await ana(UPDATE, id=inc(numbers[0]), assignedTo="me")
    await ana(UPDATE, id=inc(numbers[1]), assignedTo="me", classification="FALSE_POSITIVE")
    await admin(UPDATE, id=inc(numbers[2]), assignedTo="me", classification="TRUE_POSITIVE")

    async def ids(api, **flt):
        return sorted(n["number"] for n in await every_page(api, "CREATED", filter=flt))

    assert await ids(ana, assignedTo=["me"]) == numbers[:2]
    assert await ids(admin, assignedTo=["me"]) == [numbers[2]]
    assert await ids(admin, assignedTo=["ana", "admin"]) == numbers[:3]
    assert await ids(admin, unassigned=True) == numbers[3:]
    assert await ids(admin, unassigned=False) == numbers[:3]
    assert await ids(admin, classification=["UNKNOWN"]) == [numbers[0], *numbers[3:]]
    assert await ids(admin, classification=["TRUE_POSITIVE", "FALSE_POSITIVE"]) == numbers[1:3]
    # and the count agrees with the pages
    data = await ana(QUEUE, sort="SEVERITY", first=1, filter={"assignedTo": ["me"], "classification": ["UNKNOWN"]})
    assert data["incidents"]["totalCount"] == 1
    assert data["incidents"]["edges"][0]["node"]["id"] == inc(numbers[0])


async def test_a_search_keeps_to_last_activity_and_another_sort_with_it_is_refused(admin, ingest):
    # (run on both paths: the app's fixtures answer with the lean path on, then off)
    numbers = await seven_incidents(ingest)

    pinned = (await admin(QUEUE, sort="LAST_ACTIVITY", first=3, filter={"search": str(numbers[0])}))["incidents"]
    refusals = [
        await admin.errors(QUEUE, sort=sort, first=3, filter={"search": search})
        for sort in ("SEVERITY", "ALERT_COUNT", "CREATED")
        for search in (str(numbers[0]), "x0", "alert on host")
    ]

    assert pinned["edges"][0]["node"]["id"] == inc(numbers[0])
    for [error] in refusals:
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "A search lists newest activity first; sort applies to the queue without a search" in error["message"]
    # a blank search is no search: every sort stays open
    assert len(await every_page(admin, "SEVERITY", filter={"search": "  "})) == 7


@pytest.mark.parametrize("status", ["in_progress", "redirected"])
async def test_a_rare_status_filter_reads_its_partial_index_in_the_queues_order(pool, status):
    async with pool.acquire() as conn, conn.transaction():
        # given a queue where the status is rare: 1 incident in 100
        await conn.execute("INSERT INTO incidents (id, name, severity, last_activity_at) VALUES (1, 'x', 'low', now())")
        await conn.execute(
            """
            INSERT INTO incidents (id, name, status, severity, last_activity_at, alert_count, alert_scopes,
                                   redirect_incident_id, classification)
            SELECT g, 'Incident ' || g, s::incident_status, 'medium', now() - g * interval '1 minute',
                   CASE WHEN s = 'redirected' THEN 0 ELSE 1 END, ARRAY['default'],
                   CASE WHEN s = 'redirected' THEN 1 END,
                   CASE WHEN s = 'resolved' THEN 'true_positive' ELSE 'unknown' END::incident_classification
              FROM (SELECT g, CASE WHEN g % 100 = 0 THEN $1 ELSE 'resolved' END AS s
                      FROM generate_series(2, 20000) g) x
            """,
            status,
        )
        await conn.execute("ANALYZE incidents")
        recorder = RecordingConnection(conn)
        viewer = Viewer(id=1, name="scoped", can_view_incidents=True, can_ingest=False, grants={"default": "read"})

        # when the queue is filtered by it, in the default order
        page = await incidents.list_incidents(
            conn=recorder, viewer=viewer, flt=incidents.IncidentFilter(statuses=[status]), first=20
        )

        # then the page is read from incidents_rare_status in order, not by walking the recency index
        assert len(page.items) == 20 and {i.status for i in page.items} == {status}
        sql, args = recorder.statements[-1]
        plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))[0]["Plan"]
        assert index_names(plan) == {"incidents_rare_status"}, json.dumps(plan, indent=1)
        assert "Sort" not in json.dumps(plan), json.dumps(plan, indent=1)
