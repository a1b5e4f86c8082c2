"""The simulation's models and every number in them, each with where it comes from.

Units: bytes for memory, seconds for time, calls per second for rates, CPU-seconds for work.
Each field of :class:`Model` has a ``# source:`` comment: *measured* (with the command),
*documented* (with the reference), or *assumed* (stated as such; the sensitivity table of
``python -m bench.fleetsim`` varies the ones the headline depends on most).

**Backend memory** (the allocator-retention model). A backend process holds

* ``live``: bytes its program still references: a base, plus each call in flight's memory, plus
  a leak where the scenario says so;
* ``used``: what the kernel charges (RSS, the cgroup working set): ``live`` plus memory the
  allocator retains after it was freed;
* Python (pymalloc arenas, glibc free lists): ``used`` follows ``live`` up and stays at its peak;
  when live memory is freed, :attr:`Model.py_return_on_free` of it goes back at once (blocks
  above glibc's mmap threshold, arenas emptied whole), the rest stays;
  a release (``gc.collect()`` + ``malloc_trim(0)``) hands back a fraction of ``used - live``:
  :attr:`Model.py_keep_first` of it stays after the first release since the peak,
  :attr:`Model.py_keep_later` after each later one;
* Go: the heap grows to ``live * (1 + GOGC/100)`` unless a soft limit (``debug.SetMemoryLimit``,
  which the Go library's ``soft_memory_limit`` action sets to ``gc_trigger_ratio * capacity``)
  caps it; freed pages go back to the OS within about a second above the soft limit and over
  minutes below it (the background scavenger); ``debug.FreeOSMemory`` (the library's
  ``collect_garbage`` action on entering level 3) returns them all.

**Requests** come in two classes, core (health, ``Ping``: cheap, never shed) and non-core
(``Report``: heavy), served by processor sharing on ``cores`` CPUs. Per tick and per backend,
requests are *flows*, not events: arrivals ``lambda`` per class, utilization
``rho = sum(lambda * service) / cores``, a fluid backlog of work when ``rho > 1`` (abandoned past
the deadline), the M/G/1-PS mean sojourn ``service / (1 - rho)`` plus the backlog's delay, and,
by Little's law, ``lambda * sojourn`` calls in flight holding memory. Latency within a
backend-tick is taken as exponential around that mean (for the p99 and the share over the
deadline).

**The cgroup hard limit**: ``used`` above ``hard_limit_ratio * capacity`` is an OOM kill; every
call in flight fails; the process is back after a restart delay that doubles on each kill in the
run (kubelet's CrashLoopBackOff: 10 s, doubling, at most 300 s).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Model:
    """Every number of the simulation (see the module docstring for the equations)."""

    # --- the contract (memcontract defaults unless said) ---
    capacity: float = 512 * MIB
    # source: examples/python/memory_contract.yaml (max_heap_mb: 512)
    sample_interval: float = 0.5
    # source: contract default sample_interval_ms 500 (memcontract.contract.ModuleContract)
    hard_limit_ratio: float = 1.25
    # source: assumed (a pod limit 25 % above the contract budget); sensitivity: 1.1, 1.5

    # --- memory ---
    base_live_ratio: float = 0.40
    # source: measured: the example server starts at 49 MiB of a 96 MiB budget (0.51) in
    # `bench/recovery.py`; assumed 0.40 for a production budget sized with headroom
    noncore_call_bytes: float = 12 * MIB
    # source: measured: `bench/recovery.py` peaks at 1.8x of 96 MiB with 24 `Report`s of
    # 20,000 rows in flight: (1.8 * 96 - 49) / 24 = 5.2 MiB per call at 96 MiB; scaled to a
    # 512 MiB budget as the same share of headroom (x 2.3); sensitivity: x0.5, x2
    core_call_bytes: float = 0.1 * MIB
    # source: assumed (a Ping or GetStock answer: a few KiB of messages plus the call's state)
    py_keep_first: float = 0.66
    # source: measured (README "Level 3 must end"): gc.collect() returned 17 to 31 MiB (median
    # 24) of the ~71 MiB the example server held above its start after the load: 1 - 24/71
    py_return_on_free: float = 0.3
    # source: measured (README "Level 3 must end", bench/recovery.py): the load's ~125 MiB of
    # calls (24 x 5.2 MiB) freed left RSS ~70 MiB above its start after the first release
    # (keep 0.66): 1 - 70 / (125 * 0.66) = 0.15 to 0.3; 0.3 taken
    py_keep_later: float = 0.99
    # source: measured (README): RSS 121 MiB at the load's end, 117 MiB 30 s and several
    # releases later: about 1 % of the excess per later release
    go_gogc: float = 100.0
    # source: documented: Go's default GOGC
    go_soft_limit_ratio: float = 0.75
    # source: the Go library's soft_memory_limit action: gc_trigger_ratio (default 0.75)
    go_return_above_s: float = 1.0
    # source: documented: the runtime scavenges synchronously to stay under the memory limit;
    # assumed 1 s time constant
    go_return_below_s: float = 60.0
    # source: documented: the background scavenger returns memory at about 1 % of one CPU,
    # keeping 10 % over the heap goal (runtime/mgcscavenge.go); assumed 60 s time constant

    # --- requests ---
    cores: float = 2.0
    # source: assumed (a 2-CPU pod; this machine has 2)
    cpu_spread: float = 0.10
    base_spread: float = 0.05
    # source: assumed: backends' CPU speed (noisy neighbours) and base memory vary with these
    # coefficients of variation (normal, clipped at +-30 % and +-20 %)
    core_service_s: float = 0.005
    # source: assumed (Ping's handler; the example's Ping p50 is a few ms on this machine)
    noncore_service_s: float = 0.08
    # source: assumed (a Report's build, pure Python, tens of ms)
    core_share: float = 0.5
    # source: assumed (half the calls are core: health, reads the product must keep)
    calm_utilization: float = 0.40
    # source: assumed (CPU utilization of a backend at calm: typical autoscaler target 40-60 %)
    max_in_flight: float = 0.0
    # source: assumed: 0, no cap (a grpc.aio server, or a sync one with a large pool); the
    # sensitivity tries 16 (the example's sync server: a 16-thread pool, calls beyond it queue
    # holding only their request)
    deadline_s: float = 5.0
    # source: the example clients' 5 s deadline (tests/test_balancers.py, examples/python)
    hot_call_bytes_factor: float = 4.0
    # source: assumed (a hot key's calls build 4x the rows of an ordinary Report)

    # --- restarts ---
    restart_delay_s: float = 10.0
    # source: documented: kubelet's CrashLoopBackOff starts at 10 s, doubles, caps at 300 s
    restart_delay_max_s: float = 300.0
    ready_delay_s: float = 5.0
    # source: assumed (process start and readiness probe before a restarted pod takes calls)

    # --- callers and balancers ---
    callers_max: int = 50
    # source: assumed (client processes with a channel to the service: min(backends, 50))
    wrr_blackout_s: float = 10.0
    wrr_expiration_s: float = 180.0
    wrr_update_s: float = 1.0
    wrr_error_penalty: float = 1.0
    # source: documented: grpc-go balancer/weightedroundrobin ParseConfig defaults (gRFC A58)
    herd_threshold: float = 0.05
    # source: assumed: a caller "moves load" when its balancer's split changes by 5 % of its
    # calls or more at one weight update (or its fail-fast state flips)

    # --- runtime ---
    runtime: str = "python"
    # "python" or "go": which retention model
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def hard_limit(self) -> float:
        """The cgroup hard limit, bytes."""
        return self.hard_limit_ratio * self.capacity

    def calm_rates(self) -> tuple[float, float]:
        """Per-backend core and non-core arrival rates at calm (calls/s), from the calm CPU
        utilization and the class mix."""
        per_call = (
            self.core_share * self.core_service_s + (1 - self.core_share) * self.noncore_service_s
        )
        total = self.calm_utilization * self.cores / per_call
        return total * self.core_share, total * (1 - self.core_share)


#: The numbers a caller may change from the command line (``--set name=value``) and the
#: sensitivity table varies.
TUNABLE = tuple(name for name in Model.__dataclass_fields__ if name not in ("extra", "runtime"))
