"""Scoped speed-ups of Great Expectations internals, active only while a suite runs.

Each one changes how much work GE does, never what it checks: `run_suite` enters them around
its validation runs and they restore GE as they found it on exit. Each leaves GE alone when GE
does not look like the version it was written against (the lock pins 1.24.1), and
``tests/unit/test_gx_tuning.py`` checks, expectation by expectation on every bundled suite,
that what GE computes is the same with and without them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

_WRITTEN_FOR = "1.24."  # GE's kwargs helpers below are copied from this release line
_KWARGS_METHODS = (
    "_get_domain_kwargs",
    "_get_success_kwargs",
    "_get_success_kwarg",
    "_get_runtime_kwargs",
)


@contextlib.contextmanager
def no_batch_fingerprint() -> Iterator[None]:
    """Skip GE's fingerprint of each dataframe batch while our suites run.

    GE hashes every cell of a batch smaller than 1 GB to label it in the result's metadata (it
    skips bigger ones); nothing here reads that label, and at 10⁷ rows × 10 columns the hash
    took half of the suite's time. What is checked is unchanged.
    """
    from great_expectations.execution_engine import pandas_execution_engine as engine

    saved = getattr(engine, "HASH_THRESHOLD", None)
    if saved is None:  # another GE version: leave it alone
        yield
        return
    engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = saved


@contextlib.contextmanager
def kwargs_read_once() -> Iterator[None]:
    """Let GE read an expectation's configuration once per kwargs lookup, not once per key.

    ``Expectation.configuration`` is a property that rebuilds an ``ExpectationConfiguration``
    (a pydantic ``dict()`` of the whole expectation) on every access, and GE's kwargs helpers
    access it once per domain, success and runtime key: 24,096 rebuilds, a quarter of the
    validate stage's CPU time, for the 95-rule suite on three splits. The replacements below are
    GE's own helpers with the configuration read once at the top; nothing mutates an
    expectation between those reads, so every value is the same.
    """
    from great_expectations.expectations import expectation as module

    cls = module.Expectation
    saved = {name: cls.__dict__.get(name) for name in _KWARGS_METHODS}
    if not kwargs_tuning_applies():  # another GE version: leave it alone
        yield
        return
    for name, replacement in _replacements(module).items():
        setattr(cls, name, replacement)
    try:
        yield
    finally:
        for name, original in saved.items():
            setattr(cls, name, original)


def kwargs_tuning_applies() -> bool:
    """Whether the installed GE is the release line `kwargs_read_once` was written against."""
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
