"""The benchmark's tail measurements (issue 16): what they group and report, and the open loop's
lean HTTP client against a real socket. No timing is asserted: speed is the benchmark's to say."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import orjson
import pytest

from tests.bench import run


def test_the_json_line_has_the_issues_tail_keys() -> None:
    for key in (
        "typeahead_1conn_p99_ms",
        "typeahead_1conn_by_class",
        "typeahead_1conn_floor_p99_ms",
        "typeahead_open_loop_p99_ms",
        "typeahead_open_loop_floor_p99_ms",
        "typeahead_open_loop_anchor_p99_ms",
        "typeahead_open_loop_achieved_per_s",
        "small_mix_vs_anchor",
        "small_name_mix_vs_anchor",
    ):
        assert key in run.JSON_KEYS


def test_each_input_class_gets_its_own_p99_max_and_slowest_input() -> None:
    inputs = ["1042", "ws-1", "lateral"]
    classes = ["number", "host", "common word"]
    latencies = [[1.0, 2.0], [3.0, 30.0], [0.5, 0.7]]

    tail = run.tail_by_class(inputs, classes, latencies)

    assert tail["host"] == {"p99_ms": 30.0, "max_ms": 30.0, "slowest": "ws-1", "requests": 2}
    assert tail["number"]["max_ms"] == 2.0
    assert tail["all"]["requests"] == 6
    assert tail["all"]["slowest"] == "ws-1"
    assert [k for k in tail if k != "all"] == ["number", "host", "common word"]


async def test_the_open_loops_client_reuses_a_connection_and_reads_each_answer_whole() -> None:
    received: list[bytes] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError):  # the client hung up
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                received.append(await reader.readexactly(length))
                body = orjson.dumps({"data": {"echo": orjson.loads(received[-1])}})
                status = b"200 OK" if len(received) == 1 else b"400 Bad Request"
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = run.RawClient(f"http://127.0.0.1:{port}")
    try:
        first = await client.post("/graphql", json={"q": "lateral"}, headers={"Authorization": "Bearer t"})
        second = await client.post("/graphql", json=orjson.dumps({"q": "ws-1"}), headers={})
    finally:
        await client.aclose()
        server.close()
    assert (first.status_code, first.json()) == (200, {"data": {"echo": {"q": "lateral"}}})
    assert (second.status_code, second.json()) == (400, {"data": {"echo": {"q": "ws-1"}}})
    assert connections == 1


async def test_a_closed_connection_is_an_http_error_the_generator_counts() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = run.RawClient(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(httpx.HTTPError):
            await client.post("/graphql", json={"q": "x"}, headers={})
    finally:
        await client.aclose()
        server.close()


async def test_the_open_loops_client_does_not_reuse_a_connection_idle_past_its_expiry(monkeypatch) -> None:
    # A server's keep-alive timeout closes idle connections (uvicorn's: 5 s); a request written
    # into one it has just closed reads nothing. The client opens a new one instead.
    opened = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal opened
        opened += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionResetError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                await reader.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                await writer.drain()

    monkeypatch.setattr(run.RawClient, "IDLE_EXPIRY", 0.5)
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = run.RawClient(f"http://127.0.0.1:{port}")
    try:
        await client.post("/graphql", json={"q": "a"}, headers={})
        await client.post("/graphql", json={"q": "b"}, headers={})
        assert opened == 1
        await asyncio.sleep(0.6)
        assert (await client.post("/graphql", json={"q": "c"}, headers={})).status_code == 200
    finally:
        await client.aclose()
        server.close()
    assert opened == 2
