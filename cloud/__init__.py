"""The GPU side of edgeweave: LLM engine, Tempo scheduling, tLoRA, SoundWeaver,
AutoScout, uncertainty scores and agents.  Not started yet: see the README's
status table."""
