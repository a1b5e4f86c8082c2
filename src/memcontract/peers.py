"""What peers report: the callees' pressure table (client side) and the trust policy.

Both are plain core objects; the interceptors feed them and read them.

>>> table = PeerTable(ttl=2.0)
>>> table.record("inventory:50051", Pressure(0.97, level=Level.CRITICAL), pushback_ms=500)
>>> table.blocked("inventory:50051")
True
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .pressure import Level, Pressure

_NEVER = -math.inf
MAX_INSTANCES = 256
"""Instances remembered per target (the least recently heard from goes first)."""


class _Answers:
    """What one target's backends last answered: one target is one channel, and a channel may
    reach many backends (DNS, xDS, a list of addresses), each naming itself by its instance id.

    ``instances``: each named backend's latest answer, (when, level 3?); 0 is every backend
    that names no instance (text keys only, or a peer older than the instance id). ``calm_at``
    and ``calm_from``: the latest answer that was not level 3, and whose (``None``: an answer
    without keys, which names nobody).
    """

    __slots__ = ("calm_at", "calm_from", "expires_at", "instances", "pressure", "window")

    def __init__(self) -> None:
        self.instances: OrderedDict[int, tuple[float, bool]] = OrderedDict()
        self.calm_at = _NEVER
        self.calm_from: int | None = None
        self.pressure: Pressure | None = None
        self.expires_at = _NEVER
        self.window = 0.0

    def heard(self, instance: int, at: float, critical: bool) -> None:
        self.instances[instance] = (at, critical)
        self.instances.move_to_end(instance)
        if len(self.instances) > MAX_INSTANCES:
            self.instances.popitem(last=False)

    def all_critical(self, since: float) -> bool:
        """Whether every answer since ``since`` carried level 3, from two instances or more,
        or from the only instance ever heard from.

        A calm answer is set aside only when it came from an instance whose own later answer
        carried level 3, or when a single instance answers this target (then an answer
        without keys was that instance's too, before its level-3 one).
        """
        sole = len(self.instances) == 1
        if self.calm_at >= since and not sole:
            latest = self.instances.get(self.calm_from) if self.calm_from is not None else None
            if latest is None or not latest[1] or latest[0] < self.calm_at:
                return False
        critical = 0
        for at, is_critical in self.instances.values():
            if at >= since:
                if not is_critical:
                    return False
                critical += 1
        return critical >= 2 or (sole and critical == 1)


class PeerTable:
    """What each callee target's backends last reported: bounded (LRU), expiring, and the
    fail-fast decision per target (docs/design.md §7).

    Every completed call is an answer. A target fails non-core calls fast only while every
    answer in the last window (its pushback, at most ``max_fail_fast_ms``) carried level 3,
    from two backend instances or more, or from the only one ever heard from; one call per
    window still goes out (a probe), and the first answer without level 3 ends it. So one
    backend at level 3 behind a channel never stops the calls its calm siblings would serve.

    Args:
        ttl: seconds a reported pressure holds for :meth:`get` (absent or expired: calm).
        max_targets: targets kept; the least recently updated goes first.
        default_pushback_ms: the window when a level-3 report carries no pushback.
        max_fail_fast_ms: the longest window, whatever a callee asks for (its pushback is cut
            to this); 0 turns failing fast off.
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
        self._targets: OrderedDict[str, _Answers] = OrderedDict()
        self.blocked_until: dict[str, float] = {}
        """Targets failing fast -> when their next probe may go: read it, never write it.
        Empty nearly always, so a caller's per-call check is one truth test."""
        self._lock = threading.Lock()

    def record(
        self,
        target: str,
        pressure: Pressure,
        pushback_ms: int | None = None,
        instance_id: int = 0,
    ) -> None:
        """An answer from ``target`` carrying ``pressure`` (from backend ``instance_id``, 0
        when it names none) and the pushback it asked for, if any."""
        now = self.clock()
        critical = pressure.level == Level.CRITICAL
        with self._lock:
            answers = self._answers(target)
            answers.pressure = pressure
            answers.expires_at = now + self.ttl
            answers.heard(instance_id, now, critical)
            if not critical:
                answers.calm_at, answers.calm_from = now, instance_id
                self.blocked_until.pop(target, None)
                return
            answers.window = self._window(pushback_ms)
            blocks = answers.window and target not in self.blocked_until
            if blocks and answers.all_critical(now - answers.window):
                self.blocked_until[target] = now + answers.window

    def record_calm(self, target: str, instance_id: int | None = None) -> None:
        """An answer from ``target`` that was not level 3 without a new report: no keys at all
        (``instance_id`` ``None``), or the same calm report again. Cheap: no lock unless it ends
        a fail-fast window."""
        answers = self._targets.get(target)
        if answers is None:
            return  # nothing heard from it yet: calm already
        now = self.clock()
        answers.calm_at, answers.calm_from = now, instance_id
        if instance_id is not None and instance_id in answers.instances:
            answers.instances[instance_id] = (now, False)
        if target in self.blocked_until:
            self.blocked_until.pop(target, None)

    def _window(self, pushback_ms: int | None) -> float:
        ms = self.default_pushback_ms if pushback_ms is None else pushback_ms
        return max(0, min(ms, self.max_fail_fast_ms)) / 1000

    def _answers(self, target: str) -> _Answers:
        answers = self._targets.get(target)
        if answers is None:
            answers = self._targets[target] = _Answers()
            while len(self._targets) > self.max_targets:
                old, _ = self._targets.popitem(last=False)
                self.blocked_until.pop(old, None)
        else:
            self._targets.move_to_end(target)
        return answers

    def fails_fast(self, target: str) -> bool:
        """Whether a non-core call to ``target`` fails locally now. While it fails fast, one
        call per window goes out anyway (this returns ``False`` for it): a probe, so that
        recovery is noticed."""
        until = self.blocked_until.get(target)
        if until is None:
            return False
        now = self.clock()
        if now < until:
            return True
        with self._lock:
            until = self.blocked_until.get(target)
            if until is None:
                return False
            if now < until:
                return True
            answers = self._targets.get(target)
            window = answers.window if answers is not None else self._window(None)
            self.blocked_until[target] = now + window
        return False

    def reset_after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may have been held at fork)."""
        self._lock = threading.Lock()

    def get(self, target: str) -> Pressure | None:
        """The target's last unexpired pressure (any of its backends), or ``None``."""
        answers = self._targets.get(target)
        if answers is None or answers.expires_at <= self.clock():
            return None
        return answers.pressure

    def blocked(self, target: str) -> bool:
        """Whether ``target`` fails non-core calls fast (its probe aside)."""
        return target in self.blocked_until

    def blocked_for(self, target: str) -> float:
        """Seconds until the target's next probe may go (0 when not failing fast)."""
        until = self.blocked_until.get(target)
        return 0.0 if until is None else max(0.0, until - self.clock())

    def instances(self, target: str) -> int:
        """How many backend instances of ``target`` have answered with keys (0 counts as one)."""
        answers = self._targets.get(target)
        return 0 if answers is None else len(answers.instances)

    def __len__(self) -> int:
        return len(self._targets)

    def snapshot(self) -> dict[str, Pressure]:
        """Every unexpired entry, for display."""
        now = self.clock()
        with self._lock:
            return {
                t: a.pressure
                for t, a in self._targets.items()
                if a.pressure is not None and a.expires_at > now
            }


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """Whose reported pressure counts (SPEC §7). Default: everyone.

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
