"""Paging backward (Relay's last/before) on every list: the queue, alerts, an incident's alerts
and its activity log, with the keyset guarantees of paging forward."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest

from app.domain import activity, alerts, incidents, pagination
from app.domain.errors import InvalidArgument
from app.domain.viewers import Viewer
from tests.conftest import alert_in
from tests.test_queries import STEPPED_SEARCHES, RecordingConnection, index_conditions, index_names

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


@pytest.mark.parametrize("with_alerts", [False, True])
async def test_each_step_of_the_search_answers_what_the_plain_rule_answers_backward(pool, with_alerts):
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
    assert any("LIMIT 1000" in sql and " ASC" in sql for sql in statements)
    assert any("reltuples" in sql and " ASC" in sql for sql in statements)
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


async def test_a_backward_search_uses_the_recency_and_trigram_indexes(pool):
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
            near, recent, everything = recorder.statements
            assert scans_backward(await explained(conn, near), "incidents_recent")
            for statement in (recent, everything):
                plan = await explained(conn, statement)
                assert "incidents_name_search" in index_names(plan), json.dumps(plan, indent=1)
            # The days from the cursor's (or the oldest incident's) on: bounded both ways in the index.
            days = index_conditions(await explained(conn, recent))
            assert "last_activity_at" in days and ">=" in days and "<=" in days, days
