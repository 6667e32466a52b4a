"""A move the API refuses shows why, next to what caused it, and changes nothing."""

from __future__ import annotations

from playwright.async_api import expect

from tests.conftest import alert_in


async def snapshot(pool) -> tuple:
    """Where every alert is, and the whole activity log: what a refused move must leave alone."""
    alerts = await pool.fetch("SELECT id, incident_id FROM alerts ORDER BY id")
    log = await pool.fetch("SELECT id, incident_id, kind::text FROM activity_log ORDER BY id")
    incidents = await pool.fetch("SELECT id, status::text, severity::text FROM incidents ORDER BY id")
    return [tuple(r) for r in alerts], [tuple(r) for r in log], [tuple(r) for r in incidents]


async def open_panel_for(page, alert):
    await page.get_by_role("link", name="Alerts", exact=True).click()
    await page.get_by_role("checkbox", name=f"Select alert {alert.id}: {alert.title}").check()
    await page.get_by_role("button", name="Move 1 alert to another incident").click()
    panel = page.get_by_role("dialog", name="Move alert to another incident")
    await expect(panel).to_be_visible()
    return panel


async def test_an_unknown_target_is_shown_at_the_field_and_nothing_changes(console, make_user, ingest, pool):
    [alert] = await ingest(alert_in("a", "Suspicious PowerShell command line on WS-1234"))
    # another incident the typeahead offers (the alert's own is not offered: issue 15, item 2)
    await ingest(alert_in("b", "PowerShell download cradle on WS-5678", minutes=1))
    before = await snapshot(pool)
    page = console.page
    await console.sign_in(await make_user("analyst", "*=write"))
    panel = await open_panel_for(page, alert)
    field = panel.get_by_role("combobox", name="Incident name or ID")
    comment = panel.get_by_label("Comment")

    # Save with nothing filled in: both required controls say what they need, no request is sent
    await panel.get_by_role("button", name="Save").click()
    await expect(panel.get_by_text("Pick an incident from the list, or type its ID.")).to_be_visible()
    await expect(panel.get_by_text("A comment saying why is required.")).to_be_visible()
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(field).to_be_focused()

    # an incident number that does not exist: the list says so, and Save says so next to the field
    await field.fill("4242")
    await expect(panel.get_by_text("No incident matches “4242”.")).to_be_visible()
    await comment.fill("Belongs with the campaign in 4242")
    await panel.get_by_role("button", name="Save").click()
    error = panel.locator("#move-target-error")
    await expect(error).to_have_text("No incident #4242 found, or you may not see it.")
    await expect(field).to_have_attribute("aria-describedby", "move-target-error")
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(comment).not_to_have_attribute("aria-invalid", "true")
    await expect(panel).to_be_visible()
    assert await snapshot(pool) == before

    # Escape closes the list first, then the panel, and the focus goes back where it was
    await field.fill("")
    await field.press_sequentially("power")
    await expect(panel.get_by_role("listbox")).to_be_visible()
    await field.press("Escape")
    await expect(panel.get_by_role("listbox")).to_be_hidden()
    await expect(panel).to_be_visible()
    await field.press("Escape")
    await expect(panel).to_be_hidden()
    await expect(page.get_by_role("button", name="Move 1 alert to another incident")).to_be_focused()
    assert await snapshot(pool) == before


async def test_a_user_who_lost_write_access_sees_it_next_to_the_alerts(console, make_user, ingest, pool):
    alert, target = await ingest(
        alert_in("a", "Anomalous sign-in for judy.hill from 10.1.2.3", scope="finance"),
        alert_in("t", "Password spray against judy.hill", minutes=5, scope="finance"),
    )
    page = console.page
    await console.sign_in(await make_user("analyst", "finance=write"))
    panel = await open_panel_for(page, alert)
    field = panel.get_by_role("combobox", name="Incident name or ID")
    await field.press_sequentially("spray")
    await field.press("ArrowDown")
    await expect(panel.get_by_role("option", name=f"#{target.incident_id} ")).to_have_attribute("aria-selected", "true")
    await field.press("Enter")
    await expect(field).to_have_value(f"#{target.incident_id} {target.title}")
    await panel.get_by_label("Comment").fill("Same account")

    # when the analyst's grant drops to read while the panel is open
    await pool.execute(
        "UPDATE grants SET access = 'read' WHERE user_id = (SELECT id FROM users WHERE name = 'analyst')"
    )
    before = await snapshot(pool)
    await panel.get_by_role("button", name="Save").click()

    # then the refusal names the alert, next to the selected alerts, and nothing changed
    error = panel.locator("#move-alerts-error")
    await expect(error).to_have_text(f"You may read but not move alert_{alert.id}.")
    await expect(panel.locator(".selected-alerts li.invalid")).to_have_text(
        f"#{alert.id} {alert.title} (in incident #{alert.incident_id})"
    )
    assert await snapshot(pool) == before
    assert await pool.fetchval("SELECT incident_id FROM alerts WHERE id = $1", alert.id) == alert.incident_id

    # and once the views reload, the alert can no longer be checked, and its move button is disabled
    await panel.get_by_role("button", name="Cancel").click()
    await page.reload()
    await expect(
        page.get_by_role(
            "checkbox",
            name=f"Alert {alert.id} is read-only for you and cannot be moved: {alert.title}",
        )
    ).to_be_disabled()
    await page.get_by_role("link", name=alert.title, exact=True).click()
    move = page.get_by_role("button", name="Move alert to another incident")
    await expect(move).to_be_disabled()
    await expect(page.get_by_text("You may read alerts in scope “finance” but not move them.")).to_be_visible()
