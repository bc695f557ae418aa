"""Benchmarks: the inspector against echo-server baselines, measured in one run (`make bench`)."""
