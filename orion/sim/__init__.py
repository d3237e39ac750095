"""Deterministic simulation: a seeded network and a Raft cluster of sans-I/O cores
(see orion.sim.raft_cluster; run long randomized searches with
``python -m orion.sim.raft_cluster --seeds N``)."""
