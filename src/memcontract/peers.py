"""What peers report: the callees' pressure table (client side) and the trust policy.

Both are plain core objects; the interceptors feed them and read them.

>>> table = PeerTable(ttl=2.0)
>>> table.record("inventory:50051", Pressure(0.97, level=Level.CRITICAL), pushback_ms=500)
>>> table.blocked("inventory:50051")
True
"""

from __future__ import annotations

import ipaddress
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .pressure import Level, Pressure


@dataclass(frozen=True, slots=True)
class PeerEntry:
    """The last pressure one target reported, and until when it holds (monotonic seconds)."""

    pressure: Pressure
    expires_at: float
    blocked_until: float


class PeerTable:
    """Last pressure reported by each target: bounded (LRU) and expiring.

    Args:
        ttl: seconds an entry holds (a few of the peer's sample intervals).
        max_targets: entries kept; the least recently updated goes first.
        default_pushback_ms: fail-fast window when a level-3 report carries no pushback.
        max_fail_fast_ms: the longest fail-fast window, whatever a callee asks for (its
            pushback is cut to this); 0 turns failing fast off.
        clock: monotonic seconds (``FakeClock().monotonic`` in tests).
    """

    def __init__(
        self,
        *,
        ttl: float = 2.0,
        max_targets: int = 1024,
        default_pushback_ms: int = 1000,
        max_fail_fast_ms: int = 30000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or max_targets <= 0:
            raise ValueError("ttl and max_targets must be positive")
        if max_fail_fast_ms < 0:
            raise ValueError("max_fail_fast_ms must be 0 or more")
        self.ttl = ttl
        self.max_targets = max_targets
        self.default_pushback_ms = default_pushback_ms
        self.max_fail_fast_ms = max_fail_fast_ms
        self.clock = clock
        """The table's clock (monotonic seconds)."""
        self._entries: OrderedDict[str, PeerEntry] = OrderedDict()
        self.blocked_until: dict[str, float] = {}
        """Targets in a fail-fast window (level 3) -> until when: read it, never write it. Empty
        nearly always, so a caller's per-call check is one truth test."""
        self._lock = threading.Lock()

    def record(self, target: str, pressure: Pressure, pushback_ms: int | None = None) -> None:
        """Store what ``target`` reported; a level-3 report opens a fail-fast window of its
        pushback (else ``default_pushback_ms``), at most ``max_fail_fast_ms``."""
        now = self.clock()
        until = 0.0
        if pressure.level == Level.CRITICAL:
            ms = self.default_pushback_ms if pushback_ms is None else pushback_ms
            ms = min(ms, self.max_fail_fast_ms)
            until = now + ms / 1000 if ms > 0 else 0.0
        entry = PeerEntry(pressure, now + self.ttl, until)
        with self._lock:
            self._entries[target] = entry
            self._entries.move_to_end(target)
            while len(self._entries) > self.max_targets:
                old, _ = self._entries.popitem(last=False)
                self.blocked_until.pop(old, None)
            if until:
                self.blocked_until[target] = until
            else:
                self.blocked_until.pop(target, None)

    def reset_after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may have been held at fork)."""
        self._lock = threading.Lock()

    def get(self, target: str) -> Pressure | None:
        """The target's last unexpired pressure, or ``None``."""
        entry = self._entries.get(target)
        if entry is None or entry.expires_at <= self.clock():
            return None
        return entry.pressure

    def blocked(self, target: str) -> bool:
        """Whether non-core calls to ``target`` fail fast now (a dict lookup unless blocked)."""
        until = self.blocked_until.get(target)
        return until is not None and until > self.clock()

    def blocked_for(self, target: str) -> float:
        """Seconds left in the target's fail-fast window (0 when not blocked)."""
        until = self.blocked_until.get(target)
        return 0.0 if until is None else max(0.0, until - self.clock())

    def least_pressured(self, targets: Iterable[str]) -> str | None:
        """Of ``targets``, one not blocked with the lowest reported usage (unknown counts as 0)."""
        best: tuple[float, str] | None = None
        for target in targets:
            if self.blocked(target):
                continue
            p = self.get(target)
            score = (p.usage_ratio if p else 0.0, target)
            best = score if best is None or score < best else best
        return None if best is None else best[1]

    def __len__(self) -> int:
        return len(self._entries)

    def snapshot(self) -> dict[str, Pressure]:
        """Every unexpired entry, for display."""
        now = self.clock()
        with self._lock:
            return {t: e.pressure for t, e in self._entries.items() if e.expires_at > now}


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """Whose reported pressure counts (docs/design.md §7). Default: everyone.

    Args:
        networks: caller addresses trusted, as CIDRs (``"10.0.0.0/8"``, ``"127.0.0.1/32"``).
        identities: TLS peer identities trusted (SAN or CN, as grpc reports them).
        trust_all: when true (the default without lists), every caller is trusted.

    An untrusted caller's headers never shed (nothing does but the local level) and never
    reach ``peer_pressure()``, so they cannot change cache admission; each is counted.
    """

    networks: tuple[str, ...] = ()
    identities: tuple[str, ...] = ()
    trust_all: bool = True

    @classmethod
    def only(cls, *, networks: Sequence[str] = (), identities: Sequence[str] = ()) -> TrustPolicy:
        """Trust only these networks and identities (validated now)."""
        for net in networks:
            ipaddress.ip_network(net, strict=False)
        return cls(tuple(networks), tuple(identities), trust_all=False)

    def trusts(self, peer: str, identities: Iterable[str] = ()) -> bool:
        """Whether a caller is trusted; ``peer`` as grpc gives it (``ipv4:1.2.3.4:5678``)."""
        if self.trust_all:
            return True
        if any(i in self.identities for i in identities):
            return True
        address = _address_of(peer)
        return address is not None and self._trusts_address(address)

    def trusts_target(self, target: str) -> bool:
        """Whether a callee reached at ``target`` is trusted (the client side's question).

        ``target`` is a grpc target name (``"10.0.0.7:50051"``, ``"dns:///inventory:50051"``,
        ``"ipv4:10.0.0.7:50051,10.0.0.8:50051"``, ``"[::1]:50051"``). An address is judged by
        ``networks``; a host name by ``identities`` (the name TLS checks the callee's
        certificate against). Every address of a list must be trusted; a Unix socket never
        is, unless the whole target is listed in ``identities``.
        """
        if self.trust_all or target in self.identities:
            return True
        hosts = _hosts_of_target(target)
        return bool(hosts) and all(self._trusts_host(host) for host in hosts)

    def _trusts_host(self, host: str) -> bool:
        if host in self.identities:
            return True
        try:
            address = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        return self._trusts_address(address)

    def _trusts_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in ipaddress.ip_network(n, strict=False) for n in self.networks)


_ADDRESS_SCHEMES = ("ipv4", "ipv6")
_NO_HOST_SCHEMES = ("unix", "unix-abstract", "vsock")


def _hosts_of_target(target: str) -> list[str]:
    """The hosts a grpc target name names (addresses or host names), without ports."""
    target = urllib.parse.unquote(target)
    scheme, _, rest = target.partition(":")
    if scheme in _NO_HOST_SCHEMES:
        return []
    if scheme in _ADDRESS_SCHEMES:
        return [_host_of(part) for part in rest.split(",") if part]
    if scheme == "dns":
        # dns:host:port, dns:///host:port, dns://resolver/host:port
        rest = rest[2:].partition("/")[2] if rest.startswith("//") else rest
        return [_host_of(rest)] if rest else []
    return [_host_of(target)] if target else []


def _host_of(host_port: str) -> str:
    """``host`` of ``host:port``, ``[v6]:port``, ``[v6]``, ``v6`` or ``host``."""
    if host_port.startswith("["):
        return host_port[1:].partition("]")[0]
    if host_port.count(":") == 1:  # host:port (a bare IPv6 address has two or more)
        return host_port.partition(":")[0]
    return host_port


def _address_of(peer: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # grpc percent-encodes the brackets of IPv6 peers: "ipv6:%5B::1%5D:5000"
    kind, _, rest = urllib.parse.unquote(peer).partition(":")
    try:
        if kind == "ipv4":
            return ipaddress.IPv4Address(rest.rsplit(":", 1)[0])
        if kind == "ipv6":
            return ipaddress.IPv6Address(rest.rsplit(":", 1)[0].strip("[]").split("%")[0])
    except ValueError:
        return None
    return None
