"""The start estimate: run times that learn past a cold first run, and what is ahead of a new job."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers import REQUEST

from moviola.scheduler import estimate


def test_the_first_run_is_provisional_and_later_ones_are_averaged() -> None:
    times = estimate.RunTimes()
    assert times.expected(REQUEST) is None
    times.observe(REQUEST, 3.7)  # cold
    assert times.expected(REQUEST) == 3.7
    times.observe(REQUEST, 0.3)  # replaces the cold run
    assert times.expected(REQUEST) == 0.3
    times.observe(REQUEST, 0.4)
    assert times.expected(REQUEST) == pytest.approx(0.7 * 0.3 + 0.3 * 0.4)


def test_an_unseen_size_is_scaled_from_the_nearest_known_one() -> None:
    times = estimate.RunTimes()
    times.observe(REQUEST, 1.0)
    times.observe(REQUEST, 1.0)
    bigger = replace(REQUEST, num_inference_steps=REQUEST.num_inference_steps * 4)
    assert estimate.size_class(bigger) == estimate.size_class(REQUEST) + 2
    assert times.expected(bigger) == pytest.approx(4.0)
    assert times.expected(replace(REQUEST, model="other")) is None


def test_the_wait_is_the_first_free_worker_after_what_is_ahead() -> None:
    assert estimate.wait(running=[], waiting=[], workers=1) == 0.0
    assert estimate.wait(running=[2.0], waiting=[], workers=2) == 0.0  # a worker is free
    assert estimate.wait(running=[2.0], waiting=[], workers=1) == 2.0
    assert estimate.wait(running=[2.0], waiting=[1.0, 1.0], workers=1) == 4.0
    assert estimate.wait(running=[2.0, 0.5], waiting=[1.0, 1.0], workers=2) == 2.0
    assert estimate.wait(running=[-1.0], waiting=[], workers=1) == 0.0  # overran its estimate
