"""Benchmarks of the order saga beside this machine's raw limits: ``python -m bench`` (``make bench``)."""
