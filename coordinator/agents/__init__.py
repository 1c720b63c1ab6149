"""The coordinator's agent controllers: the cascade's gate and the mobile agent's placement.

Both are pure decisions over the agent runtime's typed state (:mod:`cloud.agents`), which drives
them through its protocols: :class:`~coordinator.agents.cascade.CascadeGate` decides when a single
agent's run escalates to the multi-agent system; :class:`~coordinator.agents.mobility.MobileAgentController`
decides, step by step, whether an agent's loop stays on the device tier or moves to the cloud.
"""
