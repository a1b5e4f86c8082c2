"""Running the gateway: channels, the grpc.aio server, health, draining, worker processes.

One process (:func:`serve`) is a grpc.aio server with health, the catch-all
:class:`~memcontract.gateway.handler.ProxyHandler`, and (with descriptor sets) reflection; it
prints JSON lines on stdout (``listening`` first, ``stopped`` last). :func:`run` starts
``workers`` such processes on one port (SO_REUSEPORT; the kernel spreads connections) and
forwards SIGTERM to them.

Draining on SIGTERM: health turns NOT_SERVING, the server stops taking calls and gives
in-flight ones ``grace_s`` to finish, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio

from memcontract.contract import Contract
from memcontract.guard import Guard
from memcontract.interceptors import add_reflection
from memcontract.interceptors.sides import ServerSide
from memcontract.trust import TrustPolicy

from .arity import Arities
from .director import Director, Upstream, make_upstreams
from .handler import ProxyHandler
from .options import GatewayConfigError, GatewayOptions
from .pump import Pump

Printer = Callable[[dict[str, Any]], None]
_RELEARN_S = 5.0  # first retry of an upstream's reflection; doubled up to _RELEARN_MAX_S
_RELEARN_MAX_S = 300.0


def print_line(line: dict[str, Any]) -> None:
    """One JSON object on stdout (the gateway's machine-readable output), written with one
    system call: workers share the pipe, and a line under 4 KiB written at once is never
    interleaved with another process's."""
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), (json.dumps(line, sort_keys=True) + "\n").encode())


def own_contract(options: GatewayOptions) -> Contract:
    """The contract in force: the file's module (or a stand-in that never sheds when none is
    given), its core methods extended by ``options.core_methods``."""
    if options.contract:
        contract = Contract.load(options.contract, module=options.module)
    else:
        contract = Contract.from_yaml("modules: [{name: gateway, max_heap_mb: 1048576}]")
    if not options.core_methods:
        return contract
    module = dataclasses.replace(
        contract.module, core_methods=(*contract.module.core_methods, *options.core_methods)
    )
    modules = tuple(module if m is contract.module else m for m in contract.modules)
    return dataclasses.replace(contract, modules=modules, module=module)


def trust_policy(options: GatewayOptions) -> TrustPolicy:
    """Whose ``x-memory-*`` keys are forwarded: the configured lists, or everyone."""
    if options.trust_networks or options.trust_identities:
        return TrustPolicy.only(
            networks=options.trust_networks, identities=options.trust_identities
        )
    return TrustPolicy()


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def _channel_options(options: GatewayOptions) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", options.max_request_bytes),
        ("grpc.max_receive_message_length", options.max_response_bytes),
        # Each worker dials its own connections; do not share subchannels across channels.
        ("grpc.use_local_subchannel_pool", 1),
        # A proxy does not retry for its clients (they decide); without retries grpc keeps no
        # per-call retry state (buffered messages), which costs CPU on every call.
        ("grpc.enable_retries", 0),
    ]
    if options.upstream_server_name:
        out.append(("grpc.ssl_target_name_override", options.upstream_server_name))
    return out


def _upstream_credentials(options: GatewayOptions) -> grpc.ChannelCredentials | None:
    if not (options.upstream_tls or options.upstream_ca or options.upstream_cert):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(options.upstream_ca),
        private_key=_read(options.upstream_key),
        certificate_chain=_read(options.upstream_cert),
    )


def _aio_channel(options: GatewayOptions, target: str) -> grpc.aio.Channel:
    creds = _upstream_credentials(options)
    if creds is None:
        return grpc.aio.insecure_channel(target, options=_channel_options(options))
    return grpc.aio.secure_channel(target, creds, options=_channel_options(options))


def _learn(options: GatewayOptions, arities: Arities, target: str, quiet: bool = False) -> bool:
    # Reflection with a sync channel, run in a thread: start-up only, never per call.
    creds = _upstream_credentials(options)
    opts = _channel_options(options)
    channel = (
        grpc.insecure_channel(target, options=opts)
        if creds is None
        else grpc.secure_channel(target, creds, options=opts)
    )
    with channel:
        return arities.learn_from(channel, target, options.reflection_timeout_s, quiet=quiet)


class Gateway:
    """One gateway process's parts, built from options (see :func:`serve`)."""

    def __init__(self, options: GatewayOptions) -> None:
        self.options = options
        self.guard = Guard(own_contract(options))
        self.own = ServerSide(self.guard, None) if options.contract else None
        trust = trust_policy(options)
        upstreams: list[Upstream] = make_upstreams(
            options.upstreams, self.guard, lambda t: _aio_channel(options, t)
        )
        self.director = Director(upstreams, trust, self.guard.telemetry)
        self.arities = Arities()
        for path in options.descriptor_sets:
            self.arities.load_descriptor_set(path)
        self.pump = Pump(self.director, self.own)
        self.handler = ProxyHandler(self.pump, self.arities)
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", options.max_request_bytes),
                ("grpc.max_send_message_length", options.max_response_bytes),
                ("grpc.so_reuseport", 1),
            ]
        )
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc

        self.health = health.aio.HealthServicer()
        self.serving = health_pb2.HealthCheckResponse.SERVING
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        if options.descriptor_sets:
            self._serve_reflection()
        # Registered last: health (and reflection) above are served here, everything else
        # is forwarded.
        self.server.add_generic_rpc_handlers((self.handler,))
        self._tasks: set[asyncio.Task[None]] = set()

    def _serve_reflection(self) -> None:
        # With descriptor sets the gateway answers reflection from them; without, reflection
        # calls are forwarded like any other (the upstreams answer for themselves).
        from google.protobuf import descriptor_pb2, descriptor_pool
        from grpc_reflection.v1alpha import reflection

        pool = descriptor_pool.DescriptorPool()
        names = [reflection.SERVICE_NAME, "grpc.health.v1.Health"]
        for path in self.options.descriptor_sets:
            with open(path, "rb") as f:
                fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
            for file in fds.file:
                with contextlib.suppress(TypeError):  # already in the pool
                    pool.Add(file)
                prefix = f"{file.package}." if file.package else ""
                names.extend(prefix + s.name for s in file.service)
        add_reflection(self.server, names, pool=pool)

    def bind(self) -> int:
        """Bind the listening address (TLS when configured); the port bound."""
        options = self.options
        try:
            if options.tls_cert:
                client_ca = _read(options.tls_client_ca)
                creds = grpc.ssl_server_credentials(
                    [(_read(options.tls_key), _read(options.tls_cert))],
                    root_certificates=client_ca,
                    require_client_auth=client_ca is not None,
                )
                port = self.server.add_secure_port(options.listen, creds)
            else:
                port = self.server.add_insecure_port(options.listen)
        except RuntimeError:  # grpc's "Failed to bind": the port is taken, or the PEM is bad
            port = 0
        if port == 0:
            why = " (or tls_cert/tls_key are not a PEM pair)" if options.tls_cert else ""
            raise GatewayConfigError(f"listen: cannot bind {options.listen}: in use?{why}")
        return int(port)

    async def learn_arities(self) -> None:
        """Ask every upstream's reflection for its methods (in threads, bounded in time);
        upstreams that do not answer are asked again in the background."""
        targets = [u.target for u in self.director.upstreams]
        learned = await asyncio.gather(
            *(asyncio.to_thread(_learn, self.options, self.arities, t) for t in targets)
        )
        missing = [t for t, ok in zip(targets, learned, strict=True) if not ok]
        if missing:
            task = asyncio.get_running_loop().create_task(self._relearn(missing))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _relearn(self, targets: list[str]) -> None:
        pause = _RELEARN_S
        while targets:
            await asyncio.sleep(pause)
            pause = min(pause * 2, _RELEARN_MAX_S)
            for target in list(targets):
                if await asyncio.to_thread(_learn, self.options, self.arities, target, True):
                    targets.remove(target)
                    self.handler.forget()

    async def close(self) -> None:
        """Cancel background work and close the upstream channels."""
        for task in list(self._tasks):
            task.cancel()
        for upstream in self.director.upstreams:
            await upstream.channel.close()
        await self.guard.stop_async()


async def serve(options: GatewayOptions, out: Printer = print_line) -> int:
    """Run one gateway process until SIGTERM or SIGINT, then drain; returns 0."""
    gateway = Gateway(options)
    port = gateway.bind()
    if options.contract:
        await gateway.guard.start_async()
    await gateway.learn_arities()
    await gateway.server.start()
    await gateway.health.set("", gateway.serving)

    host = options.host_port[0]
    out(
        {
            "event": "listening",
            "address": f"{host}:{port}",
            "port": port,
            "worker": options.worker,
            "pid": os.getpid(),
            "methods": len(gateway.arities),
        }
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await gateway.health.enter_graceful_shutdown()
    await gateway.server.stop(options.grace_s)
    await gateway.close()
    out(
        {
            "event": "stopped",
            "worker": options.worker,
            "pid": os.getpid(),
            "calls": {u.target: u.calls for u in gateway.director.upstreams},
            "edge_sheds": gateway.pump.edge_sheds,
        }
    )
    return 0


def run(options: GatewayOptions) -> int:
    """Serve with ``options.workers`` processes; returns the exit status (0 after a drain)."""
    options.check()
    if options.workers == 1:
        return asyncio.run(serve(options))
    host, port = options.host_port
    with _reserved_port(host, port) as port:
        listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        workers = [
            _spawn(dataclasses.replace(options, listen=listen, workers=1, worker=i))
            for i in range(options.workers)
        ]

        def forward(signum: int, frame: Any) -> None:
            for proc in workers:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        codes = [proc.wait() for proc in workers]
    return 0 if all(c == 0 for c in codes) else 1


@contextlib.contextmanager
def _reserved_port(host: str, port: int) -> Any:
    # Port 0 with several workers: bind one socket with SO_REUSEPORT to pick the port all
    # workers share; it never listens, so it takes no connection, and it is kept until they end.
    if port != 0:
        yield port
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, 0))
        yield sock.getsockname()[1]


def _spawn(options: GatewayOptions) -> subprocess.Popen[bytes]:
    # A fresh interpreter per worker (grpc does not survive fork); options as JSON on stdin.
    proc = subprocess.Popen(
        [sys.executable, "-c", "from memcontract.gateway.server import worker; worker()"],
        stdin=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(dataclasses.asdict(options)).encode())
    proc.stdin.close()
    return proc


def worker() -> None:
    """Entry point of a worker process: options as JSON on stdin."""
    raw = json.loads(sys.stdin.read())
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    # The parent forwards SIGTERM; a terminal's Ctrl-C reaches the whole group, so SIGINT too.
    sys.exit(asyncio.run(serve(GatewayOptions(**values))))
