"""One runnable benchmark per system: ``python -m benchmarks.NAME [--quick]``."""
