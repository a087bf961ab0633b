"""driftline benchmarks: ``make bench`` (``python -m bench``). Ratios, measured side by side."""
