"""NodeActor.answer: callbacks that other actors (the Raft actor inside its Ready loop) call."""

from __future__ import annotations

from typing import Any

from orion.actors.base import NodeActor


class _Recorder(NodeActor):
    def __init__(self) -> None:
        super().__init__(on_fatal=lambda reason: None)
        self.seen: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "seen?":
            return list(self.seen)
        self.seen.append(message)
        return None


def test_an_answer_reaches_the_actor_wrapped() -> None:
    ref = _Recorder.start()
    try:
        deliver = ref.proxy().answer(lambda outcome: ("wrapped", outcome)).get()
        deliver(7)
        assert ref.ask("seen?") == [("wrapped", 7)]
    finally:
        ref.stop()


def test_an_answer_to_a_stopped_actor_is_dropped_not_raised() -> None:
    # The Raft actor calls back from its Ready loop: a listener stopped during shutdown must
    # not make that call raise (it did: ActorDeadError in the Raft actor at teardown).
    ref = _Recorder.start()
    deliver = ref.proxy().answer(lambda outcome: outcome).get()
    ref.stop()
    deliver("too late")
