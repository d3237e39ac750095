"""The overlay network: cluster IPAM (one /24 per node, through Raft), the VXLAN plan and its
netlink shell, and the Docker bridge network tasks run on (README, "Overlay network")."""
