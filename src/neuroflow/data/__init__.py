"""Data sources (bundled datasets, CSV, Parquet) and deterministic splits."""
