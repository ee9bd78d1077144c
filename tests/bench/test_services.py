"""``wait_for``, the one way tests and benchmarks poll: it returns the first value that
passes, and a time-out says what was awaited and what was seen last."""

from __future__ import annotations

import itertools

import pytest

from bench.services import wait_for


def test_returns_the_first_value_that_passes() -> None:
    counter = itertools.count()
    value = wait_for(lambda: next(counter), 5, "three calls", until=lambda n: n >= 3, interval=0)
    assert value == 3


def test_truthy_by_default() -> None:
    values = iter([None, [], {"state": "running"}])
    assert wait_for(lambda: next(values), 5, "a job", interval=0) == {"state": "running"}


def test_time_out_names_what_and_the_last_value() -> None:
    with pytest.raises(TimeoutError, match=r"job j1 to succeed.*'state': 'running'"):
        wait_for(
            lambda: {"state": "running"},
            0.05,
            "job j1 to succeed",
            until=lambda job: job["state"] == "succeeded",
            interval=0.01,
        )


def test_what_may_be_computed_at_failure_time() -> None:
    asked = []

    def what() -> str:
        asked.append(True)
        return "the worker's log"

    with pytest.raises(TimeoutError, match="the worker's log"):
        wait_for(lambda: False, 0.05, what, interval=0.01)
    assert asked == [True]  # asked once, at the end, not on every poll


def test_ignored_errors_are_retried_and_others_stop_the_wait() -> None:
    calls = iter([ConnectionError("refused"), ConnectionError("refused"), "up"])

    def answer() -> str:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_for(answer, 5, "the server", ignore=(ConnectionError,), interval=0) == "up"

    def refused() -> str:
        raise ConnectionError("refused")

    def died() -> str:
        raise RuntimeError("died")

    with pytest.raises(TimeoutError, match="refused"):  # the last error is what was seen
        wait_for(refused, 0.05, "the server", ignore=(ConnectionError,), interval=0.01)
    with pytest.raises(RuntimeError, match="died"):  # not ignored: no waiting it out
        wait_for(died, 5, "the server", interval=0)
