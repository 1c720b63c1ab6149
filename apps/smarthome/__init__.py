"""Smart-home demo app: natural commands to tool calls on the home's devices."""
