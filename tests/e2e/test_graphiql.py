"""GraphiQL at /graphql works with no internet, signed in with the console's token."""

from __future__ import annotations

from playwright.async_api import expect


async def test_graphiql_runs_a_query_from_local_files_only(console, make_user):
    analyst = await make_user("analyst", "*=write")
    await console.sign_in(analyst)
    page = console.page

    await page.get_by_role("link", name="GraphiQL").click()

    # the console fixture fails the test on any request outside the app, or a blocked script
    headers = page.locator(".graphiql-editor-tool .graphiql-editor:not(.hidden)")
    await expect(headers).to_contain_text(f"Bearer {analyst.token}")
    await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
    await expect(page.locator(".result-window")).to_contain_text('"name": "analyst"')
