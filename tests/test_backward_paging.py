"""Paging backward (Relay's last/before) on every list: the queue, alerts, an incident's alerts
and its activity log, with the keyset guarantees of paging forward."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest

from app.domain import activity, alerts, incidents, pagination
from app.domain.errors import InvalidArgument
from app.domain.viewers import Viewer
from tests.conftest import alert_id, alert_in, inc
from tests.test_queries import (
    STEPPED_SEARCHES,
    RecordingConnection,
    choose_way,
    index_conditions,
    index_names,
    pin_sample_names,
    search_steps,
)

EVERYTHING = Viewer(id=1, name="everything", can_view_incidents=True, can_ingest=False, grants={"*": "read"})
DEFAULT_ONLY = Viewer(id=2, name="default", can_view_incidents=True, can_ingest=False, grants={"default": "read"})

Read = Callable[..., Awaitable[pagination.Page]]


def ids(page: pagination.Page) -> list[int]:
    return [item.id for item in page.items]


async def forward_all(read: Read, size: int) -> list[int]:
    found, after = [], None
    while True:
        page = await read(first=size, after=after)
        found += ids(page)
        if not page.has_next:
            return found
        after = page.end_cursor


async def backward_all(read: Read, size: int, *, between_pages=None) -> list[int]:
    """Every item, read from the end of the list backward, put back in the list's order."""
    pages: list[list[int]] = []
    before = None
    while True:
        page = await read(last=size, before=before)
        assert len(page.items) <= size
        assert page.has_next is (before is not None)
        pages.insert(0, ids(page))
        if not page.has_previous:
            return [i for p in pages for i in p]
        assert len(page.items) == size
        before = page.start_cursor
        if between_pages:
            await between_pages()


def queue_of(pool, viewer=EVERYTHING, **flt) -> Read:
    async def read(**paging):
        return await incidents.list_incidents(conn=pool, viewer=viewer, flt=incidents.IncidentFilter(**flt), **paging)

    return read


def alerts_of(pool, viewer=EVERYTHING, **flt) -> Read:
    async def read(**paging):
        return await alerts.list_alerts(conn=pool, viewer=viewer, flt=alerts.AlertFilter(**flt), **paging)

    return read


def log_of(pool, incident_id: int) -> Read:
    async def read(**paging):
        return await activity.entries_page(conn=pool, incident_id=incident_id, **paging)

    return read


async def incidents_named(ingest, *titles: str, scope: str = "default") -> list[int]:
    """One incident per title, each detected a minute after the previous one (the last is newest)."""
    found = await ingest(*[alert_in(f"{scope}-{n}", title, minutes=n, scope=scope) for n, title in enumerate(titles)])
    return [a.incident_id for a in found]


# --- the arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paging", "field", "words"),
    [
        ({"first": 2, "last": 2}, "last", "last cannot be combined with first"),
        ({"after": "x", "before": "y", "last": 2}, "last", "last cannot be combined with after"),
        ({"first": 2, "before": "y"}, "before", "before cannot be combined with first"),
        ({"after": "x", "last": 2}, "last", "last cannot be combined with after"),
        ({"before": "y"}, "last", "before needs last"),
        ({}, "first", "first or last is needed"),
        ({"last": 0}, "last", "last must be between 1 and 100, got 0"),
        ({"last": 101}, "last", "last must be between 1 and 100, got 101"),
    ],
)
def test_a_page_is_forward_or_backward_never_both(paging, field, words):
    with pytest.raises(InvalidArgument) as refused:
        pagination.window(**paging)
    assert refused.value.field == field
    assert words in str(refused.value)


def test_null_arguments_of_the_other_direction_are_not_mixing():
    """Relay's clients send the other direction's arguments as null."""
    assert pagination.window(first=None, after=None, last=3, before="c") == pagination.Window(3, "c", backward=True)
    assert pagination.window(first=3, after="c", last=None, before=None) == pagination.Window(3, "c")


# --- every list, both ways ------------------------------------------------------------------------


async def test_the_queue_read_backward_is_the_queue_read_forward(pool, ingest):
    await incidents_named(ingest, *[f"story {n}" for n in range(7)])
    read = queue_of(pool)
    everything = await forward_all(read, 100)
    assert len(everything) == 7

    for size in (1, 2, 3, 7, 100):
        assert await backward_all(read, size) == everything, size


async def test_last_without_before_is_the_end_of_the_list_in_its_order(pool, ingest):
    made = await incidents_named(ingest, *[f"story {n}" for n in range(5)])
    read = queue_of(pool)

    end = await read(last=2)

    # Newest first: the two oldest incidents, the newer of them first.
    assert ids(end) == [made[1], made[0]]
    assert (end.has_previous, end.has_next) == (True, False)
    whole = await read(last=5)
    assert ids(whole) == list(reversed(made))
    assert (whole.has_previous, whole.has_next) == (False, False)


async def test_back_from_a_pages_start_then_forward_again_gives_that_page_back(pool, ingest):
    await incidents_named(ingest, *[f"story {n}" for n in range(9)])
    read = queue_of(pool)
    first = await read(first=3)
    second = await read(first=3, after=first.end_cursor)

    back = await read(last=3, before=second.start_cursor)
    assert ids(back) == ids(first)
    assert back.cursors == first.cursors
    assert (back.has_previous, back.has_next) == (False, True)
    again = await read(first=3, after=back.end_cursor)
    assert ids(again) == ids(second)


async def test_alerts_an_incidents_alerts_and_its_log_page_backward(pool, ingest):
    shared = [("device", "WS-3")]
    made = await ingest(*[alert_in(f"a{n}", minutes=n, entities=shared) for n in range(7)])
    await ingest(alert_in("elsewhere", minutes=3))
    incident_id = made[0].incident_id
    lists = {
        "alerts": alerts_of(pool),
        "an incident's alerts": alerts_of(pool, incident_id=incident_id),
        "its activity log": log_of(pool, incident_id),
    }
    for name, read in lists.items():
        everything = await forward_all(read, 100)
        assert len(everything) == (8 if name == "alerts" else 7), name
        for size in (1, 2, 3, 100):
            assert await backward_all(read, size) == everything, (name, size)


async def test_first_pages_of_many_incidents_from_the_end(pool, ingest):
    one = await ingest(*[alert_in(f"a{n}", minutes=n, entities=[("device", "one")]) for n in range(4)])
    two = await ingest(*[alert_in(f"b{n}", minutes=n, entities=[("device", "two")]) for n in range(2)])
    numbers = [one[0].incident_id, two[0].incident_id]

    pages = await alerts.first_alerts_of_incidents(conn=pool, viewer=EVERYTHING, incident_ids=numbers, last=3)

    assert ids(pages[numbers[0]]) == [one[2].id, one[1].id, one[0].id]
    assert (pages[numbers[0]].has_previous, pages[numbers[0]].has_next) == (True, False)
    assert ids(pages[numbers[1]]) == [two[1].id, two[0].id]
    assert (pages[numbers[1]].has_previous, pages[numbers[1]].has_next) == (False, False)

    logs = await activity.first_entries_of_incidents(conn=pool, incident_ids=numbers, last=1)
    # The oldest entry of each log: the incident was created.
    assert [logs[n].items[0].kind for n in numbers] == ["incident_created", "incident_created"]
    assert [logs[n].has_previous for n in numbers] == [True, True]


async def test_an_empty_list_has_an_empty_last_page(pool, ingest):
    for read in (queue_of(pool), alerts_of(pool), log_of(pool, 1)):
        page = await read(last=5)
        assert (page.items, page.has_previous, page.has_next, page.start_cursor) == ([], False, False, None)


# --- the keyset guarantees --------------------------------------------------------------------------


async def test_paging_backward_is_stable_while_incidents_are_added(pool, ingest):
    original = await incidents_named(ingest, *[f"story {n}" for n in range(6)])
    added: list[tuple[int, int]] = []

    async def new_incidents_arrive():
        n = len(added)
        newer, older = await ingest(
            alert_in(f"newer-{n}", f"newer {n}", minutes=1000 + n),
            alert_in(f"older-{n}", f"older {n}", minutes=-1000 - n),
        )
        added.append((newer.incident_id, older.incident_id))

    seen = await backward_all(queue_of(pool), 2, between_pages=new_incidents_arrive)

    # Read from the oldest up: incidents added below the cursor are not seen, those above it are
    # (the newest first, as the queue lists them); none twice, none of the original missed.
    assert len(seen) == len(set(seen))
    newer = [n for n, _ in reversed(added)]
    assert seen == newer + list(reversed(original))


async def test_equal_activity_times_are_neither_skipped_nor_repeated_backward(pool, ingest):
    await ingest(*[alert_in(f"same-{n}", f"same time {n}") for n in range(5)])
    read = queue_of(pool)
    assert await backward_all(read, 2) == await forward_all(read, 100)


# --- the pinned incident ----------------------------------------------------------------------------


async def test_the_pinned_incident_stays_first_when_paging_backward(pool, ingest):
    # Incident 6 is named by the search "6" and holds no "6" in its name; 2 and 4 do.
    await incidents_named(ingest, "on WS-6 one", "two", "on WS-6 three", "four", "on WS-6 five", "six")
    read = queue_of(pool, search="6")
    everything = await forward_all(read, 100)
    assert everything == [6, 5, 3, 1]

    for size in (1, 2, 3, 4, 10):
        assert await backward_all(read, size) == everything, size

    # The page that reaches the top holds the pinned incident first, with its own cursor.
    top = await read(last=2, before=(await read(last=2)).start_cursor)
    assert ids(top) == [6, 5]
    assert top.start_cursor == pagination.encode("p", 6) == (await read(first=1)).start_cursor
    assert (top.has_previous, top.has_next) == (False, True)


async def test_the_page_just_below_the_pinned_incident_says_it_comes_before(pool, ingest):
    await incidents_named(ingest, "on WS-3 one", "on WS-3 two", "three")
    read = queue_of(pool, search="3")

    below = await read(last=2)

    assert ids(below) == [2, 1]
    assert below.has_previous is True
    pinned = await read(last=2, before=below.start_cursor)
    assert ids(pinned) == [3]
    assert (pinned.has_previous, pinned.has_next) == (False, True)


async def test_a_backward_page_that_does_not_reach_the_top_does_not_look_for_the_pinned_incident(pool, ingest):
    await incidents_named(ingest, "on WS-4 one", "on WS-4 two", "on WS-4 three", "four")
    await pagination.ensure_sealing_key(pool)  # read once per process: not one of the statements counted
    recorder = RecordingConnection(pool)
    read = queue_of(recorder, search="4")

    assert ids(await read(last=2)) == [2, 1]
    assert len(recorder.statements) == 1
    assert ids(await read(last=3)) == [3, 2, 1]
    assert len(recorder.statements) == 3  # the name matches ran out: the pinned incident was looked for


async def test_before_the_pinned_incidents_cursor_nothing_comes(pool, ingest):
    await incidents_named(ingest, "on WS-2 one", "two")
    read = queue_of(pool, search="2")
    pinned = await read(first=1)
    assert ids(pinned) == [2]

    empty = await read(last=5, before=pinned.start_cursor)

    assert (empty.items, empty.has_previous, empty.has_next) == ([], False, True)


async def test_a_pinned_incident_the_filter_or_viewer_excludes_is_not_put_back(pool, ingest):
    await incidents_named(ingest, "on WS-2 one")
    await incidents_named(ingest, "hidden", scope="hr")
    assert ids(await queue_of(pool, search="2")(last=5)) == [2, 1]
    assert ids(await queue_of(pool, DEFAULT_ONLY, search="2")(last=5)) == [1]
    assert ids(await queue_of(pool, search="2", statuses=["resolved"])(last=5)) == []


# --- what a viewer may see ------------------------------------------------------------------------


async def test_a_scoped_viewer_pages_backward_through_what_they_may_see_only(pool, ingest):
    await incidents_named(ingest, *[f"story {n}" for n in range(4)])
    hidden = await incidents_named(ingest, *[f"secret {n}" for n in range(3)], scope="hr")
    for read in (queue_of(pool, DEFAULT_ONLY), alerts_of(pool, DEFAULT_ONLY)):
        everything = await forward_all(read, 100)
        assert len(everything) == 4 and not set(everything) & set(hidden)
        assert await backward_all(read, 3) == everything


# --- cursors --------------------------------------------------------------------------------------


async def test_foreign_and_garbage_cursors_are_refused_as_before(pool, ingest):
    (a,) = await ingest(alert_in("a"))
    await ingest(alert_in("b"))
    queue_cursor = (await queue_of(pool)(first=1)).end_cursor
    alert_cursor = (await alerts_of(pool)(first=1)).end_cursor
    entry_cursor = (await log_of(pool, a.incident_id)(first=1)).end_cursor
    pinned_cursor_of_another_number = pagination.encode("p", 1)
    for read, foreign in (
        (queue_of(pool), [alert_cursor, entry_cursor, "garbage", ""]),
        (queue_of(pool, search="2"), [pinned_cursor_of_another_number]),
        (alerts_of(pool), [queue_cursor, entry_cursor, "garbage"]),
        (log_of(pool, a.incident_id), [queue_cursor, alert_cursor, "garbage"]),
    ):
        for cursor in foreign:
            with pytest.raises(InvalidArgument) as refused:
                await read(last=1, before=cursor)
            assert refused.value.field == "before"
            assert str(refused.value) == "before is not a cursor from this list"


# --- the typeahead's steps, backward --------------------------------------------------------------


@pytest.mark.parametrize("way", ["steps", "planner"])
@pytest.mark.parametrize("with_alerts", [False, True])
async def test_each_step_of_the_search_answers_what_the_plain_rule_answers_backward(
    pool, with_alerts, way, monkeypatch
):
    choose_way(monkeypatch, way)
    """As test_queries' forward test: the plain rule's last 30 matches, three pages of 10 from the
    end; and the 10 before the forward 11th match, from its cursor."""
    await pool.execute(
        """
        INSERT INTO incidents (name, severity, last_activity_at, alert_count, alert_scopes)
        SELECT concat_ws(' ',
                   CASE WHEN g % 5 = 0 THEN 'Lateral movement' ELSE 'Suspicious PowerShell' END,
                   'on', CASE WHEN g % 7 = 0 THEN 'FS-' ELSE 'WS-' END || g,
                   CASE WHEN g % 3 = 0 THEN 'by user' || (g % 97) || '@' || (ARRAY['contoso.com', 'fabrikam.com'])[g % 2 + 1] END,
                   CASE WHEN g % 211 = 0 THEN 'rare' END, CASE WHEN g = 2500 THEN 'Zanzibar alpha beta' END,
                   CASE WHEN g % 13 = 0 THEN 'C2 beacon' END, CASE WHEN g % 11 = 0 THEN 'HQ-' || (10000 + g) END),
               'medium', now() - g * interval '10 minutes', 1, ARRAY['default']
          FROM generate_series(1, 3000) g
        """
    )
    await pool.execute(
        """
        INSERT INTO alerts (external_id, title, severity, category, scope, detected_at, incident_id)
        SELECT 'x' || i.id || '-' || n, i.name, 'medium', 'Execution', 'default', i.last_activity_at, i.id
          FROM incidents i, generate_series(1, 3) n WHERE i.id % 2 = 0
        """
    )
    await pool.execute("ANALYZE incidents")
    plain = "SELECT id FROM incidents WHERE {words} ORDER BY last_activity_at DESC, id DESC"
    async with pool.acquire() as conn:
        recorder = RecordingConnection(conn)

        async def read(flt, **paging):
            if not with_alerts:
                return await incidents.list_incidents(conn=recorder, viewer=EVERYTHING, flt=flt, **paging)
            page, alert_pages = await incidents.list_incidents_with_alerts(
                conn=recorder, viewer=EVERYTHING, flt=flt, alerts_first=2, **paging
            )
            assert [len(alert_pages[i.id].items) for i in page.items] == [2 if i.id % 2 == 0 else 0 for i in page.items]
            return page

        for text in STEPPED_SEARCHES:
            words = text.split()
            expected = [
                r["id"]
                for r in await pool.fetch(
                    plain.format(words=" AND ".join(f"name ILIKE ${n + 1}" for n in range(len(words)))),
                    *[f"%{w}%" for w in words],
                )
            ]
            flt = incidents.IncidentFilter(search=text)
            found: list[int] = []
            before = None
            for _ in range(3):
                page = await read(flt, last=10, before=before)
                found = ids(page) + found
                if not page.has_previous:
                    break
                before = page.start_cursor
            assert found == expected[-30:], text

            forward = await read(flt, first=11)
            if len(forward.items) == 11:
                back = await read(flt, last=10, before=forward.end_cursor)
                assert ids(back) == expected[:10], text
                assert back.has_previous is False
    statements = [sql for sql, _ in recorder.statements]
    if way == "planner":
        # The plain rule's statement (after the newest 1,000 for several words), no other step;
        # the evidence step (incident_evidence) has ways of its own.
        statements = [sql for sql in statements if "incident_evidence" not in sql]
        assert not any("activity_day" in sql or "interval '0'" in sql or "part_counts" in sql for sql in statements)
        return
    assert any("LIMIT 1000" in sql and " ASC" in sql for sql in statements)
    assert any("part_counts" in sql and " ASC" in sql for sql in statements)
    assert any("BETWEEN activity_day" in sql for sql in statements)
    assert any("interval '0' ASC" in sql and "activity_day" not in sql for sql in statements)


# --- the indexes, read the other way ----------------------------------------------------------------


def plan_nodes(plan: dict) -> list[dict]:
    return [plan, *(n for child in plan.get("Plans", []) for n in plan_nodes(child))]


async def explained(conn, statement: tuple[str, tuple]) -> dict:
    sql, args = statement
    return json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))[0]["Plan"]


def scans_backward(plan: dict, index: str) -> bool:
    """Whether the plan walks `index` backward and sorts nothing."""
    nodes = plan_nodes(plan)
    walks = any(n.get("Index Name") == index and n.get("Scan Direction") == "Backward" for n in nodes)
    return walks and not any(n["Node Type"] in ("Sort", "Incremental Sort") for n in nodes)


def sorts_only_a_few(plan: dict, index: str) -> bool:
    """Whether the plan finds the rows beyond the cursor with `index` and sorts no more than a
    page's worth: what the planner rightly does when it expects few rows there."""
    nodes = plan_nodes(plan)
    sorts = [n for n in nodes if n["Node Type"] in ("Sort", "Incremental Sort")]
    return any(n.get("Index Name") == index for n in nodes) and all(n["Plan Rows"] <= 50 for n in sorts)


async def test_backward_pages_walk_the_indexes_backward(pool):
    """From the end of each list, or from a cursor deep in it, a backward page walks the list's
    index backward and stops after a page; from a cursor near the top, with few rows above it,
    the planner may instead fetch those few through the index and sort them."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            INSERT INTO incidents (name, severity, last_activity_at, alert_count, alert_scopes)
            SELECT 'Suspicious PowerShell on WS-' || g, 'medium', now() - g * interval '1 minute', 5,
                   ARRAY['default']
              FROM generate_series(1, 5000) g
            """
        )
        await conn.execute(
            """
            INSERT INTO alerts (external_id, title, severity, category, scope, detected_at, incident_id)
            SELECT 'x' || i.id || '-' || n, i.name, 'medium', 'Execution', 'default', i.last_activity_at, i.id
              FROM incidents i, generate_series(1, 5) n
            """
        )
        await conn.execute(
            "INSERT INTO activity_log (incident_id, kind, actor) SELECT i.id, 'alert_correlated', 'system'"
            " FROM incidents i, generate_series(1, 5) n"
        )
        # Incident 2500 is a big one, though far from most of the table (then the planner may walk
        # the primary key and filter, forward as backward): 300 more alerts, as many log entries.
        await conn.execute(
            """
            INSERT INTO alerts (external_id, title, severity, category, scope, detected_at, incident_id)
            SELECT 'big-' || n, 'Beacon', 'medium', 'Execution', 'default', now() - n * interval '1 second', 2500
              FROM generate_series(1, 300) n
            """
        )
        await conn.execute(
            "INSERT INTO activity_log (incident_id, kind, actor)"
            " SELECT 2500, 'alert_correlated', 'system' FROM generate_series(1, 300)"
        )
        await conn.execute("ANALYZE incidents, alerts, activity_log")
        recorder = RecordingConnection(conn)
        lists: list[tuple[str, Read]] = [
            ("incidents_recent", queue_of(recorder, DEFAULT_ONLY)),
            ("alerts_recent", alerts_of(recorder, DEFAULT_ONLY)),
            ("alerts_incident", alerts_of(recorder, DEFAULT_ONLY, incident_id=2500)),
            ("activity_log_incident", log_of(recorder, 2500)),
        ]
        for index, read in lists:
            top = (await read(first=3)).end_cursor
            deep = (await read(last=3)).start_cursor
            for before in (None, deep, top):
                await read(last=3 if index.startswith("activity") else 20, before=before)
                plan = await explained(conn, recorder.statements[-1])
                if before is top:
                    assert sorts_only_a_few(plan, index) or scans_backward(plan, index), json.dumps(plan, indent=1)
                else:
                    assert scans_backward(plan, index), json.dumps(plan, indent=1)


async def test_a_backward_search_uses_the_recency_and_trigram_indexes(pool, monkeypatch):
    choose_way(monkeypatch, "steps")  # as at a million incidents
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            INSERT INTO incidents (name, severity, last_activity_at, alert_count, alert_scopes)
            SELECT 'Suspicious PowerShell command line on WS-' || g || ' by user' || (g % 97),
                   'medium', now() - g * interval '1 minute', 1, ARRAY['default']
              FROM generate_series(1, 5000) g
            """
        )
        await conn.execute(
            "INSERT INTO incidents (name, severity, last_activity_at, alert_count, alert_scopes)"
            " VALUES ('Zanzibar exfiltration on WS-77', 'high', now() - interval '3 days', 1, ARRAY['default'])"
        )
        await conn.execute("SELECT gin_clean_pending_list('incidents_name_search')")
        await conn.execute("ANALYZE incidents")
        # A sample whose names all hold "zanzibar": the steps take RECENT (test_queries has the other case).
        await pin_sample_names(monkeypatch, conn, ["zanzibar"] * 10_000)
        await conn.execute("SET LOCAL enable_seqscan = off")  # 5,000 rows: see test_queries' forward test
        recorder = RecordingConnection(conn)
        flt = incidents.IncidentFilter(search="zanzibar")
        # The oldest 100 incidents are older than the match: paging up from them finds it.
        bottom = (
            await incidents.list_incidents(conn=conn, viewer=EVERYTHING, flt=incidents.IncidentFilter(), last=100)
        ).start_cursor

        for before in (None, bottom):
            recorder.statements.clear()
            page = await incidents.list_incidents(conn=recorder, viewer=EVERYTHING, flt=flt, last=20, before=before)

            assert [i.name for i in page.items] == ["Zanzibar exfiltration on WS-77"]
            # (then the evidence matches, issue 16: tests/test_evidence_search.py pages them both ways)
            near, recent, everything, *_evidence = search_steps(recorder)
            assert scans_backward(await explained(conn, near), "incidents_recent")
            for statement in (recent, everything):
                plan = await explained(conn, statement)
                assert "incidents_name_search" in index_names(plan), json.dumps(plan, indent=1)
            # The days from the cursor's (or the oldest incident's) on: bounded both ways in the index.
            days = index_conditions(await explained(conn, recent))
            assert "last_activity_at" in days and ">=" in days and "<=" in days, days


# --- through the API, on both execution paths -------------------------------------------------------

PAGE = "edges { cursor node { id } } pageInfo { hasPreviousPage hasNextPage startCursor endCursor }"
QUEUE = f"""
query($search: String, $first: Int, $after: String, $last: Int, $before: String) {{
  incidents(filter: {{search: $search}}, first: $first, after: $after, last: $last, before: $before) {{ {PAGE} }}
}}
"""
ALERTS = f"""
query($first: Int, $after: String, $last: Int, $before: String) {{
  alerts(first: $first, after: $after, last: $last, before: $before) {{ {PAGE} }}
}}
"""
INCIDENT_ALERTS = f"""
query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {{
  incident(id: $id) {{ alerts(first: $first, after: $after, last: $last, before: $before) {{ {PAGE} }} }}
}}
"""
INCIDENT_LOG = f"""
query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {{
  incident(id: $id) {{ activityLog(first: $first, after: $after, last: $last, before: $before) {{ {PAGE} }} }}
}}
"""


def connection_of(data: dict) -> dict:
    """The one connection a query of this module reads."""
    while "edges" not in data:
        (data,) = data.values()
    return data


def page_of(connection: dict) -> tuple[list[str], bool, bool]:
    """(ids, hasPreviousPage, hasNextPage), with the start and end cursors checked against the edges."""
    info, edges = connection["pageInfo"], connection["edges"]
    assert info["startCursor"] == (edges[0]["cursor"] if edges else None)
    assert info["endCursor"] == (edges[-1]["cursor"] if edges else None)
    return [e["node"]["id"] for e in edges], info["hasPreviousPage"], info["hasNextPage"]


async def api_forward(api, query: str, size: int, **variables) -> list[str]:
    found, after = [], None
    while True:
        connection = connection_of(await api(query, first=size, after=after, **variables))
        found += page_of(connection)[0]
        if not connection["pageInfo"]["hasNextPage"]:
            return found
        after = connection["pageInfo"]["endCursor"]


async def api_backward(api, query: str, size: int, **variables) -> list[str]:
    """As Relay's clients page backward: the other direction's variables null."""
    pages, before = [], None
    while True:
        connection = connection_of(await api(query, first=None, after=None, last=size, before=before, **variables))
        ids, has_previous, has_next = page_of(connection)
        assert has_next is (before is not None)
        pages.insert(0, ids)
        if not has_previous:
            return [i for p in pages for i in p]
        before = connection["pageInfo"]["startCursor"]


async def test_every_connection_pages_backward_as_it_pages_forward(admin, ingest):
    shared = [("device", "WS-3")]
    made = await ingest(*[alert_in(f"a{n}", f"story {n}", minutes=n, entities=shared) for n in range(5)])
    await ingest(*[alert_in(f"b{n}", f"story b{n}", minutes=10 + n) for n in range(4)])
    incident = inc(made[0].incident_id)
    for query, variables in (
        (QUEUE, {}),
        (QUEUE, {"search": "story"}),
        (ALERTS, {}),
        (INCIDENT_ALERTS, {"id": incident}),
        (INCIDENT_LOG, {"id": incident}),
    ):
        everything = await api_forward(admin, query, 100, **variables)
        assert len(everything) >= 5
        for size in (1, 2, 3, 100):
            assert await api_backward(admin, query, size, **variables) == everything, (query, size)


async def test_last_alone_is_the_end_of_the_list_and_before_alone_a_default_page(admin, ingest):
    """`first` has no default in the schema: `last` alone is not mixed with it."""
    made = await incidents_named(ingest, *[f"story {n}" for n in range(25)])

    end = (await admin("{ incidents(last: 2) { " + PAGE + " } }"))["incidents"]
    assert page_of(end) == ([inc(made[1]), inc(made[0])], True, False)

    before = end["pageInfo"]["startCursor"]
    page = (await admin("query($c: String) { incidents(before: $c) { " + PAGE + " } }", c=before))["incidents"]
    # The queue's default page size, 20, just before the cursor.
    assert page_of(page) == ([inc(n) for n in reversed(made[2:22])], True, True)


async def test_back_from_a_pages_start_then_forward_again(admin, ingest):
    await incidents_named(ingest, *[f"story {n}" for n in range(8)])
    first = connection_of(await admin(QUEUE, first=3))
    second = connection_of(await admin(QUEUE, after=first["pageInfo"]["endCursor"], first=3))

    back = connection_of(await admin(QUEUE, last=3, before=second["pageInfo"]["startCursor"]))
    assert back == {**first, "pageInfo": {**first["pageInfo"], "hasNextPage": True}}
    again = connection_of(await admin(QUEUE, first=3, after=back["pageInfo"]["endCursor"]))
    assert again == second


async def test_the_pinned_incident_through_the_api(admin, ingest):
    await incidents_named(ingest, "on WS-6 one", "two", "on WS-6 three", "four", "on WS-6 five", "six")
    everything = await api_forward(admin, QUEUE, 100, search="6")
    assert everything == [inc(6), inc(5), inc(3), inc(1)]
    assert await api_backward(admin, QUEUE, 3, search="6") == everything

    pinned = connection_of(await admin(QUEUE, search="6", first=1))
    empty = connection_of(await admin(QUEUE, search="6", last=3, before=pinned["pageInfo"]["startCursor"]))
    assert page_of(empty) == ([], False, True)


@pytest.mark.parametrize(
    ("paging", "field", "words"),
    [
        ({"first": 2, "last": 2}, "last", "last cannot be combined with first"),
        ({"after": "AAAA", "before": "AAAA"}, "before", "before cannot be combined with after"),
        ({"first": 2, "before": "AAAA"}, "before", "before cannot be combined with first"),
        ({"last": 2, "after": "AAAA"}, "last", "last cannot be combined with after"),
        ({"last": 0}, "last", "last must be between 1 and 100, got 0"),
        ({"last": 101}, "last", "last must be between 1 and 100, got 101"),
    ],
)
async def test_mixed_directions_and_sizes_out_of_range_are_bad_user_input(admin, ingest, paging, field, words):
    (a,) = await ingest(alert_in("a"))
    for query, variables in (
        (QUEUE, {}),
        (ALERTS, {}),
        (INCIDENT_ALERTS, {"id": inc(a.incident_id)}),
        (INCIDENT_LOG, {"id": inc(a.incident_id)}),
    ):
        errors = await admin.errors(query, **variables, **paging)
        assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"], errors
        assert errors[0]["extensions"]["field"] == field, errors
        assert words in errors[0]["message"], errors


async def test_a_cursor_from_another_list_is_refused_as_before(admin, ingest):
    (a,) = await ingest(alert_in("a"))
    queue_cursor = connection_of(await admin(QUEUE, first=1))["pageInfo"]["endCursor"]
    alert_cursor = connection_of(await admin(ALERTS, first=1))["pageInfo"]["endCursor"]
    for query, variables, foreign in (
        (QUEUE, {}, alert_cursor),
        (ALERTS, {}, queue_cursor),
        (INCIDENT_ALERTS, {"id": inc(a.incident_id)}, queue_cursor),
        (INCIDENT_LOG, {"id": inc(a.incident_id)}, alert_cursor),
        (QUEUE, {}, "garbage"),
    ):
        errors = await admin.errors(query, last=1, before=foreign, **variables)
        assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"], errors
        assert errors[0]["message"] == "before is not a cursor from this list"
        assert errors[0]["extensions"]["field"] == "before"


async def test_each_incidents_last_alerts_and_log_entries_in_the_queue(admin, ingest):
    """The typeahead's shape with a backward page of each incident's alerts: not the first ones."""
    one = await ingest(*[alert_in(f"a{n}", "story one", minutes=n, entities=[("device", "one")]) for n in range(4)])
    two = await ingest(
        *[alert_in(f"b{n}", "story two", minutes=10 + n, entities=[("device", "two")]) for n in range(3)]
    )
    query = """query($last: Int) { incidents(filter: {search: "story"}, first: 10) { edges { node {
      id alerts(last: $last) { edges { node { id } } pageInfo { hasPreviousPage hasNextPage } }
      activityLog(last: 1) { edges { node { kind } } pageInfo { hasPreviousPage hasNextPage } } } } } }"""

    data = await admin(query, last=2)

    nodes = [e["node"] for e in data["incidents"]["edges"]]
    assert [n["id"] for n in nodes] == [inc(two[0].incident_id), inc(one[0].incident_id)]
    assert [[a["node"]["id"] for a in n["alerts"]["edges"]] for n in nodes] == [
        [alert_id(two[1].id), alert_id(two[0].id)],
        [alert_id(one[1].id), alert_id(one[0].id)],
    ]
    assert [n["alerts"]["pageInfo"] for n in nodes] == [{"hasPreviousPage": True, "hasNextPage": False}] * 2
    assert [n["activityLog"]["edges"] for n in nodes] == [[{"node": {"kind": "INCIDENT_CREATED"}}]] * 2
    assert [n["activityLog"]["pageInfo"]["hasPreviousPage"] for n in nodes] == [True, True]


async def test_a_scoped_viewer_pages_backward_through_what_they_may_see(make_user, ingest):
    await incidents_named(ingest, *[f"story {n}" for n in range(4)])
    await incidents_named(ingest, *[f"secret {n}" for n in range(3)], scope="hr")
    analyst = await make_user("analyst", "default=read")
    for query in (QUEUE, ALERTS):
        everything = await api_forward(analyst, query, 100)
        assert len(everything) == 4
        assert await api_backward(analyst, query, 3) == everything


async def test_last_costs_what_first_costs(admin):
    nested = (
        "{{ incidents({arg}: 100) {{ edges {{ node {{ alerts({arg}: 100) {{ edges {{ node {{ id }} }} }} }} }} }} }}"
    )
    costs = []
    for arg in ("first", "last"):
        body = (await admin.post(nested.format(arg=arg))).json()
        costs.append(body["extensions"]["cost"]["requested"])
    assert costs[0] == costs[1] == 1 + 100 * (2 + 1 + 100 * 2)
    # Without either, the default page sizes: 20 incidents, 50 alerts each.
    body = (await admin.post("{ incidents { edges { node { alerts { edges { node { id } } } } } } }")).json()
    assert body["extensions"]["cost"]["requested"] == 1 + 20 * (2 + 1 + 50 * 2)


async def test_a_moves_answer_reads_the_target_incidents_alerts_backward(admin, ingest):
    a, b = await ingest(alert_in("a", minutes=5), alert_in("b", minutes=1))
    query = """mutation($ids: [ID!]!, $target: LinkTarget!) {
      linkAlerts(alertIds: $ids, target: $target, comment: "same attacker") {
        targetIncident { alerts(last: 1) { edges { node { id } } pageInfo { hasPreviousPage hasNextPage } } }
        errors { code }
      }
    }"""

    result = (await admin(query, ids=[alert_id(a.id)], target={"existingIncidentId": inc(b.incident_id)}))["linkAlerts"]

    assert result["errors"] == []
    # The target's alerts, newest first, are a then b: the last one is b.
    assert result["targetIncident"]["alerts"] == {
        "edges": [{"node": {"id": alert_id(b.id)}}],
        "pageInfo": {"hasPreviousPage": True, "hasNextPage": False},
    }


async def test_a_backward_queue_page_with_each_incidents_first_alerts(admin, ingest):
    """The typeahead's shape (the lean path reads the alerts in the queue's statement), backward."""
    one = await ingest(*[alert_in(f"a{n}", "story one", minutes=n, entities=[("device", "one")]) for n in range(3)])
    await ingest(alert_in("b", "story two", minutes=10))
    query = """{ incidents(filter: {search: "story"}, last: 1) {
      edges { node { id alerts(first: 1) { edges { node { id } } } } } pageInfo { hasPreviousPage hasNextPage } } }"""

    data = (await admin(query))["incidents"]

    assert data["edges"] == [
        {"node": {"id": inc(one[0].incident_id), "alerts": {"edges": [{"node": {"id": alert_id(one[2].id)}}]}}}
    ]
    assert data["pageInfo"] == {"hasPreviousPage": True, "hasNextPage": False}
