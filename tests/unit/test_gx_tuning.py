"""The scoped GE speed-ups compute what GE computes, and leave GE as they found it."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from neuroflow.validation.gx_tuning import kwargs_tuning_applies, tuned
from neuroflow.validation.runner import _RESULT_FORMAT, build_gx_suite, import_gx
from neuroflow.validation.suite import load_suite

SUITES = sorted((Path(__file__).resolve().parents[2] / "data" / "suites").glob("*.json"))
HELPERS = ("_get_domain_kwargs", "_get_success_kwargs", "_get_success_kwarg", "_get_runtime_kwargs")


def _every_lookup(expectation: Any) -> dict[str, Any]:
    """Everything GE's kwargs helpers answer for `expectation`, keyed by the call."""
    keys = {*expectation.domain_keys, *expectation.success_keys, *expectation.runtime_keys}
    answers: dict[str, Any] = {
        "domain": expectation._get_domain_kwargs(),
        "success": expectation._get_success_kwargs(),
        "runtime": expectation._get_runtime_kwargs(),
        "runtime, result format": expectation._get_runtime_kwargs({"result_format": "SUMMARY"}),
        "runtime, ours": expectation._get_runtime_kwargs(dict(_RESULT_FORMAT)),
    }
    for key in sorted(keys):
        answers[f"kwarg {key}"] = expectation._get_success_kwarg(key, default="fallback")
    return answers


def test_the_installed_ge_is_the_release_the_tuning_was_written_against() -> None:
    """An upgrade of GE fails here, so its kwargs helpers get compared again before it lands."""
    import_gx()
    assert kwargs_tuning_applies()


@pytest.mark.parametrize("path", SUITES, ids=[path.stem for path in SUITES])
def test_every_expectation_gets_the_same_kwargs_with_and_without_the_tuning(path: Path) -> None:
    import_gx()
    expectations = build_gx_suite(load_suite(path)).expectations
    assert expectations
    plain = [_every_lookup(expectation) for expectation in expectations]
    with tuned():
        answers = [_every_lookup(expectation) for expectation in expectations]
    assert answers == plain


def test_an_unknown_key_warns_as_ge_does(caplog: pytest.LogCaptureFixture) -> None:
    import_gx()
    expectation = build_gx_suite(load_suite(SUITES[0])).expectations[0]
    with caplog.at_level(logging.WARNING):
        plain = expectation._get_success_kwarg("no_such_key", default=7)
        with tuned():
            answer = expectation._get_success_kwarg("no_such_key", default=7)
    assert plain == answer == 7
    warnings = [r.getMessage() for r in caplog.records if "no_such_key" in r.getMessage()]
    assert len(warnings) == 2 and warnings[0] == warnings[1]


def _ge_state() -> tuple[dict[str, Any], int]:
    from great_expectations.execution_engine import pandas_execution_engine as engine
    from great_expectations.expectations.expectation import Expectation

    return {name: Expectation.__dict__[name] for name in HELPERS}, engine.HASH_THRESHOLD


def test_ge_is_restored_on_exit_even_after_an_error() -> None:
    import_gx()
    before = _ge_state()
    with pytest.raises(RuntimeError), tuned():
        helpers, threshold = _ge_state()
        assert all(helpers[name] is not before[0][name] for name in HELPERS)
        assert threshold == 0
        raise RuntimeError("a failing split")
    assert _ge_state() == before


def test_overlapping_suites_share_one_tuning_undone_by_the_last() -> None:
    """Two suites in threads: the one that ends first leaves the other's tuning in place."""
    import_gx()
    before = _ge_state()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def first() -> None:
        with tuned():
            first_in.set()
            second_in.wait(60)
        first_out.set()

    def second() -> None:
        first_in.wait(60)
        with tuned():
            second_in.set()
            first_out.wait(60)
            seen["after the first ended"] = _ge_state()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    tuned_state = seen["after the first ended"]
    assert tuned_state[1] == 0 and tuned_state[0] != before[0]
    assert _ge_state() == before
