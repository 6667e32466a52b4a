"""WebSockets with their frames written once per turn of the event loop.

A change reaches every subscription of a WebSocket at once: ten subscriptions of one socket sent
ten frames, each its own write to the socket (a system call, and on loopback the receiver's work
too), which was the largest single cost of delivering live updates (issue 13). Here the frames
written during one turn of the event loop leave in one write at its end, in order. Nothing waits
longer than that turn, and closing the connection first sends what is pending.

`incidents serve` runs uvicorn with CoalescingWebSockets (app/cli.py): uvicorn's sans-I/O
websockets protocol, given a transport that gathers its writes.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class GatheredWrites(asyncio.Transport):
    """A transport's writes gathered until the end of the event loop's turn; everything else is
    the transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, lines) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default=None):
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(p) for p in self._pending)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()


class CoalescingWebSockets(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websockets protocol, its frames written once per turn of the loop."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(GatheredWrites(transport, asyncio.get_running_loop()))  # type: ignore[arg-type]
