"""Expected input errors are answered with their code and never logged at ERROR with a traceback
(issue 15, item 11): a ninth word in a search, a viewer without the queue permission."""

from __future__ import annotations

import logging

NINE_WORDS = "one two three four five six seven eight nine"


async def test_a_nine_word_search_and_forbidden_are_not_logged_as_errors(make_user, caplog):
    analyst = await make_user("analyst", "*=write")
    outsider = await make_user("outsider", "*=read", queue=False)
    caplog.set_level(logging.DEBUG)

    errors = await analyst.errors("query($q: String) { incidents(filter: {search: $q}) { totalCount } }", q=NINE_WORDS)
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    errors = await outsider.errors("{ incidents(first: 5) { totalCount } }")
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"
    errors = await analyst.errors("query($q: String) { alerts(filter: {search: $q}) { totalCount } }", q=NINE_WORDS)
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"

    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert loud == [], [(r.name, r.levelname, r.getMessage()) for r in loud]
