"""The wire: every typed body that crosses a process boundary, imported by both ends.

``protocol`` (device generate calls, telemetry, stream events), ``openai_api`` (the OpenAI-shaped
front door), ``dora`` (Dora's stage, profile, plan and run calls), ``circinus`` (Circinus's
operator and endpoint calls), ``slo`` (what a request promises), ``tensor_frames`` (tensors in
binary frames), ``sse`` (server-sent events), ``auth`` (HMAC-signed requests and responses),
``client`` (the one signed HTTP client and its error taxonomy), ``mdns`` (the service type
devices announce).
"""
