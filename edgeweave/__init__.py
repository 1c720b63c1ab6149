"""edgeweave: an edge-first device/cloud ML runtime.

This package is the shared core: configuration, the model family (torch
definition, byte tokenizer, exporters), sampling and the CLI.
"""

__version__ = "0.1.0"
