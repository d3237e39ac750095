"""Orion: a distributed container orchestrator (Raft, SWIM/Lifeguard, scheduler, reconciler, Docker)."""

__version__ = "0.1.0"
