"""Benchmarks and the synthetic StarCoder2 models they (and the tests) run on."""
