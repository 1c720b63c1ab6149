"""DiSCo: device/cloud dispatch within a cost budget and token-level migration of live answers."""
