"""Benchmark suite: the real services on PostgreSQL against same-run baselines (see bench/README.md)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository
