"""What runs on a phone / Pi / Jetson: the device daemon (``daemon``, ``server``, ``worker``), its mDNS
advertisement and psutil telemetry with an energy model, the inference runtimes (``backends/``) and
Dora's stage worker (``dora/``)."""
