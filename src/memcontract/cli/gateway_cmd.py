"""``memcontract gateway``: parse the flags (and the config file), then run the gateway."""

from __future__ import annotations

import argparse
from typing import Any

DESCRIPTION = """\
A transparent gRPC proxy that forwards every method as raw bytes (metadata, deadline,
headers, messages, trailers, status, cancellation) and protects its upstreams with the memory
state they report in their trailers: non-core calls for an upstream at level 3 are shed here
(RESOURCE_EXHAUSTED with grpc-retry-pushback-ms), calls go to the less pressured upstream, and
with --contract the gateway runs its own guard. It serves grpc.health.v1 (NOT_SERVING while
draining). SIGTERM: stop taking calls, let in-flight ones finish (--grace-s), exit 0.

Every option can also be set in a YAML file (--config): keys are the long option names with
underscores (upstreams: a list; trust_networks: a list; ...); flags given win over the file.
Each worker (--workers) is a process with its own guard: the contract's max_heap_mb is the
budget of ONE worker, so give each worker its share of the memory meant for the gateway."""


def register(sub: Any) -> None:
    """Add the ``gateway`` command."""
    p = sub.add_parser(
        "gateway",
        help="run the pressure-aware gRPC proxy",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE", help="YAML file of options (flags override it)")
    p.add_argument("--listen", metavar="HOST:PORT", help="address to serve on (port 0: any)")
    p.add_argument(
        "--upstream",
        dest="upstreams",
        metavar="HOST:PORT",
        action="append",
        help="an upstream server (repeat for several; calls go to the less pressured)",
    )
    p.add_argument("--contract", metavar="FILE", help="the gateway's own memory contract")
    p.add_argument("--module", help="module of --contract in force (default: the only one)")
    p.add_argument(
        "--core-method",
        dest="core_methods",
        metavar="GLOB",
        action="append",
        help="method glob never shed, e.g. '/inventory.v1.InventoryService/Ping' (repeatable; "
        "health always is; the contract's core_methods count too)",
    )
    p.add_argument(
        "--descriptor-set",
        dest="descriptor_sets",
        metavar="FILE",
        action="append",
        help="FileDescriptorSet (protoc -o) giving methods' arities; the rest is learned from "
        "the upstreams' server reflection, and what neither names goes as a raw bidi stream",
    )
    p.add_argument("--workers", type=int, help="processes sharing the port (default 1)")
    p.add_argument(
        "--grace-s", type=float, help="seconds in-flight calls get after SIGTERM (default 10)"
    )
    p.add_argument(
        "--max-request-bytes",
        type=int,
        help="largest client message forwarded, bytes (default 4194304)",
    )
    p.add_argument(
        "--max-response-bytes",
        type=int,
        help="largest upstream message forwarded, bytes (default 4194304)",
    )
    p.add_argument(
        "--reflection-timeout-s",
        type=float,
        help="wait for an upstream's reflection at start, seconds (default 3)",
    )
    p.add_argument(
        "--trust-network",
        dest="trust_networks",
        metavar="CIDR",
        action="append",
        help="clients whose x-memory-* headers are forwarded (repeatable); with no "
        "--trust-network or --trust-identity every client is trusted; others' are stripped",
    )
    p.add_argument(
        "--trust-identity",
        dest="trust_identities",
        metavar="NAME",
        action="append",
        help="TLS client identity (SAN/CN) trusted like --trust-network",
    )
    p.add_argument("--tls-cert", metavar="PEM", help="serve TLS with this certificate")
    p.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    p.add_argument(
        "--tls-client-ca", metavar="PEM", help="require client certificates from this CA (mTLS)"
    )
    p.add_argument(
        "--upstream-tls",
        action="store_const",
        const=True,
        help="dial upstreams with TLS (implied by the other --upstream-* TLS options)",
    )
    p.add_argument("--upstream-ca", metavar="PEM", help="CA to verify upstreams with")
    p.add_argument("--upstream-cert", metavar="PEM", help="client certificate for upstreams")
    p.add_argument("--upstream-key", metavar="PEM", help="private key of --upstream-cert")
    p.add_argument(
        "--upstream-server-name",
        metavar="NAME",
        help="name upstream certificates must carry (default: the upstream's host)",
    )
    p.set_defaults(run=run_gateway)


def run_gateway(args: argparse.Namespace) -> int:
    """Build the options (file, then flags) and run the gateway until SIGTERM."""
    from ..gateway import GatewayOptions, load_config, run

    given = {k: v for k, v in vars(args).items() if k not in ("config", "command", "run")}
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}
    base = GatewayOptions(**load_config(args.config)) if args.config else GatewayOptions()
    return run(base.merged(given))
