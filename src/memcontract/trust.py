"""Whose reported pressure counts (docs/design.md §7): :class:`TrustPolicy`, asked by the
server interceptors about callers and by the client interceptors about callees."""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


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
