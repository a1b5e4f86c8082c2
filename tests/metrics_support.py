"""Reading Prometheus expositions in tests: families, types, label keys and samples."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

#: Labels the OpenTelemetry exporter adds to every series (not memcontract's own).
OTEL_LABEL_PREFIX = "otel_scope_"


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
