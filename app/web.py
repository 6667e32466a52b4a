"""The reference web console at / and the offline GraphiQL page (issue 5 fills this in)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    """Routes for the console and its static assets."""
    return []


def graphiql_page(request: Request, default_html: str) -> HTMLResponse:
    """The GraphiQL page served on GET /graphql."""
    return HTMLResponse(default_html)
