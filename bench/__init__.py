"""Driftline's benchmarks: ``./dev bench`` (``python -m bench``) writes docs/benchmarks.md."""
