"""app/ws.py: a WebSocket's frames of one turn of the event loop leave in one write, in order."""

from __future__ import annotations

import asyncio

from app.ws import GatheredWrites


class Recorded(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def test_the_frames_of_one_turn_leave_in_one_write_in_order() -> None:
    # Given a transport's writes gathered
    socket = Recorded()
    gathered = GatheredWrites(socket, asyncio.get_running_loop())

    # When three frames are written in one turn of the loop
    for frame in (b"one", b"two", b"three"):
        gathered.write(frame)

    # Then nothing is written before the turn ends, and one write after it, in order
    assert socket.writes == []
    await asyncio.sleep(0)
    assert socket.writes == [b"onetwothree"]
    # and a frame of a later turn is a write of its own
    gathered.write(b"four")
    await asyncio.sleep(0)
    assert socket.writes == [b"onetwothree", b"four"]


async def test_closing_sends_what_is_pending_first() -> None:
    socket = Recorded()
    gathered = GatheredWrites(socket, asyncio.get_running_loop())
    gathered.write(b"last frame")
    gathered.write(b"close frame")
    gathered.close()
    assert socket.writes == [b"last frameclose frame"] and socket.closed
    await asyncio.sleep(0)  # the turn's flush finds nothing left
    assert socket.writes == [b"last frameclose frame"]


async def test_an_aborted_connection_drops_what_is_pending() -> None:
    socket = Recorded()
    socket.abort = lambda: setattr(socket, "closed", True)
    gathered = GatheredWrites(socket, asyncio.get_running_loop())
    gathered.write(b"never sent")
    gathered.abort()
    await asyncio.sleep(0)
    assert socket.writes == [] and socket.closed
