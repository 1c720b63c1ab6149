"""edgeweave: an edge-first device/cloud ML runtime.

This package is the shared core, the ground floor every side imports and which imports no side:
``wire`` (typed bodies both ends of every call share), ``serving`` (what every server does alike),
``generation`` (the backend interface, sampling, stopping), ``models`` (the one model family),
``export``, ``data``, ``config``, ``operators`` (Circinus's operator runtime), ``cluster`` (the
local-cluster harness) and ``cli``; ``errors`` and ``fileio`` underneath them all.
"""

__version__ = "0.1.0"
