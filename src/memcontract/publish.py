"""Publishing a sample: the pressure turned into what every call reads (design §5).

The guard samples and runs the ladder; a :class:`Publisher` encodes each new pressure once —
the ``x-memory-*`` keys, the ``endpoint-load-metrics-bin`` ORCA report and the shed status —
into an immutable :class:`Snapshot` that calls read with one attribute access (no lock, no
system call).

>>> from memcontract.calls import CallCounter
>>> from memcontract.contract import ModuleContract
>>> from memcontract.pressure import Level, Pressure
>>> publisher = Publisher(ModuleContract(name="api"), CallCounter(), clock=lambda: 0.0)
>>> snapshot = publisher.publish(Pressure(usage_ratio=0.97, level=Level.CRITICAL))
>>> snapshot.shedding, snapshot.trailing_metadata[0]
(True, ('x-memory-usage', '97%'))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import wire
from .calls import CallCounter
from .calm import FIRST_VERSION, WireVersion, version_of
from .contract import ModuleContract
from .instance import instance_id
from .pressure import Level, Pressure


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a call reads: the pressure and its wire forms, encoded once per sample.

    Attributes:
        pressure: the last sample.
        request_metadata: keys a client adds to outgoing calls.
        trailing_metadata: keys (and the ORCA report) a server adds to its trailers.
        shed_trailers: ``trailing_metadata`` plus ``grpc-retry-pushback-ms``.
        critical: level 3 (in dry run too: then calls are only counted as would-be sheds).
        shedding: level 3 and not dry run: non-core calls are shed.
        shed_details: the status details of a shed call.
        admit: at level 3, the fraction of non-core calls admitted anyway (0 to 1): above 0
            while level 3 is stuck on retained memory and sheds half-open (see
            :mod:`memcontract.recovery`). The level and usage peers see are unchanged.
        rps, eps: calls and errors per second the server interceptors counted over the last
            sample, as measured (the ORCA report carries them per ``orca.rates``).
        wire: what the keys say, versioned: while ``wire.quiet`` they travel only on a change
            (:mod:`memcontract.calm`).
        published_at: when this snapshot was published, monotonic seconds.
    """

    pressure: Pressure
    request_metadata: wire.Metadata
    trailing_metadata: wire.Metadata
    shed_trailers: wire.Metadata
    critical: bool
    shedding: bool
    shed_details: str
    admit: float = 0.0
    rps: float = 0.0
    eps: float = 0.0
    wire: WireVersion = FIRST_VERSION
    published_at: float = 0.0


class Publisher:
    """Encodes a module's pressure into :class:`Snapshot` objects.

    Args:
        module: the contract in force (``orca``, ``retry_pushback_ms``, ``dry_run``, name).
        calls: the calls the server interceptors counted, turned into rates per snapshot.
        clock: monotonic seconds (the rates' time base).
    """

    def __init__(
        self, module: ModuleContract, calls: CallCounter, *, clock: Callable[[], float]
    ) -> None:
        self.module = module
        self.calls = calls
        self._clock = clock
        self._last: Snapshot | None = None  # the wire version counts on from it

    def publish(self, pressure: Pressure, admit: float = 0.0) -> Snapshot:
        """The snapshot of ``pressure``, with ``admit`` the half-open fraction (0 to 1)."""
        module = self.module
        rps, eps = self.calls.rates(self._clock())
        orca = module.orca
        reported_rps, reported_eps = orca.reported_rates(rps, eps, pressure.usage_ratio)
        trailers = wire.encode_trailers(
            pressure,
            rps=reported_rps,
            eps=reported_eps,
            application_utilization=orca.reports_memory,
            instance_id=instance_id(),
        )
        pushback = (wire.RETRY_PUSHBACK, str(module.retry_pushback_ms))
        previous = self._last
        self._last = snapshot = Snapshot(
            pressure=pressure,
            request_metadata=trailers[:-1],
            trailing_metadata=trailers,
            shed_trailers=(*trailers, pushback),
            critical=pressure.level == Level.CRITICAL,
            shedding=pressure.level == Level.CRITICAL and not module.dry_run,
            shed_details=(
                f"memory pressure: module {module.name} at level {int(pressure.level)} "
                f"(usage {wire.format_usage(pressure.usage_ratio)}); "
                f"retry after {module.retry_pushback_ms} ms"
            ),
            admit=admit,
            rps=rps,
            eps=eps,
            wire=version_of(
                previous.wire if previous else None,
                pressure,
                module,
                error_ratio=eps / rps if rps > 0 else 0.0,
            ),
            published_at=self._clock(),
        )
        return snapshot
