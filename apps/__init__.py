"""Demo applications on the edgeweave runtime (smart home first)."""
