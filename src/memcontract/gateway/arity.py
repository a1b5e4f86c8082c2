"""Which methods stream which way: learned from descriptor sets and upstream reflection.

The gateway forwards bytes and needs no generated code, but grpcio must know a method's arity
before the first message: a unary call is far cheaper to proxy than a stream. What is not known
is forwarded as a raw bidirectional stream, which carries every arity correctly.

>>> arities = Arities()
>>> arities.add("/pkg.Svc/Get", Arity.UNARY_UNARY)
>>> arities.get("/pkg.Svc/Get"), arities.get("/pkg.Svc/Other")
(<Arity.UNARY_UNARY: (False, False)>, <Arity.STREAM_STREAM: (True, True)>)
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

from .options import GatewayConfigError

log = logging.getLogger("memcontract.gateway")

# Services the gateway never learns from upstreams: it serves health itself, and reflection is
# a bidirectional stream already.
_SKIPPED = frozenset({"grpc.health.v1.Health"})


class Arity(enum.Enum):
    """A method's shape: (client streams, server streams)."""

    UNARY_UNARY = (False, False)
    UNARY_STREAM = (False, True)
    STREAM_UNARY = (True, False)
    STREAM_STREAM = (True, True)

    @classmethod
    def of(cls, client_streaming: bool, server_streaming: bool) -> Arity:
        """The arity of a method descriptor's two flags."""
        return cls((bool(client_streaming), bool(server_streaming)))


class Arities:
    """Method name (``/pkg.Service/Method``) -> :class:`Arity`; unknown methods are bidi."""

    def __init__(self) -> None:
        self._known: dict[str, Arity] = {}

    def add(self, method: str, arity: Arity) -> None:
        """Record one method's arity (the first source to name a method wins)."""
        self._known.setdefault(method, arity)

    def get(self, method: str) -> Arity:
        """The method's arity, or bidi when unknown."""
        return self._known.get(method, Arity.STREAM_STREAM)

    def __len__(self) -> int:
        return len(self._known)

    def add_files(self, files: Iterable[descriptor_pb2.FileDescriptorProto]) -> None:
        """Record every method of every service in ``files``."""
        for file in files:
            prefix = f"{file.package}." if file.package else ""
            for service in file.service:
                for m in service.method:
                    name = f"/{prefix}{service.name}/{m.name}"
                    self.add(name, Arity.of(m.client_streaming, m.server_streaming))

    def load_descriptor_set(self, path: str) -> None:
        """Record the methods of a ``FileDescriptorSet`` file (``protoc -o FILE``)."""
        try:
            with open(path, "rb") as f:
                data = f.read()
            fds = descriptor_pb2.FileDescriptorSet.FromString(data)
        except (OSError, DecodeError) as err:
            raise GatewayConfigError(
                f"descriptor_sets: {path}: not a FileDescriptorSet (protoc -o FILE): {err}"
            ) from None
        self.add_files(fds.file)

    def learn_from(
        self, channel: grpc.Channel, target: str, timeout: float, *, quiet: bool = False
    ) -> bool:
        """Record the methods an upstream's server reflection lists; False when it cannot be
        asked (logged as a warning unless ``quiet``, then at debug level)."""
        try:
            self.add_files(_reflected_files(channel, timeout))
        except grpc.RpcError as err:
            (log.debug if quiet else log.warning)(
                "memcontract gateway: no reflection from %s (%s): %s",
                target,
                err.code() if hasattr(err, "code") else err,
                # Descriptor sets are loaded first: what they name keeps its arity.
                "methods no descriptor set names go as raw streams"
                if self._known
                else "its methods go as raw streams",
            )
            return False
        return True


def _reflected_files(
    channel: grpc.Channel, timeout: float
) -> list[descriptor_pb2.FileDescriptorProto]:
    # One reflection stream: list the services, then ask for the file of each.
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    Request = reflection_pb2.ServerReflectionRequest

    def ask(request: Any) -> Any:
        responses = stub.ServerReflectionInfo(iter([request]), timeout=timeout)
        for response in responses:
            if response.HasField("error_response"):
                raise _ReflectionError(response.error_response.error_message)
            return response
        raise _ReflectionError("no answer")

    listed = ask(Request(list_services=""))
    files: list[descriptor_pb2.FileDescriptorProto] = []
    for service in listed.list_services_response.service:
        if service.name in _SKIPPED or service.name.startswith("grpc.reflection."):
            continue
        try:
            answer = ask(Request(file_containing_symbol=service.name))
        except _ReflectionError as err:
            log.warning("memcontract gateway: reflection has no file for %s: %s", service.name, err)
            continue
        for raw in answer.file_descriptor_response.file_descriptor_proto:
            files.append(descriptor_pb2.FileDescriptorProto.FromString(raw))
    return files


class _ReflectionError(grpc.RpcError):  # type: ignore[misc]
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.NOT_FOUND
