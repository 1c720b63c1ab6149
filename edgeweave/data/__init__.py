"""Data: the generated smart-home command corpus (``smarthome``) and LLM request traces (``traces``)."""
