"""Helpers that only the tests and benchmarks use (a private Ray + Serve, broker readiness,
reading one split back): kept out of the s2s package so the product holds product code."""
