"""``MethodAwarePool``: a method's full name finds its service's file; everything else is the
wrapped pool's answer, misses included."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pool
from memcontract.interceptors._reflection import MethodAwarePool

from examples.python.inventory_demo.v1 import inventory_demo_pb2

FILE = inventory_demo_pb2.DESCRIPTOR.name


def test_the_default_pool_alone_does_not_find_a_method() -> None:
    # why the view exists; if protobuf learns this, the view is a no-op and can go
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindFileContainingSymbol("inventory_demo.v1.InventoryDemo.Ping")


@pytest.mark.parametrize(
    "symbol",
    [
        "inventory_demo.v1.InventoryDemo.Ping",
        "inventory_demo.v1.InventoryDemo",
        "inventory_demo.v1.PingRequest",
    ],
)
def test_methods_services_and_messages_resolve(symbol: str) -> None:
    assert MethodAwarePool(descriptor_pool.Default()).FindFileContainingSymbol(symbol).name == FILE


@pytest.mark.parametrize(
    "symbol",
    ["inventory_demo.v1.InventoryDemo.Nope", "inventory_demo.v1.Nope.Ping", "Ping", ""],
)
def test_misses_stay_key_errors(symbol: str) -> None:
    with pytest.raises(KeyError):
        MethodAwarePool(descriptor_pool.Default()).FindFileContainingSymbol(symbol)


def test_other_lookups_are_the_pool_s() -> None:
    view = MethodAwarePool(descriptor_pool.Default())
    assert view.FindFileByName(FILE) is inventory_demo_pb2.DESCRIPTOR
