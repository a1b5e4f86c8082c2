"""What the gateway says when an upstream has no reflection: with descriptor sets loaded, their
methods keep their arity, and the warning must not claim that everything goes as raw streams."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2

from memcontract.gateway.arity import Arities, Arity


@pytest.fixture
def no_reflection() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(1))  # serves nothing at all
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def _descriptor_set(path: str) -> None:
    file = descriptor_pb2.FileDescriptorProto(name="e.proto", package="e", syntax="proto3")
    file.message_type.add(name="M")
    service = file.service.add(name="S")
    service.method.add(name="Get", input_type=".e.M", output_type=".e.M")
    with open(path, "wb") as out:
        out.write(descriptor_pb2.FileDescriptorSet(file=[file]).SerializeToString())


@pytest.mark.parametrize("with_descriptors", [False, True])
def test_no_reflection_warning_says_what_goes_as_raw_streams(
    no_reflection: str, with_descriptors: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    arities = Arities()
    if with_descriptors:
        path = str(tmp_path / "e.pb")
        _descriptor_set(path)
        arities.load_descriptor_set(path)
    with grpc.insecure_channel(no_reflection) as channel, caplog.at_level(logging.WARNING):
        assert not arities.learn_from(channel, no_reflection, timeout=5)
    (message,) = [r.getMessage() for r in caplog.records]
    assert "UNIMPLEMENTED" in message
    if with_descriptors:
        assert message.endswith("methods no descriptor set names go as raw streams")
        assert arities.get("/e.S/Get") == Arity.UNARY_UNARY
    else:
        assert message.endswith("its methods go as raw streams")
