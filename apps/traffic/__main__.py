"""``python -m apps.traffic``: the traffic-analytics app (:mod:`apps.traffic.app`)."""

from __future__ import annotations

import sys

from apps.traffic.app import main
from edgeweave.errors import EdgeweaveError

if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except EdgeweaveError as e:
        print(f"traffic: {e}", file=sys.stderr)
        raise SystemExit(2) from None
