"""The gateway's options: one frozen dataclass, read from flags and/or a YAML file, checked
when built. Every problem is one :class:`GatewayConfigError` naming the file, line and key (or
the flag), which the CLI prints without a traceback (exit 2).

>>> opts = GatewayOptions(listen="127.0.0.1:8080", upstreams=("127.0.0.1:50051",))
>>> opts.check().host_port
('127.0.0.1', 8080)
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from memcontract.errors import MemcontractError, did_you_mean

MIB = 1024 * 1024


class GatewayConfigError(MemcontractError, ValueError):
    """A gateway option or config file is invalid (``str(err)`` names where and what)."""


@dataclass(frozen=True)
class GatewayOptions:
    """Everything ``memcontract gateway`` is told (docs/design.md §8).

    Attributes:
        listen: ``HOST:PORT`` the gateway serves on (port 0: any free port).
        upstreams: ``HOST:PORT`` of each upstream server (at least one).
        contract, module: the gateway's own memory contract and module (optional; without one
            the gateway reports no pressure of its own and never sheds for itself).
        core_methods: extra globs of methods never shed (health always is; the contract's own
            ``core_methods`` count too). Put the upstreams' core methods here.
        descriptor_sets: ``FileDescriptorSet`` files (``protoc -o``) naming the methods' arities;
            methods they do not name are learned from the upstreams' reflection.
        workers: processes sharing the listening port (SO_REUSEPORT), 1 or more.
        grace_s: seconds in-flight calls get to finish after SIGTERM.
        max_request_bytes: largest client message forwarded (bytes; larger: RESOURCE_EXHAUSTED).
        max_response_bytes: largest upstream message forwarded (bytes).
        reflection_timeout_s: how long to wait for an upstream's reflection at start (seconds).
        trust_networks, trust_identities: clients whose ``x-memory-*`` headers are forwarded
            (CIDRs, TLS identities); others' are stripped. Both empty: every client is trusted.
        tls_cert, tls_key: PEM files: serve TLS. tls_client_ca: also require client certificates
            signed by this CA (mutual TLS).
        upstream_tls: dial upstreams with TLS (roots: ``upstream_ca`` or the system's).
        upstream_ca, upstream_cert, upstream_key: PEM files for upstream TLS (cert and key: the
            gateway's client certificate). upstream_server_name: the name upstream certificates
            must carry (default: the upstream's host).
        worker: this process's index among ``workers`` (set by the gateway itself).
    """

    listen: str = ""
    upstreams: tuple[str, ...] = ()
    contract: str | None = None
    module: str | None = None
    core_methods: tuple[str, ...] = ()
    descriptor_sets: tuple[str, ...] = ()
    workers: int = 1
    grace_s: float = 10.0
    max_request_bytes: int = 4 * MIB
    max_response_bytes: int = 4 * MIB
    reflection_timeout_s: float = 3.0
    trust_networks: tuple[str, ...] = ()
    trust_identities: tuple[str, ...] = ()
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    upstream_tls: bool = False
    upstream_ca: str | None = None
    upstream_cert: str | None = None
    upstream_key: str | None = None
    upstream_server_name: str | None = None
    worker: int = field(default=0, repr=False)

    @property
    def host_port(self) -> tuple[str, int]:
        """``listen`` split into host and port."""
        return split_address(self.listen, "listen")

    def check(self) -> GatewayOptions:
        """Validate every option; return self (raises :class:`GatewayConfigError`)."""
        self.host_port  # noqa: B018 - validates
        if not self.upstreams:
            raise GatewayConfigError("upstreams: at least one --upstream HOST:PORT is needed")
        for target in self.upstreams:
            split_address(target, "upstream")
        _positive("workers", self.workers, low=1)
        _positive("grace_s", self.grace_s, low=0)
        _positive("max_request_bytes", self.max_request_bytes, low=1)
        _positive("max_response_bytes", self.max_response_bytes, low=1)
        _positive("reflection_timeout_s", self.reflection_timeout_s, low=0)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise GatewayConfigError("tls_cert and tls_key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise GatewayConfigError("tls_client_ca needs tls_cert and tls_key")
        if (self.upstream_cert is None) != (self.upstream_key is None):
            raise GatewayConfigError("upstream_cert and upstream_key go together")
        for name in ("contract", "tls_cert", "tls_key", "tls_client_ca", "upstream_ca",
                     "upstream_cert", "upstream_key"):  # fmt: skip
            _readable(name, getattr(self, name))
        for path in self.descriptor_sets:
            _readable("descriptor_sets", path)
        if self.trust_networks:
            from memcontract.trust import TrustPolicy

            try:
                TrustPolicy.only(networks=self.trust_networks)
            except ValueError as err:
                raise GatewayConfigError(f"trust_networks: {err}") from None
        return self

    def merged(self, overrides: dict[str, Any]) -> GatewayOptions:
        """These options with ``overrides`` (the flags given) replacing the file's values."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


def split_address(address: str, name: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as host and port; a GatewayConfigError otherwise."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise GatewayConfigError(f"{name}: {address!r} is not HOST:PORT")
    return host, int(port)


def _positive(name: str, value: float, *, low: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise GatewayConfigError(f"{name}: must be a number >= {low:g}, got {value!r}")


def _readable(name: str, path: str | None) -> None:
    if path is not None and not os.access(path, os.R_OK):
        raise GatewayConfigError(f"{name}: cannot read {path!r}")


# --- the YAML file ------------------------------------------------------------------------------

_FIELDS = {f.name: f for f in fields(GatewayOptions) if f.name != "worker"}
_LISTS = {"upstreams", "core_methods", "descriptor_sets", "trust_networks", "trust_identities"}
_KINDS: dict[str, tuple[type, ...]] = {
    "workers": (int,),
    "max_request_bytes": (int,),
    "max_response_bytes": (int,),
    "grace_s": (int, float),
    "reflection_timeout_s": (int, float),
    "upstream_tls": (bool,),
}


def load_config(path: str) -> dict[str, Any]:
    """The options a YAML config file sets (keys as :class:`GatewayOptions` fields), checked
    for unknown keys and types; errors name the file, the line and the key.

    ``upstreams`` can also be written ``upstream`` (one address); lists accept one string.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(1024 * 1024 + 1)
    except (OSError, UnicodeDecodeError) as err:
        raise GatewayConfigError(f"{path}: cannot read config file: {err}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise GatewayConfigError(f"{path}{line}: not valid YAML: {problem}") from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise GatewayConfigError(
            f"{path}:{root.start_mark.line + 1}: expected a mapping of options"
        )
    found: dict[str, Any] = {}
    for key_node, value_node in root.value:
        key = str(key_node.value).replace("-", "_")
        key = "upstreams" if key == "upstream" else key
        where = f"{path}:{key_node.start_mark.line + 1}: {key_node.value}"
        if key not in _FIELDS:
            raise GatewayConfigError(f"{where}: unknown key{did_you_mean(key, _FIELDS)}")
        found[key] = _value(key, value_node, where)
    return found


def _value(key: str, node: yaml.Node, where: str) -> Any:
    value = yaml.SafeLoader("").construct_object(node, deep=True)
    if key in _LISTS:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise GatewayConfigError(f"{where}: expected a list of strings")
        return tuple(items)
    kinds = _KINDS.get(key, (str,))
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        want = " or ".join(k.__name__ for k in kinds)
        raise GatewayConfigError(f"{where}: expected {want}, got {value!r}")
    return value
