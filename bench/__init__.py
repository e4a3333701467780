"""quotaguard benchmarks: `nox -s bench` (or `python -m bench`)."""
