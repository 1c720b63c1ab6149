"""The local-cluster harness: config files for a cluster on one machine, edgeweave servers as child
processes, and :class:`~edgeweave.cluster.local_cluster.LocalCluster` (what the demo, the
multi-process tests and the benchmarks start)."""
