"""The example server lists its services by reflection (`grpcurl -plaintext ADDR list`, as
`make demo` suggests, needs no proto), sync and aio, and resolves a method by its full name, as
ghz and `grpcurl describe pkg.Svc.Method` ask (protobuf's default pool alone does not)."""

from __future__ import annotations

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from examples.python.inventory import Inventory
from examples.python.server import CONTRACT, background
from memcontract import Contract, Guard

from .support import file_containing


@pytest.mark.parametrize("aio", [False, True], ids=["sync", "aio"])
def test_example_server_lists_and_describes_its_services(aio: bool) -> None:
    guard = Guard(Contract.load(CONTRACT, module="inventory"))
    inventory = Inventory(guard, skus=10)
    try:
        with (
            background(guard, inventory, aio=aio) as port,
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            database = ProtoReflectionDescriptorDatabase(channel)
            assert set(database.get_services()) == {
                "inventory_demo.v1.InventoryDemo",
                "grpc.health.v1.Health",
                "memcontract.v1.MemoryPressureService",
                "xds.service.orca.v3.OpenRcaService",
                "grpc.reflection.v1alpha.ServerReflection",
            }
            described = database.FindFileContainingSymbol("inventory_demo.v1.InventoryDemo")
            assert "inventory_demo.v1" in described.package
            # asked of the server itself (the client's database would guess from its cache)
            assert file_containing(channel, "inventory_demo.v1.InventoryDemo.Ping") == [
                "inventory_demo/v1/inventory_demo.proto"
            ]
            for unknown in ("inventory_demo.v1.InventoryDemo.Nope", "inventory_demo.v1.Nope.Ping"):
                assert file_containing(channel, unknown) == grpc.StatusCode.NOT_FOUND
    finally:
        inventory.close()
