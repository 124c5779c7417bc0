"""Stream and pagination tokens, and assembling sync responses."""
