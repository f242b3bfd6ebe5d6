"""User-facing failures: the CLI prints the message (no traceback) and exits non-zero."""

from __future__ import annotations


class NeuroflowError(Exception):
    """Base class: the message alone must tell the user what is wrong and where."""

    exit_code = 1


class DataError(NeuroflowError):
    """Input data is unreadable or fails its expectation suite."""


class ConfigError(NeuroflowError):
    """Params that load but do not fit what a command needs (a gate, a preset, a search).

    params.yaml itself unreadable or invalid is `config.ParamsError`, defined beside the loader
    so config.py imports nothing of the package; the CLI treats both alike (exit 2).
    """

    exit_code = 2


class TrackingError(NeuroflowError):
    """The MLflow tracking server or registry cannot be reached or refused a write."""
