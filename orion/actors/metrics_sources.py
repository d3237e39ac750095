"""Scrape-time figures for ``GET /metrics``, asked from the actors that own them.

Called on the HTTP worker serving the scrape: one stale read on the Raft actor (its status and
the FSM's tasks) and one ask to the gossip actor, each with a short deadline; an actor that
does not answer in time leaves its figures out of that scrape rather than stalling it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pykka

from orion.actors.messages import Read
from orion.actors.state_view import StateView
from orion.cluster.outcome import Outcome
from orion.metrics import gossip_metrics, raft_metrics, state_figures
from orion.metrics_text import GaugeFamily

SCRAPE_WAIT_S = 2.0


def raft_source(raft: pykka.ActorRef) -> Callable[[], list[GaugeFamily]]:
    def collect() -> list[GaugeFamily]:
        done = threading.Event()
        box: list[Outcome] = []

        def callback(outcome: Outcome) -> None:
            box.append(outcome)
            done.set()

        def figures(view: StateView) -> dict[str, object]:
            return state_figures(view.raft(), view.fsm)

        try:
            raft.tell(Read(figures, callback, stale=True, timeout=SCRAPE_WAIT_S, local=True))
        except pykka.ActorDeadError:
            return []
        if not done.wait(SCRAPE_WAIT_S) or not box[0].ok:
            return []
        return raft_metrics(box[0].value)

    return collect


def gossip_source(gossip: pykka.ActorRef) -> Callable[[], list[GaugeFamily]]:
    def collect() -> list[GaugeFamily]:
        try:
            members = gossip.ask("members", timeout=SCRAPE_WAIT_S)
            health = gossip.ask("local_health", timeout=SCRAPE_WAIT_S)
        except (pykka.ActorDeadError, pykka.Timeout):
            return []
        return gossip_metrics([str(m.status) for m in members], int(health))

    return collect
