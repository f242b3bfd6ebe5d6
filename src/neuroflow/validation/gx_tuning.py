"""Scoped speed-ups of Great Expectations internals, active only while a suite runs.

Each one changes how much work GE does, never what it checks. `run_suite` runs its splits
inside `tuned()`, which applies them and, when the last suite that overlaps it ends, puts GE
back as it found it. Each leaves GE alone where GE does not look like the release it was
written for (the lock pins 1.24.1). ``tests/unit/test_gx_tuning.py`` compares, expectation by
expectation on every bundled suite, what GE's kwargs helpers answer with and without the
tuning; the batch fingerprint only labels a result's metadata, which nothing here reads.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

_WRITTEN_FOR = "1.24."  # GE's kwargs helpers below are copied from this release line
_KWARGS_METHODS = (
    "_get_domain_kwargs",
    "_get_success_kwargs",
    "_get_success_kwarg",
    "_get_runtime_kwargs",
)


_lock = threading.Lock()
_users = 0  # suites running inside tuned() now
_undo: list[Callable[[], None]] = []


@contextlib.contextmanager
def tuned() -> Iterator[None]:
    """GE with the speed-ups below for the duration. Suites that overlap (threads) share one
    application: the first applies it, the last to finish undoes it."""
    global _users
    with _lock:
        if _users == 0:
            _undo[:] = [undo for undo in (_skip_batch_fingerprint(), _read_kwargs_once()) if undo]
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                for undo in reversed(_undo):
                    undo()
                _undo.clear()


def _skip_batch_fingerprint() -> Callable[[], None] | None:
    """Skip GE's fingerprint of each dataframe batch; returns how to undo it.

    GE hashes every cell of a batch smaller than 1 GB to label it in the result's metadata (it
    skips bigger ones); nothing here reads that label, and at 10⁷ rows × 10 columns the hash
    took half of the suite's time. What is checked is unchanged.
    """
    from great_expectations.execution_engine import pandas_execution_engine as engine

    saved = getattr(engine, "HASH_THRESHOLD", None)
    if saved is None:  # another GE version: leave it alone
        return None
    engine.HASH_THRESHOLD = 0

    def undo() -> None:
        engine.HASH_THRESHOLD = saved

    return undo


def _read_kwargs_once() -> Callable[[], None] | None:
    """Let GE read an expectation's configuration once per kwargs lookup, not once per key;
    returns how to undo it.

    ``Expectation.configuration`` is a property that rebuilds an ``ExpectationConfiguration``
    (a pydantic ``dict()`` of the whole expectation) on every access, and GE's kwargs helpers
    access it once per domain, success and runtime key: 24,096 rebuilds, a quarter of the
    validate stage's CPU time, for the 95-rule suite on three splits. The replacements below are
    GE's own helpers with the configuration read once at the top; nothing mutates an
    expectation between those reads, so every value is the same.
    """
    if not kwargs_tuning_applies():  # another GE version: leave it alone
        return None
    from great_expectations.expectations import expectation as module

    cls = module.Expectation
    saved = {name: cls.__dict__[name] for name in _KWARGS_METHODS}
    for name, replacement in _replacements(module).items():
        setattr(cls, name, replacement)

    def undo() -> None:
        for name, original in saved.items():
            setattr(cls, name, original)

    return undo


def kwargs_tuning_applies() -> bool:
    """Whether the installed GE is the release line the kwargs helpers were copied from."""
    import great_expectations
    from great_expectations.expectations.expectation import Expectation

    return str(great_expectations.__version__).startswith(_WRITTEN_FOR) and all(
        callable(Expectation.__dict__.get(name)) for name in _KWARGS_METHODS
    )


def _replacements(module: Any) -> dict[str, Callable[..., Any]]:
    """GE 1.24's four kwargs helpers, each taking the configuration's kwargs as read once."""
    from great_expectations.expectations.expectation_configuration import parse_result_format

    def domain(self: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {key: kwargs.get(key, self._get_default_value(key)) for key in self.domain_keys}

    def success(self: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        found = {key: kwargs.get(key, self._get_default_value(key)) for key in self.success_keys}
        found.update(domain(self, kwargs))
        return found

    def one(self: Any, kwargs: dict[str, Any], key: str, default: Any = None) -> Any:
        if key in kwargs:
            return kwargs[key]
        field = self.__fields__.get(key)
        if field is not None:
            return field.default if not field.required else default
        module.logger.warning(
            f'_get_success_kwarg called with key "{key}", '
            f"but it is not a known field of {type(self).__name__}"
        )
        return default

    def runtime(self: Any, runtime_configuration: dict[str, Any] | None = None) -> dict[str, Any]:
        runtime_configuration = runtime_configuration or {}
        kwargs = self.configuration.kwargs
        found = {
            key: runtime_configuration.get(key, one(self, kwargs, key)) for key in self.runtime_keys
        }
        found.update(success(self, kwargs))
        found["result_format"] = parse_result_format(found["result_format"])
        return found

    return {
        "_get_domain_kwargs": lambda self: domain(self, self.configuration.kwargs),
        "_get_success_kwargs": lambda self: success(self, self.configuration.kwargs),
        "_get_success_kwarg": lambda self, key, default=None: one(
            self, self.configuration.kwargs, key, default
        ),
        "_get_runtime_kwargs": runtime,
    }
