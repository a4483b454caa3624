"""Benchmarks of the Zoom QoS pipeline against the local simulator (`make bench`)."""
