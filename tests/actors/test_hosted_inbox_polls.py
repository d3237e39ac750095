"""How often a HostedInbox polls its transport around its own Tick (idle CPU): a wait that ran
to the Tick's deadline with nothing readable is not followed by a second poll before the Tick is
queued; a wait that something ended still is (frames by the deadline go before the Tick).
A real bound PeerTransport, its ``serve`` counted, not replaced."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from orion.actors.hosted_inbox import HostedInbox
from orion.actors.messages import Tick
from orion.transport.frames import Channel
from orion.transport.peer import PeerTransport


class Hosted:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.inbox = HostedInbox(Tick)
        self.transport = PeerTransport("127.0.0.1", 0, self._on_frame, name="hosted")
        self.peer = PeerTransport("127.0.0.1", 0, lambda c, p: None, name="peer")
        self.transport.bind()
        self.peer.start()
        self.inbox.host(self.transport)
        self.turns: list[tuple[float, bool]] = []  # (timeout, found something) per serve
        real = self.transport.serve

        def serve(timeout: float, wake_fd: int | None = None) -> bool:
            found = real(timeout, wake_fd)
            self.turns.append((timeout, found))
            return found

        self.transport.serve = serve  # type: ignore[method-assign]

    def _on_frame(self, channel: Channel, payload: bytes) -> None:
        self.frames.append(payload)
        self.inbox.put(("frame", payload))  # as an actor's tell from its own thread

    def close(self) -> None:
        self.inbox.close()
        self.transport.stop()
        self.peer.stop()


@pytest.fixture
def hosted() -> Iterator[Hosted]:
    h = Hosted()
    try:
        yield h
    finally:
        h.close()


def _message(item: Any) -> Any:
    """A Tick comes in Pykka's envelope; the frames this test's ``on_frame`` put come as they are."""
    return getattr(item, "message", item)


def test_a_wait_that_ran_to_the_tick_with_nothing_readable_is_not_polled_again(hosted: Hosted) -> None:
    for _ in range(3):
        hosted.inbox.tick_at(time.monotonic() + 0.05)
        assert isinstance(_message(hosted.inbox.get()), Tick)
    waits = [found for timeout, found in hosted.turns if timeout > 0]
    assert len(waits) >= 3 and not any(waits)
    assert [t for t in hosted.turns if t[0] == 0.0] == []  # no poll without waiting: none was needed


def test_a_frame_that_ends_the_wait_is_handled_and_the_sockets_read_again_before_the_tick(
    hosted: Hosted,
) -> None:
    hosted.inbox.tick_at(time.monotonic() + 60.0)
    hosted.peer.send(hosted.transport.address, Channel.RAFT, b"one")
    assert _message(hosted.inbox.get()) == ("frame", b"one")  # the poll woke for it
    assert any(found for timeout, found in hosted.turns if timeout > 0)
    # The Tick falls due right after a wait that something ended: the sockets are read once
    # more, so frames that came by the deadline still go before it.
    hosted.turns.clear()
    hosted.inbox.tick_at(time.monotonic() - 1.0)
    assert isinstance(_message(hosted.inbox.get()), Tick)
    assert hosted.turns == [(0.0, False)]


def test_the_sockets_are_read_for_empty_once_per_message(hosted: Hosted) -> None:
    """``empty`` counts frames waiting in the sockets as queued; asked again while the same
    message is handled, it does not poll again (what came since is read before the wait)."""
    hosted.inbox.put("one")
    hosted.inbox.put("two")
    assert hosted.inbox.get() == "one"  # this thread owns the inbox from now on
    hosted.turns.clear()
    assert not hosted.inbox.empty() and not hosted.inbox.empty()  # "two" is queued: no poll
    assert hosted.turns == []
    assert hosted.inbox.get() == "two"
    hosted.turns.clear()
    assert hosted.inbox.empty() and hosted.inbox.empty()
    assert hosted.turns == [(0.0, False)]
    hosted.peer.send(hosted.transport.address, Channel.RAFT, b"late")
    assert _message(hosted.inbox.get()) == ("frame", b"late")  # read before the wait
    hosted.turns.clear()
    assert hosted.inbox.empty()
    assert hosted.turns == [(0.0, False)]  # a new message: the sockets are read again
