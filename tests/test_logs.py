"""LOG_FORMAT=json: one line per request with what an operator needs, and nothing a client sent."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from app.api import fields
from app.cli import uvicorn_options
from app.config import Settings
from app.domain import users
from app.logs import JsonFormatter
from app.server import create_app
from tests.conftest import alert_id, alert_in, inc
from tests.live import Server

SECRET_COMMENT = "Comment-7f3e: the CFO's laptop, do not forward"
SECRET_TITLE = "Title-91ac: payroll export to personal mailbox"
MOVE = """mutation Move($ids: [ID!]!, $to: ID!, $comment: String!) {
  linkAlerts(alertIds: $ids, target: {existingIncidentId: $to}, comment: $comment) { errors { code } }
}"""
TYPEAHEAD = "query Typeahead($q: String!) { incidents(filter: {search: $q}, first: 5) { edges { node { id name } } } }"


@pytest.fixture
async def token(pool) -> str:
    async with pool.acquire() as conn:
        return await users.add_user(conn=conn, name="analyst-7", grants=[("*", "write")])


async def test_one_json_line_per_request_without_secrets(database_url, token, ingest, tmp_path):
    a, b = await ingest(alert_in("a", SECRET_TITLE), alert_in("b"))
    server = Server(database_url, tmp_path / "server.log", env={"LOG_FORMAT": "json", "LOG_LEVEL": "info"})
    headers = {"Authorization": f"Bearer {token}"}
    ids = {}
    try:
        await asyncio.to_thread(server.wait_healthy)
        async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as c:

            async def post(name: str, body: dict, auth: dict) -> None:
                response = await c.post("/graphql", json=body, headers=auth)
                ids[name] = response.headers["x-request-id"]

            search = {"query": TYPEAHEAD, "variables": {"q": "payroll"}}
            await post("typeahead", search, headers)
            move = {"ids": [alert_id(a.id)], "to": inc(b.incident_id), "comment": SECRET_COMMENT}
            await post("moved", {"query": MOVE, "variables": move}, headers)
            await post("refused", {"query": MOVE, "variables": {**move, "ids": ["alert_999999"]}}, headers)
            await post("bad input", {"query": TYPEAHEAD, "variables": {"q": "a b c d e f g h i"}}, headers)
            await post("unauthenticated", search, {"Authorization": f"Bearer {token}x"})
    finally:
        server.stop()
    log = server.log()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line is JSON
    requests = {line["request_id"]: line for line in lines if line["logger"] == "app.requests"}

    typeahead = requests[ids["typeahead"]]
    assert typeahead["viewer"] == "analyst-7"
    assert (typeahead["operation"], typeahead["operation_type"], typeahead["status"]) == ("Typeahead", "query", 200)
    assert typeahead["errors"] == [] and typeahead["payload_errors"] == []
    assert 0 < typeahead["duration_ms"] < 30_000
    assert typeahead["level"] == "info" and typeahead["message"] == "request"
    assert requests[ids["moved"]]["operation"] == "Move"
    assert requests[ids["refused"]]["payload_errors"] == ["ALERT_NOT_FOUND"]
    assert requests[ids["bad input"]]["errors"] == ["BAD_USER_INPUT"]
    unauthenticated = requests[ids["unauthenticated"]]
    assert (unauthenticated["status"], unauthenticated["viewer"], unauthenticated["errors"]) == (
        401,
        None,
        ["UNAUTHENTICATED"],
    )
    # Expected errors are no errors of the server's: nothing at ERROR, no traceback.
    assert not [line for line in lines if line["level"] in ("error", "critical") or "exception" in line]
    for secret in (token, SECRET_COMMENT, SECRET_TITLE, "payroll", "alert_999999"):
        assert secret not in log


async def test_an_unexpected_error_is_logged_with_its_traceback_and_request_id(
    pool, settings, token, lean_path, monkeypatch, caplog
):
    def broken(parents, args, ctx):
        raise RuntimeError("a bug")

    monkeypatch.setitem(fields.BATCHES, ("Query", "viewer"), broken)
    app = create_app(Settings(**{**settings.__dict__, "lean_path": lean_path}), pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        with caplog.at_level(logging.INFO):
            response = await c.post(
                "/graphql", json={"query": "{ viewer { name } }"}, headers={"Authorization": f"Bearer {token}"}
            )
    request_id = response.headers["x-request-id"]
    assert response.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    line = json.loads(JsonFormatter().format(record))
    assert request_id in line["message"] and "RuntimeError: a bug" in line["exception"]


def test_the_default_format_is_uvicorns(settings):
    assert "log_config" not in uvicorn_options(settings, "127.0.0.1", 8000)
    json_config = uvicorn_options(Settings(**{**settings.__dict__, "log_format": "json"}), "127.0.0.1", 8000)
    assert json_config["log_config"]["formatters"]["json"]["()"] == "app.logs.JsonFormatter"
