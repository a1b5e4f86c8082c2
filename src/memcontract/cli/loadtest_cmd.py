"""``memcontract loadtest TARGET --method M ...`` and ``memcontract loadtest merge A.json ...``.

Parses and dispatches only: the harness is ``memcontract.loadtest``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the harness (and grpc) load only when the command runs
    from ..loadtest import LoadSpec, LoadTestError, Report, Schedule, Tls

_KEY_RE = re.compile(r"[0-9a-z_.-]+")
DEFAULT_TIMEOUT_S = 20.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0

EPILOG = """\
examples:
  memcontract loadtest 127.0.0.1:50051 --method /pkg.Svc/Get --data-file req.bin --rps 500
  memcontract loadtest 127.0.0.1:50051 --method /pkg.Svc/Get --proto svc.proto \\
      --data '{"sku": "a"}' --schedule ramp:100->2000:30s --out run1
  memcontract loadtest 127.0.0.1:50051 --method /pkg.Svc/Get --concurrency 32 \\
      --connections 2 --workers 2 --duration 20s
  memcontract loadtest merge run1.json run2.json --out all
"""


def _bad(message: str) -> LoadTestError:
    """A usage error (the CLI prints it and exits 2)."""
    from ..loadtest import LoadTestError

    return LoadTestError(message)


def register(sub: Any) -> None:
    """Add the ``loadtest`` command (``loadtest merge`` is its first positional word)."""
    p = sub.add_parser(
        "loadtest",
        help="drive a gRPC method at a rate or concurrency; report latency and target memory",
        description="Load-test one gRPC method (unary or server-streaming), or merge reports: "
        "'memcontract loadtest merge A.json B.json --out NAME'.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "target", nargs="?", help="host:port, or the word 'merge' followed by report files"
    )
    p.add_argument("reports", nargs="*", help=argparse.SUPPRESS)
    p.add_argument("--method", metavar="M", help="/package.Service/Method")
    payload = p.add_argument_group("payload (default: an empty request)")
    payload.add_argument("--data", metavar="JSON", help="request as JSON (needs --proto)")
    payload.add_argument(
        "--data-file", metavar="FILE", help="request bytes (or JSON with --proto) from a file"
    )
    payload.add_argument(
        "--proto", metavar="FILE", help=".proto file declaring the method (compiled at start)"
    )
    payload.add_argument(
        "--import-path", metavar="DIR", action="append", default=[], help="protoc -I (repeat)"
    )
    payload.add_argument(
        "--stream", action="store_true", help="the method is server-streaming (without --proto)"
    )
    load = p.add_argument_group("load")
    load.add_argument(
        "--rps", metavar="R", type=float, help="open loop at this fixed rate (calls/s)"
    )
    load.add_argument(
        "--schedule", metavar="S", help="open loop: const:R, ramp:A->B:30s, step:R1,R2,...:10s"
    )
    load.add_argument(
        "--concurrency", metavar="C", type=int, help="closed loop with this many callers"
    )
    load.add_argument(
        "--duration", metavar="D", help="measured time (e.g. 30s; default: the schedule, or 10s)"
    )
    load.add_argument("--total", metavar="N", type=int, help="stop after this many calls")
    load.add_argument("--warmup", metavar="D", default="0", help="unmeasured time before (e.g. 5s)")
    load.add_argument(
        "--timeout", metavar="D", default="20s", help="deadline of each call (default 20s)"
    )
    load.add_argument(
        "--metadata", metavar="K=V", action="append", default=[], help="k=v request metadata"
    )
    load.add_argument(
        "--connections", metavar="N", type=int, default=1, help="connections (default 1)"
    )
    load.add_argument(
        "--workers",
        metavar="N",
        type=int,
        help="worker processes (default: 1; closed loop from 16 callers, 2)",
    )
    load.add_argument(
        "--max-inflight",
        metavar="N",
        type=int,
        default=1000,
        help="open loop: calls due while N are in flight are dropped (1000)",
    )
    load.add_argument(
        "--connect-timeout", metavar="D", default="5s", help="time to reach the target (5s)"
    )
    tls = p.add_argument_group("TLS (default: plaintext on loopback, TLS elsewhere)")
    tls.add_argument("--insecure", action="store_true", help="plaintext")
    tls.add_argument("--cacert", metavar="FILE", help="PEM roots to trust (default: the system's)")
    tls.add_argument("--cert", metavar="FILE", help="PEM client certificate (with --key)")
    tls.add_argument("--key", metavar="FILE", help="PEM client key (with --cert)")
    out = p.add_argument_group("output")
    out.add_argument("--out", metavar="NAME", help="write NAME.json, NAME.csv and NAME.html")
    out.add_argument(
        "--label",
        metavar="L",
        help="the stream's name in merged reports (default: the method's last part)",
    )
    out.add_argument("--no-progress", action="store_true", help="no live table on a terminal")
    p.set_defaults(run=run_loadtest)


def run_loadtest(args: argparse.Namespace) -> int:
    """Dispatch ``loadtest merge`` or a run."""
    from ..loadtest import TargetUnreachable, run
    from ..loadtest.live import LiveProgress

    if args.target == "merge":
        return run_merge(args)
    if args.target is None:
        raise _bad("give the TARGET (host:port) and --method (see --help)")
    if args.reports:
        raise _bad(f"unexpected arguments: {' '.join(args.reports)}")
    spec = build_spec(args)
    title = f"{spec.method} on {spec.target}"
    try:
        with LiveProgress(title, enabled=False if args.no_progress else None) as live:
            report = run(spec, progress=live)
    except TargetUnreachable as err:
        print(f"memcontract loadtest: {err}", file=sys.stderr)
        return 1
    _finish(report, args.out)
    return 0


def run_merge(args: argparse.Namespace) -> int:
    """Merge report files exactly into one (printed; written with --out)."""
    if not args.reports:
        raise _bad("loadtest merge: give the report files (A.json B.json ...)")
    from ..loadtest.metrics import merge
    from ..loadtest.report import jsonfmt

    reports = [jsonfmt.read(path) for path in args.reports]
    config = {**reports[0].config, "workers": sum(r.config.get("workers", 1) for r in reports)}
    _finish(merge(reports, config, args.reports), args.out)
    return 0


def _finish(report: Report, out: str | None) -> None:
    from ..loadtest.report import text, write_all

    print(text.render(report))
    if out:
        paths = write_all(report, out)
        print("wrote " + " ".join(str(p) for p in paths))


def build_spec(args: argparse.Namespace) -> LoadSpec:
    """The LoadSpec the flags describe; LoadTestError naming the flag when one is wrong."""
    from ..loadtest import LoadSpec, parse_duration, resolve

    # Values that are wrong are said before values that are missing (a mode, the method).
    durations = {
        name: parse_duration(value, what=f"--{name.replace('_', '-')}") if value else None
        for name, value in (
            ("duration", args.duration),
            ("warmup", None if args.warmup in ("0", "0s") else args.warmup),
            ("timeout", args.timeout),
            ("connect_timeout", args.connect_timeout),
        )
    }
    if not args.method:
        raise _bad("--method is required (e.g. --method /package.Service/Method)")
    method, payload = resolve(
        args.method,
        data=args.data,
        data_file=args.data_file,
        proto=args.proto,
        import_paths=tuple(args.import_path),
        server_streaming=args.stream,
    )
    return LoadSpec(
        target=args.target,
        method=method.path,
        payload=payload,
        server_streaming=method.server_streaming,
        schedule=_schedule(args),
        concurrency=args.concurrency,
        duration=durations["duration"],
        total=args.total,
        warmup=durations["warmup"] or 0.0,
        metadata=tuple(_metadata(item) for item in args.metadata),
        timeout=durations["timeout"] or DEFAULT_TIMEOUT_S,
        connections=args.connections,
        workers=args.workers,
        tls=_tls(args),
        max_inflight=args.max_inflight,
        connect_timeout=durations["connect_timeout"] or DEFAULT_CONNECT_TIMEOUT_S,
        label=args.label,
    )


def _schedule(args: argparse.Namespace) -> Schedule | None:
    from ..loadtest import Schedule, parse_schedule

    given = [name for name in ("rps", "schedule", "concurrency") if getattr(args, name) is not None]
    if len(given) != 1:
        raise _bad("give one of --rps, --schedule (open loop) or --concurrency (closed)")
    if args.rps is not None:
        if not 0 < args.rps < math.inf:
            raise _bad(f"--rps {args.rps:g}: must be a finite number > 0")
        return Schedule.constant(args.rps)
    if args.schedule is not None:
        return parse_schedule(args.schedule)
    return None


def _metadata(item: str) -> tuple[str, str | bytes]:
    key, sep, value = item.partition("=")
    key = key.strip().lower()
    if not sep or not _KEY_RE.fullmatch(key):
        raise _bad(f"--metadata {item!r}: expected key=value (key: 0-9 a-z _ . -)")
    return (key, value.encode()) if key.endswith("-bin") else (key, value)


def _tls(args: argparse.Namespace) -> Tls | None:
    from ..loadtest import Tls
    from ..loadtest.payload import read_file
    from ..loadtest.runner import is_loopback

    files = {name: getattr(args, name) for name in ("cacert", "cert", "key")}
    if args.insecure:
        if any(files.values()):
            raise _bad("--insecure with --cacert/--cert/--key: choose one")
        return None
    if (files["cert"] is None) != (files["key"] is None):
        raise _bad("--cert and --key go together")
    if not any(files.values()) and is_loopback(args.target):
        return None
    material = {n: read_file(path, f"--{n}") if path else None for n, path in files.items()}
    return Tls(**material)
