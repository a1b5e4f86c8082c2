"""A fleet simulation of memcontract (issue 27): what its levers do for 10 to 1,000 backends.

Run it::

    .venv/bin/python -m bench.fleetsim              # the table, the sensitivity, the validation,
                                                    # the speed figure -> docs/benchmarks.md
                                                    # (## Fleet simulation) and docs/fleetsim.html
    .venv/bin/python -m bench.fleetsim.calibrate    # the real runs -> calibration.json (~4 min)
    .venv/bin/python -m bench.fleetsim.validate     # the simulation beside calibration.json

Modules: :mod:`.decisions` (the only door to memcontract's decision code), :mod:`.models` (every
number, with its source), :mod:`.balancers` (round robin; gRPC's weighted round robin as
grpc-go implements gRFC A58), :mod:`.sim` (SimPy processes over vectorized state),
:mod:`.scenarios`, :mod:`.report`, :mod:`.calibrate` and :mod:`.validate`.

Assumptions, all of them (the numbers are in :mod:`.models`, each with its source):

1. One service of N backends and min(N, 50) callers, each caller one channel (one balancer, one
   fail-fast table) over all N backends. No retries: a shed or failed-fast call is lost.
2. Requests are flows per tick (0.5 s, the sampler's interval): per backend and class, arrival
   rates; service by processor sharing on the backend's CPUs (M/G/1-PS mean sojourn, the
   stretch capped at rho = 0.8, a fluid backlog above rho = 1 abandoned past the 5 s deadline);
   calls in flight by Little's law, reached at once when rising and drained over one sojourn
   when falling; latency within a backend-tick exponential around its mean. Discrete draws
   where one matters: whether a caller got a given backend's load report in a tick (Poisson on
   its calls there), and which four answers, in which order, a caller's fail-fast table sees
   in a tick (drawn in proportion to its calls).
3. Memory: live = base + calls in flight x memory per call (+ a leak); used = live + what the
   allocator retains (Python: the peak stays, 30 % of freed memory returns at once, a release
   returns a third of the rest once and 1 % later; Go: GOGC heap growth, scavenged within about
   1 s above the soft limit, about 60 s below). OOM kill when used passes the cgroup limit;
   restart after kubelet's CrashLoopBackOff (10 s doubling to 300 s) plus 5 s to ready.
4. Backends differ: CPU speed (10 % spread) and base memory (5 %); the rest is identical.
5. All samplers run at the same instants (the tick); a caller's weight updates at its own phase.
6. The hot key's calls are pinned to their backends (no balancer moves them) but pass through a
   caller's fail-fast like any call; a leak restarts with the process.
7. Time back to level <= 1 counts from the disturbance's end until every backend is up at level
   <= 1; herding counts callers whose split moved by 5 % or more (or whose fail-fast state
   flipped) within one tick.
"""
