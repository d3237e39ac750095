"""Cluster volumes: records (spec.py), the CSI-shaped driver interface (driver.py), the Docker
``local`` driver (local.py) and what a node does with them when it starts a container (node.py)."""
