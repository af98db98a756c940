"""Benchmarks (``indexnet bench``) and the compile warm-up; speed is measured here, never in unit tests."""
