"""A hosted PeerTransport (``bind``, then ``serve`` on the host's thread) against a threaded one."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator

import pytest

from orion.testing.localcluster import wait_for
from orion.transport.frames import Channel
from orion.transport.peer import PeerTransport
from tests.transport.test_peer import Inbox

wait_until = functools.partial(wait_for, timeout=5.0, interval=0.01)


@pytest.fixture
def hosted_pair() -> Iterator[tuple[PeerTransport, Inbox, PeerTransport, Inbox]]:
    inbox_h, inbox_t = Inbox(), Inbox()
    hosted = PeerTransport("127.0.0.1", 0, inbox_h, name="hosted")
    threaded = PeerTransport("127.0.0.1", 0, inbox_t, name="threaded")
    hosted.bind()
    threaded.start()
    try:
        yield hosted, inbox_h, threaded, inbox_t
    finally:
        hosted.stop()
        threaded.stop()


def test_the_hosts_sends_leave_at_once_and_frames_reach_it_in_its_turns(hosted_pair) -> None:
    hosted, inbox_h, threaded, inbox_t = hosted_pair
    assert hosted.hosted and hosted.port != 0
    hosted.serve(0.0)  # this thread is now the host
    hosted.send(threaded.address, Channel.RAFT, b"from-host")
    assert hosted.stats["sent"] == 1  # written in the call, not handed to a thread
    wait_until(lambda: inbox_t.payloads() == [b"from-host"])
    threaded.send(hosted.address, Channel.RAFT, b"to-host")
    # Frames are read and handed to on_frame only in the host's turns, on the host's thread.
    wait_until(lambda: hosted.serve(0.01) or inbox_h.payloads() == [b"to-host"])


def test_another_threads_send_goes_through_the_mailbox_and_ends_the_hosts_wait(hosted_pair) -> None:
    hosted, _, threaded, inbox_t = hosted_pair
    hosted.serve(0.0)
    sender = threading.Thread(target=hosted.send, args=(threaded.address, Channel.RAFT, b"queued"))
    sender.start()
    sender.join()
    assert hosted.stats["sent"] == 0  # waits for the host's next turn
    hosted.serve(60.0)  # the mailbox's pipe ends the wait at once
    assert hosted.stats["sent"] == 1
    wait_until(lambda: inbox_t.payloads() == [b"queued"])


def test_a_wake_fd_ends_the_hosts_wait_and_stop_closes_under_it(hosted_pair) -> None:
    hosted, _, threaded, _ = hosted_pair
    read_fd, write_fd = os.pipe()
    try:
        done = threading.Event()

        def host() -> None:
            hosted.serve(60.0, wake_fd=read_fd)
            done.set()

        thread = threading.Thread(target=host)
        thread.start()
        os.write(write_fd, b"\x01")
        thread.join(10.0)
        assert done.is_set()
        os.read(read_fd, 16)
        # Stopped under its host: later turns wait on the fd only, sends are dropped quietly.
        hosted.stop()
        os.write(write_fd, b"\x01")
        hosted.serve(60.0, wake_fd=read_fd)
        hosted.send(threaded.address, Channel.RAFT, b"after-stop")
        with pytest.raises(RuntimeError, match="already started"):
            hosted.bind()
    finally:
        os.close(read_fd)
        os.close(write_fd)
