"""The coordinator's view of the cluster: discovery (mDNS and static), the signed device client, the
registry of verified devices and cloud endpoints, placement policies and the metrics."""
