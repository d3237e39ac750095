"""Tunables of the SWIM/Lifeguard core; defaults are memberlist's LAN profile."""

from __future__ import annotations

import msgspec


class GossipConfig(msgspec.Struct, frozen=True, kw_only=True):
    probe_interval: float = 1.0  # seconds between probes (scaled by local health)
    probe_timeout: float = 0.5  # wait for a direct ack before asking others (scaled by local health)
    indirect_checks: int = 3  # members asked to ping a target that missed its direct ack
    suspicion_mult: int = 4  # suspicion timeout = mult * max(1, log10 n) * probe_interval
    suspicion_max_timeout_mult: int = 6  # Lifeguard: a suspicion starts at this many times the minimum
    awareness_max_multiplier: int = 8  # Lifeguard: local health score stays in [0, max - 1]
    gossip_interval: float = 0.2
    gossip_nodes: int = 3
    push_pull_interval: float = 30.0  # anti-entropy full state exchange (scaled up past 32 members)
    retransmit_mult: int = 4  # a broadcast is piggybacked mult * ceil(log10(n + 1)) times
    lifeguard_probe: bool = True  # Local Health Aware Probe (awareness, nacks)
    lifeguard_suspicion: bool = True  # Local Health Aware Suspicion (shrinking timeout)
    lifeguard_buddy: bool = True  # Buddy System (pings to a suspect carry the suspicion)
    reconnect_interval: float = 30.0  # push-pull with a random dead member (heals partitions)
    join_retry_interval: float = 1.0  # resend push-pull joins until a seed answers
    dead_reap_time: float = 3600.0  # forget dead and left members after this long
    packet_budget: int = 1200  # bytes of piggybacked updates per message (one UDP-sized datagram)

    @classmethod
    def local(cls, **overrides: object) -> GossipConfig:
        """Fast profile for clusters on one machine and for tests."""
        base: dict[str, object] = {
            "probe_interval": 0.5,
            "probe_timeout": 0.2,
            "gossip_interval": 0.1,
            "push_pull_interval": 10.0,
            "reconnect_interval": 10.0,
            "join_retry_interval": 0.5,
            "dead_reap_time": 600.0,
        }
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]

    def without_lifeguard(self) -> GossipConfig:
        """Plain SWIM: all three Lifeguard parts switched off."""
        return msgspec.structs.replace(
            self, lifeguard_probe=False, lifeguard_suspicion=False, lifeguard_buddy=False
        )
