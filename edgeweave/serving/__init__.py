"""Mechanisms every edgeweave server shares: process start-up and shutdown (``service``), errors in
one JSON shape (``http_errors``), client API keys (``api_keys``), OpenAI-shaped responses from a
stream of deltas (``openai_serving``) and the emulated network link a server can run behind
(``emulated_link``)."""
