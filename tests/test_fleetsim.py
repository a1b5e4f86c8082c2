"""The fleet simulation (bench/fleetsim): its adapter runs the project's decision code
faithfully, its balancer follows grpc-go's weighted_round_robin rules, and at 3 backends it
falls within the real runs' interquartile ranges (bench/fleetsim/calibration.json)."""

from __future__ import annotations

import random

import numpy as np
import pytest

pytest.importorskip("simpy", reason="the fleetsim extra is not installed")

from bench.fleetsim import validate
from bench.fleetsim.balancers import WeightedRoundRobin
from bench.fleetsim.calibrate import CALIBRATION
from bench.fleetsim.decisions import Answer, BackendBrain, CallerPolicy
from bench.fleetsim.models import MIB, Model
from bench.fleetsim.scenarios import SCENARIOS
from bench.fleetsim.sim import VARIANTS, Fleet, Result
from memcontract.contract import ModuleContract
from memcontract.ladder import MemoryLadder, MemorySample


@pytest.mark.parametrize("ladder_input", ["live", "used"])
def test_the_calm_shortcut_decides_as_the_full_path(ladder_input: str) -> None:
    """A brain skipping calm samples gives the same samples as one feeding every sample,
    with a hard limit, live memory below used, and readings now and then late."""
    module = ModuleContract(name="x", max_heap_mb=100)
    fast = BackendBrain(module, ladder_input=ladder_input)
    full = BackendBrain(module, ladder_input=ladder_input)
    full.fast_calm = False
    rng = random.Random(7)
    used, now, levels = 50.0, 0.0, set()
    for step in range(5000):
        used = min(130.0, max(20.0, used + rng.choice((-8, -1, 0, 0, 1, 2, 9)) * rng.random()))
        now += rng.choice((0.5, 0.5, 0.5, 0.2, 2.5))
        args = (used * MIB, 0.6 * used * MIB, 100 * MIB, 125 * MIB, now, 20.0, 0.0)
        sample = fast.sample(*args)
        assert sample == full.sample(*args), step
        levels.add(sample.level)
    assert levels == {0, 1, 2, 3}  # the walk went through every level


def test_the_brain_runs_the_real_ladder() -> None:
    """The adapter's levels are the memory ladder's own, sample for sample (no
    re-implementation): used, live and the hard limit as the guard feeds them."""
    module = ModuleContract(name="x", max_heap_mb=100, alloc_rate_mb_per_sec=1000)
    brain = BackendBrain(module)
    brain.fast_calm = False
    ladder = MemoryLadder(
        module.ladder,
        interval=module.sample_interval,
        promised_rate_bytes_per_sec=module.alloc_rate_bytes_per_sec,
    )
    ratios = [0.5, 0.85, 0.92, 0.92, 0.96, 0.96, 0.96, 0.96, 0.96, 0.96, 0.96, 0.5, 0.5] * 3
    seen = []
    for step, ratio in enumerate(ratios):
        used, live = ratio * 100 * MIB, 40 * MIB
        sample = brain.sample(used, live, 100 * MIB, 110 * MIB, step * 0.5, 1.0, 0.0)
        reading = MemorySample(
            now=step * 0.5,
            used_bytes=int(used),
            capacity_bytes=100 * MIB,
            live_bytes=int(live),
            limit_bytes=110 * MIB,
        )
        expected = ladder.step(reading)
        assert (sample.level, sample.usage) == (expected.level, expected.usage_ratio), step
        seen.append(sample.level)
    assert 3 in seen and seen[11] < 3  # level 3, then out of it on live memory


def test_level_three_sheds_then_goes_half_open_while_retained() -> None:
    """Memory retained at level 3 (used flat, nothing growing, live memory unknown): Recovery
    releases, then admits 1/8 of non-core calls, doubling (memcontract.recovery's own
    numbers)."""
    brain = BackendBrain(ModuleContract(name="x", max_heap_mb=100), ladder_input="used")
    admits, releases = [], []
    for step in range(20):
        s = brain.sample(120 * MIB, 50 * MIB, 100 * MIB, None, step * 0.5, 10.0, 0.0)
        admits.append(s.admit)
        releases.append(s.release)
    assert admits[:3] == [1.0, 1.0, 0.0]  # level 3 confirmed on the third sample
    assert 0.125 in admits and admits[-1] == 1.0
    assert releases[2]  # the release on entering level 3
    assert sum(releases) >= 2  # and when it stalled


def test_level_three_is_left_on_live_memory_with_used_retained() -> None:
    """Used memory retained above the budget while live memory is low: the ladder leaves
    level 3 on live memory and reports the live usage (issue 22), admitting every call."""
    brain = BackendBrain(ModuleContract(name="x", max_heap_mb=100))
    samples = [
        brain.sample(97 * MIB, 30 * MIB, 100 * MIB, 125 * MIB, step * 0.5, 10.0, 0.0)
        for step in range(12)
    ]
    assert samples[2].level == 3 and samples[2].admit == 0.0
    assert samples[-1].level == 0 and samples[-1].admit == 1.0
    assert samples[-1].usage == pytest.approx(0.30)


def test_level_three_comes_before_the_hard_limit() -> None:
    """Used memory climbing fast toward a hard limit: level 3 at once, before its three
    confirmations, once used memory plus the growth margin reaches the limit."""
    brain = BackendBrain(ModuleContract(name="x", max_heap_mb=1024))
    levels = [
        brain.sample(
            (20 + 10 * step) * MIB, 10 * MIB, 1024 * MIB, 128 * MIB, step * 0.5, 1, 0
        ).level
        for step in range(10)
    ]
    assert 3 in levels and 20 + 10 * levels.index(3) < 128


def test_fail_fast_per_instance_needs_every_backend_at_level_three() -> None:
    """The client's table: one backend at level 3 among calm ones never fails calls fast;
    every answering backend at level 3 does, with one probe per window; backends that name
    no instance count as one (the last answer decides)."""
    module = ModuleContract(name="x")
    per_instance = CallerPolicy(module, key="instance")
    per_instance.record(Answer(backend=5, level=0, usage=0.3, at=10.0))
    per_instance.record(Answer(backend=4, level=3, usage=0.97, at=10.1))
    assert per_instance.allow(False, 10.2)  # not every backend is at level 3
    t = 20.0
    for backend in (4, 5, 4, 5):
        t += 0.1
        per_instance.record(Answer(backend=backend, level=3, usage=0.97, at=t))
    window = module.retry_pushback_ms / 1000
    assert per_instance.allow(True, t + 0.1)
    assert [per_instance.allow(False, t + 0.1) for _ in range(3)] == [False] * 3
    assert per_instance.allow(False, t + window + 0.2)  # the probe
    assert not per_instance.allow(False, t + window + 0.3)
    per_channel = CallerPolicy(module, key="target")
    per_channel.record(Answer(backend=4, level=3, usage=0.97, at=10.0))
    assert not per_channel.allow(False, 10.1) and per_channel.allow(True, 10.1)
    per_channel.record(Answer(backend=5, level=0, usage=0.3, at=10.2))
    assert per_channel.allow(False, 10.3)


def test_weighted_round_robin_blackout_expiry_and_mean() -> None:
    """grpc-go's rules: no usable weight before the blackout ends (round robin), weights
    after it, the mean for an endpoint without one, and expiry back to round robin."""
    wrr = WeightedRoundRobin(1, 3, blackout=10.0, expiration=180.0)
    up = np.ones(3, dtype=bool)
    weights = WeightedRoundRobin.report_weights(
        np.array([0.9, 0.3, 0.3]), np.array([0.1, 0.7, 0.7]), np.zeros(3), 1.0
    )
    assert weights[1] / weights[0] == pytest.approx((0.7 / 0.3) / (0.1 / 0.9))
    wrr.on_reports(np.array([[True, True, False]]), weights, now=0.0)
    assert np.allclose(wrr.shares(0, up, 5.0), 1 / 3)  # blacked out
    shares = wrr.shares(0, up, 10.0)
    mean = (weights[0] + weights[1]) / 2  # backend 2 has no report: the mean
    expected = np.array([weights[0], weights[1], mean])
    assert shares == pytest.approx(expected / expected.sum())
    assert np.allclose(wrr.shares_all(up, 10.0)[0], shares)
    assert np.allclose(wrr.shares(0, up, 190.0), 1 / 3)  # expired


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_small_fleet_surge_kills_without_and_sheds_with(seed: int) -> None:
    """10 backends, the surge, each fleet drawn anew: without memcontract backends are
    OOM-killed and nothing is shed; with shedding alone non-core calls are shed, the first
    kill comes no sooner and more core calls succeed; with the server's concurrency capped
    at 16 no backend is killed at all."""
    results = {}
    for name in ("none", "shedding"):
        fleet = Fleet(10, VARIANTS[name], Model(), seed=seed)
        fleet.run(120.0, SCENARIOS["surge"])
        results[name] = fleet.result("surge", 120.0)
    none, shedding = results["none"], results["shedding"]
    assert none.oom_kills > 0 and none.noncore_shed == 0
    assert shedding.noncore_shed > 0
    assert first_kill(shedding) >= first_kill(none)
    assert shedding.core_success > none.core_success
    capped = Fleet(10, VARIANTS["shedding"], Model(max_in_flight=16), seed=seed)
    capped.run(120.0, SCENARIOS["surge"])
    assert capped.result("surge", 120.0).oom_kills == 0


def first_kill(result: Result) -> float:
    """When the first OOM kill happened (seconds), or infinity."""
    return next((t for t, kills in zip(result.series["t"], result.series["oom"], strict=True)
                 if kills), float("inf"))  # fmt: skip


@pytest.fixture(scope="module")
def comparison() -> list[tuple[str, float, dict[str, object]]]:
    assert CALIBRATION.exists(), "bench/fleetsim/calibration.json is committed"
    return validate.compare()


@pytest.mark.parametrize(
    "figure",
    [
        "balancers.pressured_share",
        "balancers.even_after_s",
        "recovery.first_ok_s",
        "recovery.level_le1_s",
    ],
)
def test_three_backends_fall_within_the_real_runs(
    comparison: list[tuple[str, float, dict[str, object]]], figure: str
) -> None:
    """Each figure of the simulated calibration setups lies in the real runs' interquartile
    range, widened by the simulation's resolution for it (validate.slack)."""
    (value, summary) = next((v, s) for n, v, s in comparison if n == figure)
    assert validate.within(value, summary, validate.slack(figure)), (figure, value, summary)
