"""One simulator per test module (at ``simhelpers.NOW``, rate limits off), reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from include.zoom_simulator import Faults, Simulator
from tests.simulator.simhelpers import make_simulator


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    s = make_simulator().start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def clean(sim: Simulator) -> None:
    sim.set_faults(Faults())
    sim.reset_stats()
