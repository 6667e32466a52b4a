"""Issue 15: an analyst working a shift in the console. One test per numbered defect of the issue
(each failed before its fix), the triage features, and axe-core over the states they pass through."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.conftest import alert_in
from tests.e2e.test_merge_undo import forget_lost_answers, lose_first_answer, requests_of

NINE_WORDS = "one two three four five six seven eight nine"
# What sticks out past the viewport's right edge, outside a box that scrolls on its own.
STICKING_OUT = """(width) => [...document.querySelectorAll("body *")]
  .filter((e) => e.getBoundingClientRect().right > width + 1 && !e.parentElement.closest(".table-box"))
  .map((e) => `${e.tagName.toLowerCase()}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)"""


async def signed_in(console, make_user, *grants, queue=True, name="analyst"):
    user = await make_user(name, *(grants or ("*=write",)), queue=queue)
    await console.sign_in(user)
    return user


async def test_1_a_move_whose_answer_was_lost_creates_one_incident_when_saved_again(console, make_user, ingest, pool):
    a, b = await ingest(
        alert_in("a", "Credential dumping via LSASS access on WS-4821"),
        alert_in("b", "Pass-the-hash activity from WS-4821", minutes=5),
    )
    page = console.page
    await signed_in(console, make_user)
    sent = requests_of(page, "LinkAlerts")
    await lose_first_answer(page, "LinkAlerts")
    await console.open("#/alerts")
    for alert in (a, b):
        await page.get_by_role("checkbox", name=f"Select alert {alert.id}: {alert.title}").check()
    await page.get_by_role("button", name="Move 2 alerts to another incident").click()
    panel = page.get_by_role("dialog", name="Move multiple alerts to another incident")
    await panel.get_by_label("Create a new incident").check()
    await panel.get_by_label("Comment").fill("Their own story")

    await panel.get_by_role("button", name="Save").click()
    error = panel.locator("#move-form-error")
    await expect(error).to_contain_text("The server cannot be reached")
    await expect(error).to_be_focused()  # item 7: an error tied to no field takes the focus
    await console.axe("move panel, answer lost")
    await panel.get_by_role("button", name="Save").click()

    await expect(page.locator(".confirmation")).to_contain_text("Moved 2 alerts to #")
    assert await pool.fetchval("SELECT count(*) FROM incidents") == 3  # two sources, one new incident
    assert await pool.fetchval("SELECT count(*) FROM moves") == 1
    assert len(sent) == 2 and sent[0] == sent[1] and sent[0]["idempotencyKey"]
    forget_lost_answers(console)


async def test_2_the_picker_does_not_offer_the_alerts_own_incident_and_saving_it_is_refused_inline(
    console, make_user, ingest, pool
):
    alerts = await ingest(
        alert_in("a", "Ransomware behavior detected on SRV-7731", entities=[("device", "SRV-7731")]),
        alert_in("b", "Ransomware note dropped on SRV-7731", minutes=1, entities=[("device", "SRV-7731")]),
    )
    [other] = await ingest(alert_in("o", "Ransomware behavior detected on SRV-2040", minutes=2))
    home = alerts[0].incident_id
    page = console.page
    await signed_in(console, make_user)
    await page.get_by_role("button", name=f"Alerts of incident {home}").click()
    for alert in alerts:
        await page.get_by_role("checkbox", name=f"Select alert {alert.id}: {alert.title}").check()
    await page.get_by_role("button", name="Move 2 alerts to another incident").click()
    panel = page.get_by_role("dialog", name="Move multiple alerts to another incident")
    field = panel.get_by_role("combobox", name="Incident name or ID")

    await field.press_sequentially("ransomware")
    options = panel.get_by_role("option")
    await expect(options).to_have_count(1)
    await expect(options.first).to_contain_text(f"#{other.incident_id} ")
    await console.axe("move panel with its list")

    # typed by number anyway: refused at the field, the panel and the comment stay
    await field.fill(str(home))
    await panel.get_by_label("Comment").fill("Keep the comment")
    await panel.get_by_role("button", name="Save").click()
    await expect(panel.locator("#move-target-error")).to_have_text(
        f"These alerts are already in incident #{home}. Pick another incident."
    )
    await expect(panel).to_be_visible()
    await expect(panel.get_by_label("Comment")).to_have_value("Keep the comment")
    assert await pool.fetchval("SELECT count(*) FROM moves") == 0


async def test_3_a_ninth_word_in_the_queue_search_is_told_at_the_field_and_the_search_stays(
    console, make_user, ingest, live_server_log
):
    await ingest(alert_in("a", "Suspicious PowerShell command line on WS-1234"))
    page = console.page
    await signed_in(console, make_user)
    search = page.get_by_label("Search incidents")

    await search.fill(NINE_WORDS)

    error = page.locator("#incident-search-error")
    await expect(error).to_contain_text("8 words")
    await expect(search).to_have_attribute("aria-invalid", "true")
    await expect(search).to_have_value(NINE_WORDS)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Incidents")
    await expect(page.get_by_text("Something went wrong")).to_have_count(0)
    await expect(page.get_by_text("null", exact=True)).to_have_count(0)
    await console.axe("queue, search refused")
    # item 11: the server answered BAD_USER_INPUT and logged nothing at ERROR, no traceback
    log = live_server_log()
    assert "Traceback" not in log and '"level": "ERROR"' not in log and " ERROR " not in log
    await search.fill("powershell")
    await expect(error).to_be_hidden()
    await expect(page.locator("table.queue > tbody > tr")).to_have_count(1)


async def test_4_sorting_filters_and_select_all_in_the_queue(console, make_user, ingest):
    for n, severity in enumerate(["low", "high", "medium"]):
        await ingest(
            *[
                alert_in(
                    f"x{n}{k}",
                    f"Alert {n}-{k} on host-{n}",
                    severity=severity,
                    minutes=n,
                    entities=[("device", f"h{n}")],
                )
                for k in range(n + 1)
            ]
        )
    page = console.page
    await signed_in(console, make_user)
    names = page.locator("table.queue > tbody > tr > td:nth-child(4)")
    await expect(names).to_have_count(3)

    await page.locator("th button.sort", has_text="Severity").click()
    await expect(names).to_have_text(["Alert 1-0 on host-1", "Alert 2-0 on host-2", "Alert 0-0 on host-0"])
    await expect(page.get_by_role("columnheader", name=re.compile("^Severity"))).to_have_attribute(
        "aria-sort", "descending"
    )
    await page.locator("th button.sort", has_text="Alerts").click()
    await expect(names).to_have_text(["Alert 2-0 on host-2", "Alert 1-0 on host-1", "Alert 0-0 on host-0"])
    await console.axe("queue sorted by alert count")

    await page.get_by_label("Severity", exact=True).select_option("MEDIUM")
    await expect(names).to_have_text(["Alert 2-0 on host-2"])
    await page.get_by_label("Severity", exact=True).select_option("")
    await page.get_by_label("Status").select_option("RESOLVED")
    await expect(page.get_by_text("No incidents")).to_be_visible()
    await page.get_by_label("Status").select_option("OPEN")
    await expect(names).to_have_count(3)

    await page.get_by_role("checkbox", name="Select every incident shown").check()
    await expect(page.get_by_role("button", name="Merge 3 incidents")).to_be_enabled()
    await page.get_by_role("checkbox", name="Select every incident shown").uncheck()
    await expect(page.get_by_role("button", name="Merge 3 incidents")).to_be_hidden()


async def test_5_at_390_px_nothing_scrolls_sideways_and_the_header_and_save_stay_in_view(console, make_user, ingest):
    await ingest(
        *[alert_in(f"a{i}", f"Suspicious PowerShell command line on WS-{1000 + i}", minutes=i) for i in range(5)]
    )
    page = console.page
    await page.set_viewport_size({"width": 390, "height": 844})
    await signed_in(console, make_user)
    await expect(page.locator("table.queue > tbody > tr")).to_have_count(5)

    assert await page.evaluate(STICKING_OUT, 390) == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    account = page.locator("#account")
    await expect(account.get_by_text("Signed in as")).to_be_in_viewport()
    await expect(account.get_by_role("button", name="Sign out")).to_be_in_viewport()
    color = await account.locator(".who").evaluate("e => getComputedStyle(e).color")
    background = await page.locator("header.top").evaluate("e => getComputedStyle(e).backgroundColor")
    assert color == "rgb(255, 255, 255)" and background == "rgb(20, 33, 61)"
    await console.axe("queue at 390 px")

    await console.open("#/alerts")
    await page.locator("table.alerts input[type=checkbox]:enabled").first.check()
    await page.get_by_role("button", name="Move 1 alert to another incident").click()
    panel = page.get_by_role("dialog", name="Move alert to another incident")
    await expect(panel.get_by_role("button", name="Save")).to_be_in_viewport()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await console.axe("move panel at 390 px")


async def test_5_at_1440_px_the_content_uses_the_width(console, make_user, ingest):
    await ingest(alert_in("a", "Possible lateral movement from SRV-4821 using remote services by svc-backup-admin"))
    page = console.page
    await page.set_viewport_size({"width": 1440, "height": 900})
    await signed_in(console, make_user)
    box = await page.locator("table.queue").bounding_box()
    assert box["width"] > 1300
    name = page.locator("table.queue > tbody > tr > td:nth-child(4) a")
    height = (await name.bounding_box())["height"]
    assert height < 30  # one line


async def test_6_the_queue_state_is_in_the_url_back_restores_it_and_a_move_stays_in_the_queue(
    console, make_user, ingest
):
    await ingest(*[alert_in(f"p{i}", f"PowerShell on WS-{1000 + i}", minutes=i) for i in range(25)])
    [target] = await ingest(alert_in("t", "Ransomware behavior detected on SRV-7731", minutes=-10))
    page = console.page
    await signed_in(console, make_user)
    await page.get_by_label("Search incidents").fill("powershell")
    await page.get_by_label("Status").select_option("ACTIVE")
    await expect(page.get_by_text("Showing 20 of 25 incidents")).to_be_visible()
    await page.get_by_role("button", name="More incidents").click()
    await expect(page.get_by_text("Showing 25 of 25 incidents")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"#/incidents\?q=powershell&status=ACTIVE&pages=2$"))

    await page.locator("table.queue > tbody > tr a").first.click()
    await expect(page).to_have_url(re.compile(r"#/incidents/\d+$"))
    await page.go_back()
    await expect(page.get_by_label("Search incidents")).to_have_value("powershell")
    await expect(page.get_by_label("Status")).to_have_value("ACTIVE")
    await expect(page.get_by_text("Showing 25 of 25 incidents")).to_be_visible()

    # a move from the queue stays in it, with a confirmation naming the target
    await page.locator("button.expand").first.click()
    await page.locator("tr.expansion input[type=checkbox]:enabled").first.check()
    await page.get_by_role("button", name="Move 1 alert to another incident").click()
    panel = page.get_by_role("dialog", name="Move alert to another incident")
    await panel.get_by_role("combobox", name="Incident name or ID").fill(str(target.incident_id))
    await panel.get_by_label("Comment").fill("Same operator")
    await panel.get_by_role("button", name="Save").click()
    done = page.locator(".confirmation")
    await expect(done).to_contain_text(f"Moved 1 alert to #{target.incident_id} · View")
    await expect(page).to_have_url(re.compile(r"#/incidents\?q=powershell&status=ACTIVE"))
    await expect(page.get_by_label("Search incidents")).to_have_value("powershell")
    await console.axe("queue after a move")


async def test_7_focus_stays_in_the_list_when_more_goes_away(console, make_user, ingest):
    await ingest(*[alert_in(f"p{i}", f"PowerShell on WS-{1000 + i}", minutes=i) for i in range(21)])
    page = console.page
    await signed_in(console, make_user)
    more = page.get_by_role("button", name="More incidents")
    await more.focus()
    await page.keyboard.press("Enter")
    await expect(more).to_be_hidden()
    await expect(page.locator(".pager .count")).to_be_focused()
    assert await page.evaluate("document.activeElement !== document.body")


async def test_8_the_move_button_is_there_before_any_alert_is_checked_and_says_how(console, make_user, ingest):
    await ingest(alert_in("a", "Suspicious PowerShell command line on WS-1234"))
    page = console.page
    await signed_in(console, make_user)
    await console.open("#/alerts")
    button = page.get_by_role("button", name="Move alerts to another incident")
    await expect(button).to_be_visible()
    await expect(button).to_have_attribute("aria-disabled", "true")
    await expect(button).to_have_accessible_description("Check alerts to move them.")
    await button.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("dialog")).to_have_count(0)
    await page.locator("table.alerts input[type=checkbox]:enabled").first.check()
    await expect(page.get_by_role("button", name="Move 1 alert to another incident")).to_have_attribute(
        "aria-disabled", "false"
    )


async def test_9_without_the_queue_permission_the_alerts_queue_is_home_and_the_reason_is_named(
    console, make_user, ingest
):
    [alert] = await ingest(alert_in("a", "Suspicious PowerShell command line on WS-1234"))
    page = console.page
    await signed_in(console, make_user, "*=write", queue=False, name="reader")

    await expect(page).to_have_url(re.compile(r"#/alerts$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Alerts")
    await expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Incidents")).to_be_hidden()
    await console.axe("alerts queue without the queue permission")
    await page.get_by_role("link", name=alert.title, exact=True).click()
    await expect(page.locator("#alert-read-only")).to_have_text(
        "Moving alerts needs the incidents queue permission, which you do not have."
    )
    await console.axe("alert page without the queue permission")
    await console.open(f"#/incidents/{alert.incident_id}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    await expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    await expect(page.get_by_role("link", name="Go to the alerts queue")).to_be_visible()


async def test_10_a_resolved_target_says_that_moving_reopens_it(console, make_user, ingest, pool):
    [alert] = await ingest(alert_in("a", "Beacon to 185.220.101.7 from WS-1001"))
    [closed] = await ingest(alert_in("c", "Beacon to 185.220.101.9 from WS-2002", minutes=1))
    await pool.execute(
        "UPDATE incidents SET status = 'resolved', classification = 'false_positive' WHERE id = $1", closed.incident_id
    )
    page = console.page
    await signed_in(console, make_user)
    await console.open("#/alerts")
    await page.get_by_role("checkbox", name=f"Select alert {alert.id}: {alert.title}").check()
    await page.get_by_role("button", name="Move 1 alert to another incident").click()
    panel = page.get_by_role("dialog", name="Move alert to another incident")
    field = panel.get_by_role("combobox", name="Incident name or ID")
    await field.press_sequentially("185.220.101.9")
    await expect(panel.get_by_role("option").first).to_contain_text("moving reopens it")
    await field.press("ArrowDown")
    await field.press("Enter")
    await expect(panel.get_by_role("status").first).to_contain_text("It is resolved: moving alerts into it reopens it.")


async def test_12_times_carry_their_zone_and_an_emptied_incident_says_no_alerts_once(console, make_user, ingest, pool):
    a, b = await ingest(alert_in("a", "Beacon from WS-1001"), alert_in("b", "Beacon from WS-2002", minutes=1))
    analyst = await make_user("analyst", "*=write")
    await analyst(
        'mutation($a: [ID!]!, $t: ID!) { linkAlerts(alertIds: $a, target: {existingIncidentId: $t}, comment: "x")'
        " { errors { code } } }",
        a=[f"alert_{a.id}"],
        t=f"inc_{b.incident_id}",
    )
    page = console.page
    await console.sign_in(analyst)
    await console.open(f"#/incidents/{a.incident_id}")
    meta = page.locator("p.dates")
    await expect(meta).to_contain_text("Created")
    await expect(meta).to_contain_text("latest alert detected")
    await expect(meta.locator("time").first).to_have_text(re.compile(r"(UTC|GMT)"))
    await expect(page.get_by_text("No alerts", exact=True)).to_have_count(1)
    await console.axe("an emptied incident")


async def test_triage_on_the_incident_page_take_it_classify_resolve_and_note(console, make_user, ingest, pool):
    [alert] = await ingest(alert_in("a", "Phishing email delivered to erin.lee@contoso.com"))
    n = alert.incident_id
    page = console.page
    await signed_in(console, make_user)
    await console.open(f"#/incidents/{n}")
    await console.axe("incident page with triage")

    await page.get_by_role("button", name="Assign to me").click()
    await expect(page).to_have_url(re.compile(rf"#/incidents/{n}/log$"))
    await expect(page.locator(".entry.new")).to_contain_text("Assigned to analyst by analyst.")
    await expect(page.get_by_role("button", name="Unassign me")).to_be_visible()

    # resolving without a classification is stopped at the classification
    await page.get_by_label("Status").select_option("RESOLVED")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.locator("#triage-classification-error")).to_have_text("Resolving needs a classification.")
    await expect(page.get_by_label("Classification")).to_be_focused()
    await console.axe("triage refused")

    await page.get_by_label("Classification").select_option("TRUE_POSITIVE")
    await page.get_by_label("Determination").select_option("PHISHING")
    await page.get_by_label("Comment (optional)").fill("Mailbox rule removed")
    await page.get_by_role("button", name="Save changes").click()
    entries = page.locator(".entry.new")
    await expect(entries).to_have_count(2)
    await expect(entries.filter(has_text="Status changed from Active to Resolved by analyst.")).to_have_count(1)
    await expect(entries.filter(has_text="Classified as True positive, phishing by analyst.")).to_have_count(1)
    await expect(page.locator("p.meta").first).to_contain_text("True positive (Phishing)")

    await page.get_by_label("Add a note").fill("Told the user")
    await page.get_by_role("button", name="Add note").click()
    await expect(page.locator('.entry.new[data-kind="COMMENTED"]')).to_contain_text("Told the user")
    row = await pool.fetchrow("SELECT status::text, assigned_to, classification::text FROM incidents WHERE id = $1", n)
    assert tuple(row) == ("resolved", "analyst", "true_positive")
    await console.axe("incident log after triage")


async def test_a_reader_sees_why_they_cannot_change_an_incident(console, make_user, ingest):
    [alert] = await ingest(alert_in("a", "Phishing email delivered to erin.lee@contoso.com"))
    page = console.page
    await signed_in(console, make_user, "*=read", name="reader")
    await console.open(f"#/incidents/{alert.incident_id}")
    await expect(page.get_by_text("You may read this incident but not change it")).to_be_visible()
    await expect(page.get_by_role("button", name="Assign to me")).to_have_count(0)


async def test_an_emptied_incident_can_be_taken_and_saved_with_a_note(console, make_user, ingest):
    a, b = await ingest(alert_in("a", "Beacon from WS-1001"), alert_in("b", "Beacon from WS-2002", minutes=1))
    analyst = await make_user("analyst", "*=write")
    await analyst(
        'mutation($a: [ID!]!, $t: ID!) { linkAlerts(alertIds: $a, target: {existingIncidentId: $t}, comment: "x")'
        " { errors { code } } }",
        a=[f"alert_{a.id}"],
        t=f"inc_{b.incident_id}",
    )
    page = console.page
    await console.sign_in(analyst)
    await console.open(f"#/incidents/{a.incident_id}")

    await page.get_by_role("button", name="Assign to me").click()
    await expect(page.locator(".entry.new")).to_contain_text("Assigned to analyst by analyst.")
    await page.get_by_label("Comment (optional)").fill("Nothing left here")
    await page.get_by_role("button", name="Save changes").click()

    await expect(page.locator('.entry.new[data-kind="COMMENTED"]')).to_contain_text("Nothing left here")
    await expect(page.locator("#triage-classification-error")).to_be_empty()


async def test_a_search_turns_the_sort_back_to_last_activity_and_disables_the_sort_headers(console, make_user, ingest):
    await ingest(
        alert_in("a", "PowerShell on WS-1", severity="low", minutes=0),
        alert_in("b", "PowerShell on WS-2", severity="high", minutes=5),
    )
    page = console.page
    await signed_in(console, make_user)
    await page.locator("th button.sort", has_text="Severity").click()
    await expect(page).to_have_url(re.compile(r"sort=SEVERITY"))

    await page.get_by_label("Search incidents").fill("powershell")

    await expect(page).to_have_url(re.compile(r"#/incidents\?q=powershell$"))
    await expect(page.locator("th button.sort", has_text="Severity")).to_be_disabled()
    await expect(page.get_by_role("columnheader", name=re.compile("^Last activity"))).to_have_attribute(
        "aria-sort", "descending"
    )
    await expect(page.locator("#sort-hint")).to_have_text("A search lists newest activity first; clear it to sort.")
    await expect(page.locator("table.queue > tbody > tr")).to_have_count(2)
    await expect(page.locator("#incident-search-error")).to_be_empty()
    await console.axe("queue searched, sort disabled")
    # a URL that asks for both keeps the search, on last activity
    await console.open("#/incidents?q=powershell&sort=SEVERITY")
    await expect(page.locator("table.queue > tbody > tr")).to_have_count(2)
    await expect(page).to_have_url(re.compile(r"#/incidents\?q=powershell$"))
    await page.get_by_label("Search incidents").fill("")
    await expect(page.locator("th button.sort", has_text="Severity")).to_be_enabled()


async def test_select_all_is_unchecked_when_more_adds_unchecked_rows(console, make_user, ingest):
    await ingest(*[alert_in(f"p{i}", f"PowerShell on WS-{1000 + i}", minutes=i) for i in range(21)])
    page = console.page
    await signed_in(console, make_user)
    every = page.get_by_role("checkbox", name="Select every incident shown")
    await expect(page.get_by_text("Showing 20 of 21 incidents")).to_be_visible()  # the first page is there
    await every.check()

    await page.get_by_role("button", name="More incidents").click()

    await expect(page.get_by_text("Showing 21 of 21 incidents")).to_be_visible()
    await expect(every).not_to_be_checked()
    assert await every.evaluate("box => box.indeterminate")
