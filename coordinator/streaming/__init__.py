"""Streaming a live answer from an endpoint: routes to devices and the cloud and the dispatcher that
opens them."""
