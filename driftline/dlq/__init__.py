"""Dead letters after the fact: choose, inspect and replay them (``driftline dlq``)."""
