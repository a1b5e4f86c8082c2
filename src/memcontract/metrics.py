"""Prometheus ``/metrics`` for memcontract's telemetry (the ``prometheus`` extra).

The library only speaks the OpenTelemetry API (:mod:`memcontract.telemetry`); this module
brings the OpenTelemetry SDK and its Prometheus exporter in one call::

    pip install 'memcontract[prometheus]'

    from memcontract.metrics import serve_prometheus
    endpoint = serve_prometheus(9464)      # before or after building the Guard
    endpoint.port                          # the bound port (9464; any free one with 0)

:func:`serve_prometheus` installs an SDK ``MeterProvider`` with a Prometheus reader as the
global one (so every :class:`~memcontract.Guard` built without an explicit ``meter_provider``
reports to it) and serves the ``memcontract_*`` families, with the process's own
``process_*`` and ``python_*`` ones, at ``http://ADDR:PORT/metrics``. The families and their
meaning are listed in ``docs/operations.md`` (docs/design.md §12); the Go library serves the
same names.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics

from .errors import MetricsError

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry

EXTRA = "prometheus"
INSTALL_HINT = f"pip install 'memcontract[{EXTRA}]'"

__all__ = ["MetricsEndpoint", "MetricsError", "meter_provider", "serve_prometheus"]


def _require_extra() -> None:
    try:
        import opentelemetry.exporter.prometheus
        import opentelemetry.sdk.metrics  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"memcontract.metrics needs the {EXTRA!r} extra ({err.name} is missing): {INSTALL_HINT}"
        ) from err


def meter_provider(registry: CollectorRegistry | None = None) -> MeterProvider:
    """An SDK ``MeterProvider`` whose metrics ``registry`` exposes in Prometheus's format.

    ``registry``: a ``prometheus_client.CollectorRegistry`` (default: prometheus_client's
    global one, which :func:`serve_prometheus` serves). Pass the provider to
    ``Guard(..., meter_provider=...)`` to keep memcontract off the global provider.
    """
    _require_extra()
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import REGISTRY

    reader = PrometheusMetricReader(registry=registry if registry is not None else REGISTRY)
    return MeterProvider(metric_readers=[reader])


@dataclass
class MetricsEndpoint:
    """A running ``/metrics`` endpoint; :meth:`close` stops it (also a context manager).

    Attributes:
        address: the address it listens on.
        port: the bound port (the one asked for, or the free one picked for port 0).
    """

    address: str
    port: int
    _server: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        """``http://ADDRESS:PORT/metrics``."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and wait for the serving thread (the meter provider stays)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> MetricsEndpoint:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


_installed: MeterProvider | None = None
_install_lock = threading.Lock()


def _install_global_provider() -> None:
    """Make the global MeterProvider one that reports to prometheus_client's registry (once)."""
    global _installed
    from opentelemetry.sdk.metrics import MeterProvider

    with _install_lock:
        if _installed is not None:
            return
        current = metrics.get_meter_provider()
        if isinstance(current, MeterProvider):
            raise MetricsError(
                "an OpenTelemetry SDK MeterProvider is already the global one, and a provider "
                "cannot take a reader once built: build yours with "
                "opentelemetry.exporter.prometheus.PrometheusMetricReader() among its "
                "readers and serve prometheus_client's registry, or pass "
                "memcontract.metrics.meter_provider() to Guard(meter_provider=...)"
            )
        provider = meter_provider()
        metrics.set_meter_provider(provider)  # refused (logged) if another one is set
        if metrics.get_meter_provider() is not provider:
            provider.shutdown()
            raise MetricsError(
                "another OpenTelemetry MeterProvider is already the global one: pass "
                "memcontract.metrics.meter_provider() to Guard(meter_provider=...) and serve "
                "prometheus_client's registry yourself"
            )
        _installed = provider


def serve_prometheus(port: int = 0, *, addr: str = "127.0.0.1") -> MetricsEndpoint:
    """Serve memcontract's metrics in Prometheus's text format at ``http://addr:port/metrics``.

    Installs, on the first call, an OpenTelemetry SDK ``MeterProvider`` with a Prometheus
    reader as the global provider (guards built before or after report to it), then starts
    an HTTP server on a daemon thread. ``port`` 0 picks a free port; ``addr`` defaults to
    loopback: bind ``0.0.0.0`` (or the pod IP) for a scraper on another host.

    Raises:
        ImportError: the ``prometheus`` extra is not installed (the message says how).
        MetricsError: another SDK MeterProvider is already the global one.
        OSError: the port cannot be bound (in use, or not allowed).

    For example ``serve_prometheus(0).url`` is ``'http://127.0.0.1:40123/metrics'`` with the
    free port it picked (tests/test_metrics_serve.py runs it in a fresh interpreter: the
    provider it installs is process-wide).
    """
    if not 0 <= port <= 65535:
        raise MetricsError(f"port must be 0 (any free port) to 65535, got {port}")
    _require_extra()
    _install_global_provider()
    from prometheus_client import REGISTRY, start_http_server

    server, thread = start_http_server(port, addr=addr, registry=REGISTRY)
    bound = int(server.server_address[1])
    return MetricsEndpoint(address=addr, port=bound, _server=server, _thread=thread)
