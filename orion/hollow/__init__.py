"""Hollow nodes: many node agents in one process, for scale runs (issue 20, after kubemark).

Each hollow node runs the real gossip core, a real Raft non-voter (in-memory store, its own FSM
copy), the real reconcile planner and the real request path to the leader; only the container
runtime is fake (``fake_runtime``). ``pool.HollowPool`` drives them all from one thread.
"""
