"""Circinus's operator runtime, served by device daemons and the cloud service alike (both import it,
so it lives below both): the operators themselves (``runtime``) and their HTTP route (``routes``).
The planner that decides where they run is ``coordinator/circinus/``."""
