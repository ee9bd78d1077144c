"""Benchmarks whose output goes into docs/BENCHMARKS.md (run as ``python -m bench.NAME``)."""
