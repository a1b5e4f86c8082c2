"""Which backend a stock ``weighted_round_robin`` channel sends its calls to.

A grpcio channel over several backends (``ipv4:a,b,c``) with the stock ``weighted_round_robin``
balancer (weights from the backends' ORCA reports), a few threads calling one unary method, and
the calls each backend answered, read on the client from gRPC's own channelz counters (per
subchannel, as grpcio-channelz's servicer reads them): nothing in the backends is changed or
asked. Used by ``bench/recovery.py`` and the real recovery test.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from grpc._cython import cygrpc

# No blackout and weights recomputed every 100 ms (grpc's defaults: 10 s and 1 s), so a share
# follows the reports within a window; the expiration stays grpc's default (3 minutes).
WRR = {"blackoutPeriod": "0s", "weightUpdatePeriod": "0.1s"}


class WrrCalls:
    """``threads`` callers of ``call(channel)`` over a WRR channel to ``addresses``, paced at
    ``pause`` s between calls each; ``answered()`` maps each address to its successful calls."""

    def __init__(
        self,
        addresses: Sequence[str],
        call: Callable[[grpc.Channel], Any],
        *,
        threads: int = 4,
        pause: float = 0.005,
    ) -> None:
        self.addresses = list(addresses)
        self.target = "ipv4:" + ",".join(self.addresses)
        config = json.dumps({"loadBalancingConfig": [{"weighted_round_robin": WRR}]})
        self.channel = grpc.insecure_channel(self.target, options=[("grpc.service_config", config)])
        self.failures = 0
        self._call = call
        self._pause = pause
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> WrrCalls:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        self.channel.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._call(self.channel)
            except grpc.RpcError:
                self.failures += 1
            self._stop.wait(self._pause)  # pacing, not synchronisation

    def answered(self) -> dict[str, int]:
        """Successful calls per backend address so far (channelz, per subchannel)."""
        top = json.loads(cygrpc.channelz_get_top_channels(0))
        counts = dict.fromkeys(self.addresses, 0)
        for channel in top.get("channel", []):
            if channel["data"].get("target") != self.target:
                continue
            for ref in channel.get("subchannelRef", []):
                sub = json.loads(cygrpc.channelz_get_subchannel(int(ref["subchannelId"])))
                data = sub["subchannel"]["data"]
                address = data.get("target", "").removeprefix("ipv4:")
                if address in counts:
                    counts[address] += int(data.get("callsSucceeded", 0))
        return counts


class ShareLog:
    """Snapshots of ``calls.answered()`` every ``every`` seconds, on a thread, while open."""

    def __init__(self, calls: WrrCalls, every: float = 1.0) -> None:
        self.snapshots: list[tuple[float, list[int]]] = []  # (monotonic, calls per backend)
        self._calls = calls
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ShareLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            counts = self._calls.answered()
            self.snapshots.append((time.monotonic(), [counts[a] for a in self._calls.addresses]))
            if self._stop.wait(self._every):  # the snapshot period, not synchronisation
                return

    def windows(self, since: float, width: int = 2) -> list[tuple[float, float]]:
        """``(seconds after since, share_ratio)`` for each window of ``width`` snapshots
        ending after ``since``."""
        rows = []
        for (_, before), (at, after) in zip(self.snapshots, self.snapshots[width:], strict=False):
            if at > since:
                calls = [b - a for a, b in zip(before, after, strict=True)]
                rows.append((at - since, share_ratio(calls)))
        return rows


def even_after(windows: Sequence[tuple[float, float]], tolerance: float = 0.2) -> float | None:
    """Seconds after which every window's share ratio is within ``1 ± tolerance`` (None: the
    last window is not)."""
    settled: float | None = 0.0
    for at, ratio in windows:
        if abs(ratio - 1.0) > tolerance:
            settled = None
        elif settled is None:
            settled = at
    return settled


def share_ratio(counts: Sequence[int]) -> float:
    """The first backend's calls over the mean of the others' (1.0: an even share)."""
    first, *others = counts
    mean = sum(others) / len(others)
    return first / mean if mean else float("inf")
