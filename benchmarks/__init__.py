"""Benchmarks of airflow-esml against the simulator: ``make bench`` (``python -m benchmarks``) writes BENCHMARKS.md.

A benchmark, not a test: it reports numbers (medians of several runs, each comparison side by side in the
same run) and never fails on timing.
"""
