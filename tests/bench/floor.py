"""The floor: a bare Starlette app with no GraphQL, under the same uvicorn settings as
`incidents serve`, so the benchmark can show what the GraphQL layer costs.

- POST /floor  {"q": ...}: the typeahead exactly as the resolver runs it (the same domain
  functions, so the same SQL): authentication (by the server's token path: the process's
  token cache over its LISTEN connection, app/token_cache.py), the first 10 incidents with each one's first 5
  alerts in one statement, and the first 5 alerts of a pinned incident number.
- POST /anchor {"q": ...}: the SQL the issue's anchors measured:
  `name ILIKE '%w1%w2%' ORDER BY last_activity_at DESC LIMIT 10`, plus the first 5 alerts.
- POST /anchor-evidence {"q": ...}: the anchors' way with evidence (issue 16): `name ILIKE
  '%q%' OR EXISTS (an entity of one of its alerts with value ILIKE '%q%')`, newest first, the
  same page and alerts; the EXISTS only for inputs whose words the server looks for in evidence
  (3 characters or more each: app/domain/evidence.py), as the server does.

    python -m tests.bench.floor PORT   (DATABASE_URL names the database, WEB_CONCURRENCY the workers)
"""

from __future__ import annotations

import contextlib
import sys

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import db
from app.cli import uvicorn_options, without_resource_tracker
from app.config import Settings
from app.domain import alerts, evidence, incidents, models, search
from app.domain.models import INCIDENT_COLUMNS
from app.listener import Listener
from app.token_cache import TokenCache

ANCHOR = f"""
SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE i.name ILIKE $1
 ORDER BY i.last_activity_at DESC LIMIT 10
"""

ANCHOR_EVIDENCE = f"""
SELECT {INCIDENT_COLUMNS} FROM incidents i
 WHERE i.name ILIKE $1 OR EXISTS (
       SELECT 1 FROM alert_entities e JOIN alerts a ON a.id = e.alert_id WHERE a.incident_id = i.id AND e.value ILIKE $1)
 ORDER BY i.last_activity_at DESC LIMIT 10
"""


def _incident(i: models.Incident, first_alerts) -> dict:
    return {
        "id": str(i.id),
        "name": i.name,
        "status": i.status.upper(),
        "severity": i.severity.upper(),
        "lastActivityAt": i.last_activity_at.isoformat(),
        "alertCount": i.alert_count,
        "alerts": {
            "edges": [
                {
                    "node": {
                        "id": str(a.id),
                        "title": a.title,
                        "severity": a.severity.upper(),
                        "detectedAt": a.detected_at.isoformat(),
                    }
                }
                for a in first_alerts[i.id].items
            ]
        },
    }


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.pool = await db.create_pool(settings.database_url, settings)
        listener = Listener(settings.database_url)
        app.state.tokens = TokenCache()
        await app.state.tokens.start(listener=listener)
        await listener.start()
        yield
        await app.state.tokens.stop()
        await listener.stop()
        await app.state.pool.close()

    async def viewer_of(request: Request):
        _, _, token = request.headers.get("authorization", "").partition(" ")
        return await request.app.state.tokens.viewer_for_token(conn=request.app.state.pool, token=token.strip())

    async def floor(request: Request) -> Response:
        pool = request.app.state.pool
        q = orjson.loads(await request.body())["q"]
        viewer = await viewer_of(request)
        page, first = await incidents.list_incidents_with_alerts(
            conn=pool, viewer=viewer, flt=incidents.IncidentFilter(search=q), first=10, after=None, alerts_first=5
        )
        missing = [i.id for i in page.items if i.id not in first]  # the pinned number
        if missing:
            first.update(
                await alerts.first_alerts_of_incidents(conn=pool, viewer=viewer, incident_ids=missing, first=5)
            )
        edges = [{"node": _incident(i, first)} for i in page.items]
        return Response(orjson.dumps({"data": {"incidents": {"edges": edges}}}), media_type="application/json")

    async def anchor(request: Request) -> Response:
        return await anchored(request, evidence_too=False)

    async def anchor_evidence(request: Request) -> Response:
        return await anchored(request, evidence_too=True)

    async def anchored(request: Request, evidence_too: bool) -> Response:
        pool = request.app.state.pool
        q = orjson.loads(await request.body())["q"]
        viewer = await viewer_of(request)
        escaped = [w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for w in q.split()]
        with_evidence = evidence_too and evidence.words_for_evidence(search.words(q))
        rows = await pool.fetch(ANCHOR_EVIDENCE if with_evidence else ANCHOR, "%" + "%".join(escaped) + "%")
        found = [models.incident(r) for r in rows]
        first = await alerts.first_alerts_of_incidents(
            conn=pool, viewer=viewer, incident_ids=[i.id for i in found], first=5
        )
        edges = [{"node": _incident(i, first)} for i in found]
        return Response(orjson.dumps({"data": {"incidents": {"edges": edges}}}), media_type="application/json")

    return Starlette(
        routes=[
            Route("/floor", floor, methods=["POST"]),
            Route("/anchor", anchor, methods=["POST"]),
            Route("/anchor-evidence", anchor_evidence, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def app_from_env() -> Starlette:
    return create_app(Settings.from_env())


def main() -> None:
    port = int(sys.argv[1])
    settings = Settings.from_env()
    workers = settings.workers
    if workers > 1:
        without_resource_tracker()  # as `incidents serve` supervises its workers
    uvicorn.run(
        "tests.bench.floor:app_from_env" if workers > 1 else create_app(settings),
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        **uvicorn_options(settings, "127.0.0.1", port),  # as `incidents serve` runs it
    )


if __name__ == "__main__":
    main()
