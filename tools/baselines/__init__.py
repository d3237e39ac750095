"""The systems Orion's benchmarks compare against: a 3-member etcd 3.4 cluster
(etcd_cluster) and a 3-process PySyncObj cluster (pysyncobj_node). Their packages are the
``bench`` extra of pyproject.toml (pysyncobj, aiohttp) and Debian's ``etcd-server``."""
