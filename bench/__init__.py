"""Benchmarks (not tests): `python -m bench.run` or `python bench/run.py`."""
