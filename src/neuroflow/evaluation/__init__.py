"""Test-split metrics, per-class breakdowns and plots."""
