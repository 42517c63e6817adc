"""Synthetic datasets with ground truth and the reader conformance suite."""
