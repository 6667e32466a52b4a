"""The reference web console at / and the offline GraphiQL page.

Both are static files under app/static/, served by the app itself: no CDN, no build step. The
console talks to the public GraphQL API only, with the token the user pastes. When the app was
started with `incidents serve --demo`, /demo.json hands out the demo user's token to browsers on
the same machine so that a newcomer is signed in at once; otherwise its token is null.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"

# Everything the pages load comes from this origin; the browser enforces it.
CONSOLE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# GraphiQL (CodeMirror) sets inline styles and embeds icons as data: URLs.
GRAPHIQL_CSP = (
    "default-src 'self'; img-src 'self' data:; font-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)

# The unmodified npm files under app/static/vendor/ (see its README), checked by the browser.
GRAPHIQL_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>GraphiQL · incident-graph</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/static/vendor/graphiql-3.8.3/graphiql.min.css"
        integrity="sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM">
  <link rel="stylesheet" href="/static/graphiql-page.css">
</head>
<body>
  <div id="graphiql" data-demo-token="{demo_token}">Loading GraphiQL…</div>
  <script src="/static/vendor/react-18.2.0/react.production.min.js"
          integrity="sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8"></script>
  <script src="/static/vendor/react-18.2.0/react-dom.production.min.js"
          integrity="sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh"></script>
  <script src="/static/vendor/graphiql-3.8.3/graphiql.min.js"
          integrity="sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie"></script>
  <script src="/static/graphiql-page.js"></script>
</body>
</html>
"""


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _demo_token(request: Request) -> str | None:
    """The demo token, handed only to browsers on this machine that asked for this machine.

    `--demo --host 0.0.0.0` must not publish a token that may write everything, and the Host
    check stops a page elsewhere from reading it through DNS rebinding (its name, pointed at
    127.0.0.1, would still be its own name in the Host header).
    """
    client = request.client.host if request.client else ""
    if client not in LOOPBACK and not client.startswith("127."):
        return None
    if request.url.hostname not in LOOPBACK and not (request.url.hostname or "").startswith("127."):
        return None
    return getattr(request.app.state, "demo_token", None)


async def console(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": CONSOLE_CSP})


async def demo(request: Request) -> Response:
    return JSONResponse({"token": _demo_token(request)}, headers={"Cache-Control": "no-store"})


def routes() -> list[BaseRoute]:
    """Routes for the console and its static assets."""
    return [
        Route("/", console),
        Route("/demo.json", demo),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def graphiql_page(request: Request, default_html: str) -> HTMLResponse:
    """The GraphiQL page served on GET /graphql, prefilled with the demo token when there is one."""
    html = GRAPHIQL_PAGE.replace("{demo_token}", escape(_demo_token(request) or ""))
    return HTMLResponse(html, headers={"Content-Security-Policy": GRAPHIQL_CSP, "Cache-Control": "no-store"})
