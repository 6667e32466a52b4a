"""Two analysts in two browser contexts: what one moves, the other's pages show without a reload
(issue 13: live updates over graphql-sse)."""

from __future__ import annotations

from playwright.async_api import expect

from tests.conftest import alert_id, alert_in, inc
from tests.e2e.conftest import Console

LINK = """
mutation($ids: [ID!]!, $target: LinkTarget!) {
  linkAlerts(alertIds: $ids, target: $target, comment: "belongs with the phish") { errors { code } }
}
"""


async def test_the_queue_and_the_incident_page_update_when_someone_else_moves(
    console, browser, live_server, make_user, ingest
):
    # Given two incidents, and two analysts: one on the queue, one on A's activity log
    a = await ingest(
        alert_in("a1", "Beacon on WS-1", entities=[("device", "ws-1")]),
        alert_in("a2", "Beacon again on WS-1", minutes=1, entities=[("device", "ws-1")]),
    )
    b = await ingest(alert_in("b1", "Phish for bob", minutes=2, entities=[("user", "bob")]))
    first = await make_user("first", "*=write")
    second = await make_user("second", "*=write")
    await console.sign_in(first)
    queue = console.page.locator(f'table.queue > tbody > tr[data-incident="{inc(b[0].incident_id)}"]')
    await expect(queue).to_contain_text("Phish for bob")

    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        other = Console(await context.new_page(), live_server)
        await other.sign_in(second)
        await other.open(f"#/incidents/{a[0].incident_id}/log")
        entries = other.page.locator("ol.log > li")
        await expect(entries).to_have_count(2)  # the incident created, the second alert correlated
        count_before = await entries.count()
        await console.page.wait_for_timeout(500)  # both subscriptions are open

        # When a third analyst moves an alert of A into B
        answer = await (await make_user("third", "*=write"))(
            LINK, ids=[alert_id(a[1].id)], target={"existingIncidentId": inc(b[0].incident_id)}
        )
        assert answer["linkAlerts"]["errors"] == []

        # Then the queue's row of B shows two alerts, marked as updated
        await expect(queue).to_have_class("changed")
        await expect(queue.locator("td.number")).to_have_text("2")
        await expect(queue).to_contain_text("updated")
        # and A's page says what happened, and its log grew by the move's entry, marked as new
        await expect(other.page.locator("p.live-notice")).to_contain_text("Updated just now by third")
        await expect(entries).to_have_count(count_before + 1)
        await expect(entries.first).to_contain_text("belongs with the phish")
        await expect(entries.first).to_have_class("entry new")
        await expect(other.page.locator("p.meta")).to_contain_text("1 alert")
    finally:
        await context.close()


async def test_a_move_panel_says_when_its_alerts_moved_away_before_save(console, make_user, ingest):
    # Given an analyst with the move panel open for an alert of A
    a = await ingest(
        alert_in("a1", "Beacon on WS-1", entities=[("device", "ws-1")]),
        alert_in("a2", "Beacon again on WS-1", minutes=1, entities=[("device", "ws-1")]),
    )
    b = await ingest(alert_in("b1", "Phish for bob", minutes=2, entities=[("user", "bob")]))
    page = console.page
    await console.sign_in(await make_user("first", "*=write"))
    await console.open(f"#/incidents/{a[0].incident_id}")
    await page.get_by_role("checkbox", name=f"Select alert {a[1].id}: {a[1].title}").check()
    await page.get_by_role("button", name="Move 1 alert to another incident").click()
    panel = page.get_by_role("dialog", name="Move alert to another incident")
    await expect(panel).to_be_visible()
    await page.wait_for_timeout(500)

    # When another analyst moves that alert elsewhere
    answer = await (await make_user("second", "*=write"))(
        LINK, ids=[alert_id(a[1].id)], target={"existingIncidentId": inc(b[0].incident_id)}
    )
    assert answer["linkAlerts"]["errors"] == []

    # Then the panel says so, before Save
    await expect(panel.get_by_role("alert")).to_contain_text("1 alert of these moved to another incident")
    await expect(panel).to_contain_text("moved by second just now")
