"""Tempo: SLO-aware scheduling that maximizes service gain in the cloud engine
(request SLOs, service-gain accounting; the policies build on these)."""
