"""Dora's device half: a model's stage (a contiguous range of its layers) as a device runs it, and
the daemon's ``/v1/dora/...`` routes.  The planner and the pipeline driver are ``coordinator/dora/``."""
