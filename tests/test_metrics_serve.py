"""memcontract.metrics.serve_prometheus end to end, each case in a fresh interpreter (it installs
the process's global MeterProvider, which a test process must keep for every other test)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SERVE_SCRAPE_CLOSE = """
    import urllib.error, urllib.request
    from memcontract import Contract, Guard
    from memcontract.metrics import serve_prometheus
    from memcontract.testing import FakeClock, FakeProbe

    endpoint = serve_prometheus(0)
    probe, clock = FakeProbe(), FakeClock()
    guard = Guard(Contract.from_yaml("modules: [{name: api, max_heap_mb: 64}]"),
                  probe=probe, clock=clock)
    for _ in range(3):
        probe.set(usage=0.97); guard.sample_once(); clock.advance(0.5)
    body = urllib.request.urlopen(endpoint.url, timeout=10).read().decode()
    lines = [l for l in body.splitlines() if l.startswith(("memcontract_level", "process_"))]
    print(endpoint.url.startswith("http://127.0.0.1:"), endpoint.port > 0)
    print([l.split("{")[0] + " " + l.split()[-1] for l in lines if l.startswith("memcontract")])
    print(any(l.startswith("process_resident_memory_bytes") for l in lines))
    second = serve_prometheus(0)  # a second endpoint serves the same registry
    print("memcontract_level" in urllib.request.urlopen(second.url, timeout=10).read().decode())
    second.close()
    endpoint.close()
    try:
        urllib.request.urlopen(endpoint.url, timeout=5)
        print("still serving")
    except urllib.error.URLError:
        print("closed")
    guard.stop()
"""

ANOTHER_PROVIDER = """
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from memcontract.errors import MetricsError
    from memcontract.metrics import serve_prometheus

    metrics.set_meter_provider(MeterProvider())
    try:
        serve_prometheus(0)
    except MetricsError as err:
        print("MetricsError:", err)
"""


def run(script: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_serve_scrape_and_close() -> None:
    assert run(SERVE_SCRAPE_CLOSE) == [
        "True True",
        "['memcontract_level 3.0']",
        "True",
        "True",
        "closed",
    ]


def test_another_global_sdk_provider_is_one_clear_error() -> None:
    (line,) = run(ANOTHER_PROVIDER)
    assert line.startswith("MetricsError: an OpenTelemetry SDK MeterProvider is already")
    assert "Guard(meter_provider=...)" in line
