"""Benchmarks: speed as ratios against baselines run in the same process (never as timed tests)."""
