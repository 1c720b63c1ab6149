"""Generated datasets (the smart-home command corpus)."""
