"""User-facing failures: the CLI prints the message (no traceback) and exits non-zero."""

from __future__ import annotations


class NeuroflowError(Exception):
    """Base class: the message alone must tell the user what is wrong and where."""

    exit_code = 1


class DataError(NeuroflowError):
    """Input data is unreadable or fails its expectation suite."""


class ConfigError(NeuroflowError):
    """params.yaml (or an override) is invalid."""

    exit_code = 2


class TrackingError(NeuroflowError):
    """The MLflow tracking server or registry cannot be reached or refused a write."""
