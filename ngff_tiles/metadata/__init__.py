"""Metadata models and NGFF validation."""
