"""The asyncio coordinator: discovery, registry, OpenAI-compatible front door and
the planners (Dora, DiSCo, Circinus).  Not started yet: see the README's status
table."""
