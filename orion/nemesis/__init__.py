"""The nemesis: faults (kill -9, SIGSTOP, partitions, restarts) injected into a live local
cluster of ``orion node`` processes under client load, and a checker over the recorded
history and the final state. ``tools/nemesis.py`` runs it; ``tests/nemesis`` runs it in CI.
"""
