"""A PostgreSQL wire-protocol proxy for fault tests, run in the test's own event loop.

It relays bytes between asyncpg and the real server, reading the client's messages as it goes.
Armed, it cuts the client's side of the connection right after it has forwarded a message the
trigger matches (by default asyncpg's transaction COMMIT: the simple query 'Q' "COMMIT;"), and
relays nothing of the server's answer: the server runs the statement, the client never learns how
it ended. The proxy reads that answer itself (up to ReadyForQuery) and records its command tag,
so a test knows what really happened to the transaction the client lost.

    proxy = await PgProxy.start(database_url)     # postgresql://...?host=/socket/dir or TCP
    pool = await db.create_pool(proxy.url, settings)
    proxy.arm()                                    # every COMMIT from now on is cut
    ...
    await proxy.settled()                          # the server has answered every cut message
    proxy.disarm()
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


@dataclass(frozen=True)
class Message:
    """One message of the client after its startup: its type byte and its body."""

    kind: bytes
    body: bytes

    @property
    def text(self) -> str:
        """The SQL of a simple Query ('Q') or Parse ('P') message, else ""."""
        if self.kind == b"Q":
            return self.body.rstrip(b"\0").decode(errors="replace")
        if self.kind == b"P":  # statement name NUL, query NUL, parameter types
            _, _, rest = self.body.partition(b"\0")
            return rest.partition(b"\0")[0].decode(errors="replace")
        return ""


def is_commit(message: Message) -> bool:
    """asyncpg's Transaction.commit(): execute("COMMIT;") without arguments, a simple Query."""
    return message.kind == b"Q" and message.text.strip().rstrip(";").strip().upper() == "COMMIT"


def statement_run(fragment: str) -> Callable[[Message], bool]:
    """A trigger for a statement outside a transaction, whose Sync commits it: the Sync after
    the next run (Bind) of a statement prepared (Parse) with `fragment` in its SQL."""
    prepared: set[bytes] = set()
    bound = False

    def trigger(message: Message) -> bool:
        nonlocal bound
        if message.kind == b"P" and fragment in message.text:
            prepared.add(message.body.partition(b"\0")[0])
        elif message.kind == b"B":
            bound = message.body.partition(b"\0")[2].partition(b"\0")[0] in prepared
        elif message.kind == b"S" and bound:
            return True
        return False

    return trigger


def upstream_of(url: str) -> tuple[str | None, str | None, int]:
    """(unix socket path, tcp host, port) of a libpq-style URL, as asyncpg reads it."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    host = query.get("host") or parts.hostname or "localhost"
    port = int(query.get("port") or parts.port or 5432)
    if host.startswith("/"):
        return f"{host}/.s.PGSQL.{port}", None, port
    return None, host, port


def through(url: str, port: int) -> str:
    """The same database, user and options, reached at 127.0.0.1:port in plain text."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port", "sslmode")]
    query.append(("sslmode", "disable"))
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))


class PgProxy:
    def __init__(self, upstream_url: str) -> None:
        self.socket_path, self.host, self.port = upstream_of(upstream_url)
        self.upstream_url = upstream_url
        self.trigger: Callable[[Message], bool] | None = None
        self.cut: list[Message] = []  # the messages after which a client was cut, in order
        self.answers: list[str] = []  # the server's command tags for them, once it answered
        self.connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._draining: set[asyncio.Task] = set()  # connections whose cut message awaits its answer
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    @classmethod
    async def start(cls, upstream_url: str) -> PgProxy:
        proxy = cls(upstream_url)
        proxy._server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
        proxy.url = through(upstream_url, proxy._server.sockets[0].getsockname()[1])
        return proxy

    def arm(self, trigger: Callable[[Message], bool] = is_commit) -> None:
        """From now on, cut every client right after forwarding a message trigger matches."""
        self.trigger = trigger

    def disarm(self) -> None:
        self.trigger = None

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until the server has answered every message after which a client was cut."""
        if self._draining:
            await asyncio.wait_for(asyncio.gather(*self._draining, return_exceptions=True), timeout)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        # Both ends aborted, every connection ends by itself (cancelling the connection's task
        # would make asyncio's stream server log its CancelledError).
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())
        self.connections += 1
        try:
            if self.socket_path:
                server_reader, server_writer = await asyncio.open_unix_connection(self.socket_path)
            else:
                server_reader, server_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, server_writer}
        connection = _Connection(self, client_reader, client_writer, server_reader, server_writer)
        try:
            await connection.run()
        finally:
            self._writers -= {client_writer, server_writer}
            self._tasks.discard(asyncio.current_task())


class _Connection:
    """One client's connection and its server connection."""

    def __init__(self, proxy: PgProxy, client_reader, client_writer, server_reader, server_writer) -> None:
        self.proxy = proxy
        self.client_reader, self.client_writer = client_reader, client_writer
        self.server_reader, self.server_writer = server_reader, server_writer
        self.cut = False
        self.downward: asyncio.Task | None = None

    async def run(self) -> None:
        upward = asyncio.create_task(self._client_to_server())
        self.downward = asyncio.create_task(self._server_to_client())
        try:
            await asyncio.wait({upward, self.downward}, return_when=asyncio.FIRST_COMPLETED)
            if self.cut:  # the server side stays open until the server has answered
                await asyncio.gather(self.downward, return_exceptions=True)
        finally:
            for task in (upward, self.downward):
                task.cancel()
            await asyncio.gather(upward, self.downward, return_exceptions=True)
            self.client_writer.transport.abort()
            self.server_writer.transport.abort()

    async def _client_to_server(self) -> None:
        reader = self.client_reader
        # Untyped first: SSLRequest / GSSENCRequest (refused here, so the rest is plain text),
        # then the StartupMessage (or a CancelRequest, the connection's only message).
        while True:
            header = await reader.readexactly(4)
            (length,) = struct.unpack("!i", header)
            body = await reader.readexactly(length - 4)
            code = struct.unpack("!i", body[:4])[0] if len(body) >= 4 else 0
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                self.client_writer.write(b"N")
                await self.client_writer.drain()
                continue
            self.server_writer.write(header + body)
            await self.server_writer.drain()
            break
        while True:
            kind = await reader.readexactly(1)
            header = await reader.readexactly(4)
            (length,) = struct.unpack("!i", header)
            body = await reader.readexactly(length - 4)
            message = Message(kind, body)
            self.server_writer.write(kind + header + body)
            trigger = self.proxy.trigger
            if trigger is not None and trigger(message):
                # In the same step as the write: no byte of the answer can be relayed after it.
                self.cut = True
                self.proxy.cut.append(message)
                self.proxy._draining.add(self.downward)
                self.downward.add_done_callback(self.proxy._draining.discard)
                self.client_writer.transport.abort()
                await self.server_writer.drain()
                return
            await self.server_writer.drain()

    async def _server_to_client(self) -> None:
        while True:
            data = await self.server_reader.read(65536)
            if not data:
                return
            if self.cut:
                await self._drain_answer(data)
                return
            self.client_writer.write(data)
            await self.client_writer.drain()
            if self.cut:
                await self._drain_answer(b"")
                return

    async def _drain_answer(self, buffer: bytes) -> None:
        """Read the server's answer to the cut message up to ReadyForQuery; record its tags."""
        tags: list[str] = []
        try:
            while True:
                while len(buffer) >= 5:
                    kind, length = buffer[:1], struct.unpack("!i", buffer[1:5])[0]
                    if len(buffer) < 1 + length:
                        break
                    body, buffer = buffer[5 : 1 + length], buffer[1 + length :]
                    if kind == b"C":
                        tags.append(body.rstrip(b"\0").decode())
                    elif kind == b"E":
                        tags.append("ERROR")
                    elif kind == b"Z":
                        return
                data = await asyncio.wait_for(self.server_reader.read(65536), 10)
                if not data:
                    tags.append("CONNECTION CLOSED")
                    return
                buffer += data
        finally:
            self.proxy.answers.append(" ".join(tags))
