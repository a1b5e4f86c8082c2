"""The method to call and the request bytes to send, with no generated code.

A payload is a raw file (``--data-file``, sent as is) or JSON (``--data``) encoded with the
method's request type from a ``.proto`` compiled at run time (grpcio-tools' protoc into a
descriptor set, loaded into a fresh descriptor pool).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import LoadTestError

_SERVICE_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_NAME_RE = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Method:
    """A gRPC method: ``path`` such as ``/pkg.Svc/Method``; unary or server-streaming."""

    path: str
    server_streaming: bool = False

    @property
    def full_name(self) -> str:
        """``pkg.Svc.Method``, the descriptor pool's name."""
        return self.path[1:].replace("/", ".")


def method_path(text: str) -> str:
    """``/pkg.Svc/Method`` from ``/pkg.Svc/Method``, ``pkg.Svc/Method`` or ``pkg.Svc.Method``."""
    bare = text.strip().removeprefix("/")
    service, _, name = bare.partition("/") if "/" in bare else bare.rpartition(".")
    if not (_SERVICE_RE.fullmatch(service) and _NAME_RE.fullmatch(name)):
        raise LoadTestError(f"--method {text!r}: expected /package.Service/Method")
    return f"/{service}/{name}"


def read_file(path: str, what: str) -> bytes:
    """The bytes of ``path``, or a LoadTestError naming the flag and the file."""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise LoadTestError(f"{what} {path}: {err.strerror or err}") from None


def resolve(
    method: str,
    *,
    data: str | None = None,
    data_file: str | None = None,
    proto: str | None = None,
    import_paths: tuple[str, ...] = (),
    server_streaming: bool = False,
) -> tuple[Method, bytes]:
    """The method and request bytes described by the CLI's payload flags.

    With ``proto`` the method's arity comes from its descriptor (client and bidi streaming are
    refused) and ``data`` is JSON of its request type; without it ``data_file`` is sent as is
    and ``server_streaming`` says the arity. An empty request is the default payload.
    """
    path = method_path(method)
    if data is not None and data_file is not None:
        raise LoadTestError("--data and --data-file: give one payload, not both")
    if proto is None:
        if data is not None:
            raise LoadTestError("--data JSON needs --proto FILE to encode it (or use --data-file)")
        payload = read_file(data_file, "--data-file") if data_file else b""
        return Method(path, server_streaming), payload
    from google.protobuf import json_format, message_factory

    pool = _compile(proto, import_paths)
    name = path[1:].replace("/", ".")
    try:
        desc = pool.FindMethodByName(name)
    except KeyError:
        raise LoadTestError(f"--method {path}: no such method in {proto}") from None
    if desc.client_streaming:
        raise LoadTestError(f"--method {path}: client-streaming and bidi methods are not supported")
    request = message_factory.GetMessageClass(desc.input_type)()
    text = data
    if data_file is not None:
        text = read_file(data_file, "--data-file").decode("utf-8", "replace")
    if text:
        try:
            json_format.Parse(text, request)
        except json_format.ParseError as err:
            where = "--data-file" if data_file else "--data"
            reason = " ".join(str(err).split())
            raise LoadTestError(
                f"{where}: not a valid {desc.input_type.full_name}: {reason}"
            ) from None
    return Method(path, desc.server_streaming), request.SerializeToString()


def _compile(proto: str, import_paths: tuple[str, ...]) -> Any:
    """A descriptor pool holding ``proto`` and its imports, compiled with grpcio-tools."""
    from google.protobuf import descriptor_pb2, descriptor_pool

    if not os.path.isfile(proto):
        read_file(proto, "--proto")  # raises with the OS's reason
        raise LoadTestError(f"--proto {proto}: not a file")
    try:
        import grpc_tools
    except ImportError:
        raise LoadTestError(
            "--proto needs grpcio-tools: pip install 'memcontract[proto]'"
        ) from None
    includes = [str(Path(p)) for p in import_paths] or [str(Path(proto).parent)]
    relative = _relative_to_includes(proto, includes)
    well_known = str(Path(grpc_tools.__file__).parent / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        args = [sys.executable, "-m", "grpc_tools.protoc", f"--descriptor_set_out={out}"]
        args += ["--include_imports", *(f"-I{p}" for p in includes), f"-I{well_known}", relative]
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            message = done.stderr.strip().replace("\n", "; ") or f"protoc exit {done.returncode}"
            raise LoadTestError(f"--proto {proto}: {message}")
        files = descriptor_pb2.FileDescriptorSet.FromString(Path(out).read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return pool


def _relative_to_includes(proto: str, includes: list[str]) -> str:
    """``proto`` as protoc wants it: relative to the import path that holds it."""
    absolute = Path(proto).resolve()
    for include in includes:
        try:
            return str(absolute.relative_to(Path(include).resolve()))
        except ValueError:
            continue
    raise LoadTestError(f"--proto {proto}: not under any --import-path ({', '.join(includes)})")
