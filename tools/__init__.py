"""Programs around Orion, run from the repository root as ``python -m tools.NAME``: the demo
cluster (demo), the Docker image setup (docker_setup), the load generator (loadgen), the long
fault-injection run (nemesis), the benchmarks (bench), the etcd and PySyncObj baselines they
compare against (baselines), mutation testing (mutation) and the shared statistics (stats)."""
