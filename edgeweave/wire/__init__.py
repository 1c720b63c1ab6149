"""The wire: every typed body that crosses a process boundary, imported by both ends.

``protocol`` (device generate calls, telemetry, stream events), ``openai_api`` (the OpenAI-shaped
front door), ``slo`` (what a request promises), ``tensor_frames`` (Dora's binary activations),
``sse`` (server-sent events), ``auth`` (HMAC-signed requests and responses), ``mdns`` (the
service type devices announce).
"""
