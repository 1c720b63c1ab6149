"""The asyncio coordinator: it finds the devices, verifies them and serves the cluster's OpenAI-compatible
front door.

``cluster/`` (discovery, the signed device client, the registry, placement, metrics) and
``streaming/`` (a live answer's routes and its migration between endpoints) are mechanisms; the
systems that decide are ``disco/`` (device/cloud dispatch and token migration), ``dora/`` (model
partitioning across devices) and ``circinus/`` (compound-pipeline planning); ``api.py`` and
``main.py`` assemble them into the server.
"""
