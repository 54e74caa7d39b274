"""Benchmarks run on the real devices: unlike tests/conftest.py, no simulated CPU devices."""
