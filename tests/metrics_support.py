"""Reading Prometheus expositions in tests: families, types, label keys and samples."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

#: Labels the OpenTelemetry exporter adds to every series (not memcontract's own).
OTEL_LABEL_PREFIX = "otel_scope_"

Shape = tuple[str, frozenset[str]]


def _shape(kind: str, *labels: str) -> Shape:
    return kind, frozenset(labels)


#: Every memcontract_* family either language may expose: name -> (type, label keys), as
#: docs/operations.md lists them.
FAMILIES: dict[str, Shape] = {
    "memcontract_memory_usage_ratio": _shape("gauge"),
    "memcontract_memory_used_bytes": _shape("gauge"),
    "memcontract_memory_live_bytes": _shape("gauge"),
    "memcontract_memory_retained_plateau_bytes": _shape("gauge"),
    "memcontract_memory_capacity_bytes": _shape("gauge"),
    "memcontract_memory_budget_bytes": _shape("gauge"),
    "memcontract_memory_limit_bytes": _shape("gauge"),
    "memcontract_level": _shape("gauge"),
    "memcontract_contract_info": _shape("gauge", "module", "version"),
    "memcontract_memory_alloc_rate_bytes_per_second": _shape("gauge"),
    "memcontract_memory_psi_ratio": _shape("gauge"),
    "memcontract_gc_pause_p99_seconds": _shape("gauge"),
    "memcontract_time_at_level_seconds_total": _shape("counter", "level"),
    "memcontract_shed_total": _shape("counter", "class"),
    "memcontract_shed_dry_run_total": _shape("counter", "class"),
    "memcontract_fast_fail_total": _shape("counter", "class"),
    "memcontract_shed_half_open_admitted_total": _shape("counter"),
    "memcontract_recycles_total": _shape("counter"),
    "memcontract_peer_untrusted_total": _shape("counter"),
    "memcontract_peer_invalid_headers_total": _shape("counter", "key"),
    "memcontract_probe_failures_total": _shape("counter", "source"),
    "memcontract_memory_releases_total": _shape("counter", "result"),
    "memcontract_cache_admission_denied_total": _shape("counter", "reason"),
    "memcontract_hook_errors_total": _shape("counter", "hook"),
    "memcontract_actions_total": _shape("counter", "action", "dry_run"),
}
#: Families that appear with their first event (their label values are open-ended).
EVENT_FAMILIES = frozenset(
    {
        "memcontract_peer_invalid_headers_total",
        "memcontract_probe_failures_total",
        "memcontract_memory_releases_total",
        "memcontract_cache_admission_denied_total",
        "memcontract_hook_errors_total",
        "memcontract_actions_total",
    }
)


@dataclass(frozen=True)
class Family:
    """One ``memcontract_*`` family: its type, label keys and samples ``(labels, value)``."""

    type: str
    label_keys: frozenset[str]
    samples: tuple[tuple[dict[str, str], float], ...]

    def value(self, **labels: str) -> float:
        """The value of the one sample whose labels include ``labels``."""
        found = [v for ls, v in self.samples if labels.items() <= ls.items()]
        assert len(found) == 1, f"{len(found)} samples match {labels}: {self.samples}"
        return found[0]


def families(text: str) -> dict[str, Family]:
    """The ``memcontract_*`` families of an exposition, keyed by their name as exposed
    (counters with ``_total``), without the exporter's ``otel_scope_*`` labels."""
    out: dict[str, Family] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("memcontract_"):
            continue
        samples = tuple(
            (
                {k: v for k, v in s.labels.items() if not k.startswith(OTEL_LABEL_PREFIX)},
                float(s.value),
            )
            for s in family.samples
            if not s.name.endswith("_created")
        )
        name = family.name + ("_total" if family.type == "counter" else "")
        keys = frozenset(k for labels, _ in samples for k in labels)
        out[name] = Family(family.type, keys, samples)
    return out


def scrape(url: str, timeout: float = 10.0) -> str:
    """GET ``url`` and return its body as text."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode()
