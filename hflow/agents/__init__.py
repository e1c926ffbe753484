"""Agents: member-batched TD3, the two-level HIRO agent, the flow low level, corrections,
and the model registry (presets of the one agent)."""
