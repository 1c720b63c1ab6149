"""``python -m edgeweave.cli``: the command line (what child processes are started with)."""

import sys

from edgeweave.cli import main

sys.exit(main())
