"""Benchmark suite: the real services on PostgreSQL against same-run baselines (see bench/README.md)."""
