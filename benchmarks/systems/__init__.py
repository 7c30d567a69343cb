"""The systems the benchmark compares, each run as its own process (so CPU and RSS are its own)."""
