"""What runs on a phone / Pi / Jetson: inference backends now; the daemon,
discovery and telemetry arrive with the edge-runtime issue."""
