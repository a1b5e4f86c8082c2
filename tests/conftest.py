"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .support import Metrics, Rig, make_contract


@pytest.fixture(autouse=True)
def _stop_rigs() -> Iterator[None]:
    """Stop every guard a test stepped, so no action (GC threshold, tracemalloc) leaks."""
    yield
    while Rig.live:
        Rig.live.pop().guard.stop()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig(make_contract(dry_run=False, noncritical_loggers=("memcontract.test.noisy",)))
    yield r
    r.guard.stop()


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    """An OpenTelemetry SDK meter provider with an in-memory reader, for a guard under test."""
    m = Metrics()
    yield m
    m.provider.shutdown()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--hide-grpc-privates",
        action="store_true",
        help="run the sync interceptors with grpcio's private fields hidden (their fallbacks)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--hide-grpc-privates"):
        from . import grpc_privates

        grpc_privates.install()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if config.getoption("--hide-grpc-privates"):
        from . import grpc_privates

        terminalreporter.write_line(f"grpc private reads refused: {grpc_privates.refused}")
