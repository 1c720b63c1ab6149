"""``edgeweave cloud serve --config FILE``: the cloud service (an ``edgeweave.cli`` entry point),
in one aiohttp process (:mod:`cloud.server`) or, with ``[cloud.ray]``, as Ray Serve replicas
(:mod:`cloud.ray_serve`); both mount the same routes (:mod:`cloud.routes`)."""

from __future__ import annotations

import argparse
from typing import Any

from edgeweave.cli.model_verbs import add_serve_verb
from edgeweave.config import EdgeweaveConfig


async def serve_cloud(cfg: EdgeweaveConfig) -> None:
    from edgeweave.serving.api_keys import new_api_key

    c = cfg.cloud
    assert c is not None
    keys = [k.get_secret_value() for k in c.api_keys]
    generated = c.require_api_key and not keys
    if generated:
        keys = [new_api_key()]
    required = keys if c.require_api_key else None
    key_note = f" api-key: {keys[0]}" if generated else ""
    if c.ray is not None:
        from cloud.ray_serve import serve
    else:
        from cloud.server import serve
    await serve(c, required, key_note)


def add_verbs(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    add_serve_verb(sub, parser_class, "cloud", "the cloud LLM engine", lambda: serve_cloud)
