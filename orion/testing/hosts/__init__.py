"""A test bed of real hosts in miniature (network namespaces, one dockerd and one ``orion
node`` per host, faults from outside Orion): see orion/testing/hosts/bed.py."""

from orion.testing.hosts.bed import HostBed, cleanup_stale_beds, overlay_supported
from orion.testing.hosts.cluster import BedCluster
from orion.testing.hosts.host import BedHost
from orion.testing.hosts.netns import BedError

__all__ = ["BedCluster", "BedError", "BedHost", "HostBed", "cleanup_stale_beds", "overlay_supported"]
