"""TrustPolicy (docs/design.md §7): whose reported pressure counts. Unit rules, then end to end over
the example service: an untrusted caller's pressure never reaches the handler, never changes cache
admission and never sheds; it is counted. A trusted caller's pressure gets through."""

from __future__ import annotations

import grpc
import pytest

from memcontract import Level
from memcontract.cache import PEER_PRESSURE
from memcontract.telemetry import CACHE_DENIED, SHEDS, UNTRUSTED_PEERS
from memcontract.trust import TrustPolicy

from .test_example_service import (  # the example's generated code (imported there)
    TIMEOUT,
    at_level,
    get_stock,
    inventory_rig,
    order_rig,
    pb,
    pb_grpc,
    serve,
)

KINDS = ["sync", "aio"]
LOOPBACK = "ipv4:127.0.0.1:40123"

# -- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "peer",
    [LOOPBACK, "ipv4:10.1.2.3:80", "ipv6:[::1]:5000", "ipv6:%5B::1%5D:5000", "unix:/tmp/s", ""],
)
def test_default_trusts_every_caller(peer: str) -> None:
    policy = TrustPolicy()
    assert policy.trust_all
    assert policy.trusts(peer)


@pytest.mark.parametrize(
    ("networks", "peer", "trusted"),
    [
        (["127.0.0.1/32"], LOOPBACK, True),
        (["127.0.0.1/32"], "ipv4:127.0.0.2:40123", False),
        (["127.0.0.0/8"], "ipv4:127.9.9.9:1", True),
        (["10.0.0.0/8"], LOOPBACK, False),
        (["10.0.0.0/8"], "ipv4:10.200.3.4:443", True),
        (["10.0.0.0/8"], "ipv4:11.0.0.1:443", False),
        (["10.0.0.0/8", "127.0.0.1/32"], LOOPBACK, True),
        (["::1/128"], "ipv6:[::1]:5000", True),
        (["fe80::/10"], "ipv6:[fe80::1%eth0]:5000", True),
        (["::1/128"], LOOPBACK, False),
        (["127.0.0.1/32"], "unix:/run/inventory.sock", False),
        (["127.0.0.1/32"], "ipv4:not-an-address:1", False),
        (["127.0.0.1/32"], "", False),
        ([], LOOPBACK, False),  # only() with nothing listed trusts nobody
    ],
)
def test_only_trusts_listed_networks(networks: list[str], peer: str, trusted: bool) -> None:
    policy = TrustPolicy.only(networks=networks)
    assert not policy.trust_all
    assert policy.trusts(peer) is trusted


@pytest.mark.parametrize(
    ("network", "peer"),
    [("::1/128", "ipv6:%5B::1%5D:5000"), ("2001:db8::/32", "ipv6:%5B2001:db8::7%5D:443")],
)
def test_ipv6_peer_as_grpc_reports_it(network: str, peer: str) -> None:
    assert TrustPolicy.only(networks=[network]).trusts(peer)


def test_identities() -> None:
    policy = TrustPolicy.only(identities=["spiffe://prod/order"])
    assert policy.trusts("ipv4:10.0.0.1:1", ["spiffe://prod/order"])
    assert not policy.trusts("ipv4:10.0.0.1:1", ["spiffe://prod/other"])
    assert not policy.trusts("ipv4:10.0.0.1:1")
    both = TrustPolicy.only(networks=["10.0.0.0/8"], identities=["order"])
    assert both.trusts("ipv4:10.0.0.1:1") and both.trusts("ipv4:192.168.0.1:1", ["order"])


@pytest.mark.parametrize(
    ("target", "trusted"),
    [
        ("10.1.2.3:50051", True),
        ("dns:///10.1.2.3:50051", True),
        ("dns://8.8.8.8/10.1.2.3:50051", True),
        ("ipv4:10.1.2.3:50051,10.9.9.9:50051", True),
        ("ipv4:10.1.2.3:50051,127.0.0.1:50051", False),  # every address must be trusted
        ("127.0.0.1:50051", False),
        ("[fd00::7]:50051", True),
        ("ipv6:%5Bfd00::7%5D:50051", True),
        ("fd00::7", True),
        ("inventory.internal:443", True),  # a host name, listed as an identity
        ("dns:///inventory.internal:443", True),
        ("payments.internal:443", False),
        ("inventory", True),  # a logical target name given to client_interceptor
        ("unix:/run/inventory.sock", False),
        ("", False),
    ],
)
def test_a_client_judges_its_callee_by_target(target: str, trusted: bool) -> None:
    policy = TrustPolicy.only(
        networks=["10.0.0.0/8", "fd00::/8"], identities=["inventory.internal", "inventory"]
    )
    assert policy.trusts_target(target) is trusted
    assert TrustPolicy().trusts_target(target)  # the default trusts every callee


@pytest.mark.parametrize(
    "network",
    ["not-a-network", "10.0.0.0/33", "256.0.0.1/32", "10.0.0.0/8/8", "", "::1/129", "10.0.0.0/-1"],
)
def test_invalid_network_raises_at_construction(network: str) -> None:
    with pytest.raises(ValueError):
        TrustPolicy.only(networks=["127.0.0.1/32", network])


def test_policy_is_immutable_and_hashable() -> None:
    policy = TrustPolicy.only(networks=["10.0.0.0/8"])
    assert policy.networks == ("10.0.0.0/8",)
    assert hash(policy) == hash(TrustPolicy.only(networks=("10.0.0.0/8",)))
    with pytest.raises(AttributeError):
        policy.trust_all = True  # type: ignore[misc]


# -- end to end ---------------------------------------------------------------------------------

UNTRUSTING = TrustPolicy.only(networks=["10.0.0.0/8"])
TRUSTING = TrustPolicy.only(networks=["127.0.0.1/32"])


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


def ping(channel: grpc.Channel, metadata: object = None) -> pb.PingResponse:
    stub = pb_grpc.InventoryDemoStub(channel)
    reply: pb.PingResponse = stub.Ping(pb.PingRequest(), timeout=TIMEOUT, metadata=metadata)
    return reply


def test_untrusted_callers_pressure_is_ignored_and_counted(kind: str) -> None:
    caller = order_rig(0.95)
    with serve(kind, trust=UNTRUSTING) as s, s.channel(caller) as channel:
        replies = [get_stock(channel, "sku-0004")[0] for _ in range(3)]
        pinged = ping(channel)
        report = list(pb_grpc.InventoryDemoStub(channel).Report(pb.ReportRequest(rows=50)))
    # the handler's peer_pressure() was None in every call
    assert not any(r.caller.present for r in replies) and not pinged.caller.present
    # cache writes were not denied for the caller's pressure: cached on the first read
    assert [r.source for r in replies] == ["database", "cache", "cache"]
    assert all(r.cache_denied == "" for r in replies)
    assert s.inventory.db_reads == 2  # one GetStock read, one report read
    assert s.stats.denied[PEER_PRESSURE] == 0 and s.stats.admitted == 1
    assert s.rig.guard.telemetry.by_attribute[(CACHE_DENIED, "reason", PEER_PRESSURE)] == 0
    # each call with (ignored) pressure was counted, and none was shed
    assert s.rig.guard.telemetry.counts[UNTRUSTED_PEERS] == 5
    assert s.rig.guard.level == Level.NORMAL and s.rig.guard.telemetry.counts[SHEDS] == 0
    assert sum(len(c.rows) for c in report) == 50


def test_untrusted_caller_at_level_3_never_sheds(kind: str) -> None:
    caller = order_rig(0.97)
    for _ in range(2):
        caller.step(0.97, capacity_mb=250)
    assert caller.guard.level == Level.CRITICAL
    spoofed = (("x-memory-level", "3"), ("x-memory-usage", "99%"), ("x-memory-capacity", "64"))
    with serve(kind, trust=UNTRUSTING) as s:
        with s.channel(caller) as channel:
            chunks = list(pb_grpc.InventoryDemoStub(channel).Report(pb.ReportRequest(rows=20)))
            assert get_stock(channel, "sku-0001")[0].cache_denied == ""
        with s.channel() as plain:  # hand-written headers, no client interceptor
            assert not ping(plain, metadata=spoofed).caller.present
            assert get_stock(plain, "sku-0002")[0].cache_denied == ""
    assert len(chunks) == 1
    # Report, GetStock and the spoofed Ping carried pressure; the plain GetStock carried none
    assert s.rig.guard.telemetry.counts[UNTRUSTED_PEERS] == 3
    assert s.rig.guard.telemetry.counts[SHEDS] == 0 and s.stats.admitted == 2


def test_trusted_caller_pressure_gets_through(kind: str) -> None:
    caller = order_rig(0.95)
    with serve(kind, trust=TRUSTING) as s, s.channel(caller) as channel:
        replies = [get_stock(channel, "sku-0004")[0] for _ in range(3)]
        pinged = ping(channel)
    assert all(r.caller.present and r.caller.usage_ratio == 0.95 for r in replies)
    assert pinged.caller.present and pinged.caller.module == "order"
    assert [(r.source, r.cache_denied) for r in replies] == [("database", PEER_PRESSURE)] * 3
    assert s.inventory.db_reads == 3 and s.stats.denied[PEER_PRESSURE] == 3
    assert s.rig.guard.telemetry.counts[UNTRUSTED_PEERS] == 0


def test_default_policy_trusts_the_loopback_caller(kind: str) -> None:
    caller = order_rig(0.95)
    with serve(kind) as s, s.channel(caller) as channel:
        reply = get_stock(channel, "sku-0004")[0]
    assert reply.caller.present and reply.cache_denied == PEER_PRESSURE


def test_identity_only_policy_does_not_trust_an_insecure_caller(kind: str) -> None:
    caller = order_rig(0.95)
    policy = TrustPolicy.only(identities=["spiffe://prod/order"])
    with serve(kind, trust=policy) as s, s.channel(caller) as channel:
        reply = get_stock(channel, "sku-0004")[0]
    assert not reply.caller.present and reply.cache_denied == ""
    assert s.rig.guard.telemetry.counts[UNTRUSTED_PEERS] == 1


def test_untrusted_caller_does_not_stop_local_shedding(kind: str) -> None:
    caller = order_rig(0.1)
    rig = at_level(inventory_rig(), Level.CRITICAL)
    with serve(kind, rig, trust=UNTRUSTING) as s, s.channel(caller) as channel:
        with pytest.raises(grpc.RpcError) as err:
            get_stock(channel, "sku-0001")
        assert not ping(channel).caller.present  # core: served
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert s.rig.guard.telemetry.counts[SHEDS] == 1
