"""The Kubernetes manifests (deploy/k8s/): they parse, their parts refer to each other, and the
contract's budget is at most 0.9 x the container's memory limit (docs/operations.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from examples.python.server import GRACE_SECONDS
from memcontract import Contract
from memcontract.recovery import RECYCLE_EXIT_STATUS

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "k8s"
MIB = 1048576
#: Budget at most this fraction of the container's memory limit (docs/operations.md).
MAX_BUDGET_OVER_LIMIT = 0.9
_QUANTITY = re.compile(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?")
_UNITS = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity_bytes(text: str) -> int:
    """A Kubernetes memory quantity (``576Mi``, ``1G``, ``600000000``) in bytes."""
    match = _QUANTITY.fullmatch(str(text))
    if match is None:
        raise ValueError(f"not a memory quantity: {text!r}")
    return int(float(match[1]) * _UNITS[match[2]])


def objects() -> dict[str, dict[str, Any]]:
    """Every object in deploy/k8s/*.yaml, by kind (one of each)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["kind"], path
            if doc["kind"] == "Kustomization":
                assert sorted(doc["resources"]) == sorted(
                    p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"
                )
                continue
            assert doc["metadata"]["name"], path
            assert doc["kind"] not in found, f"two {doc['kind']} objects"
            found[doc["kind"]] = doc
    return found


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    return objects()


def container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (only,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def args(manifests: dict[str, dict[str, Any]]) -> dict[str, str]:
    pairs = (arg.removeprefix("--").split("=", 1) for arg in container(manifests)["args"])
    return {key: value for key, value in pairs}


def contract(manifests: dict[str, dict[str, Any]]) -> Contract:
    """The ConfigMap's contract, loaded as the container loads it (path and --module)."""
    mount = container(manifests)["volumeMounts"][0]
    volume = manifests["Deployment"]["spec"]["template"]["spec"]["volumes"][0]
    assert volume["name"] == mount["name"]
    configmap = manifests["ConfigMap"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    path = Path(args(manifests)["contract"])
    assert path.parent == Path(mount["mountPath"])
    text = configmap["data"][path.name]
    return Contract.from_yaml(text, module=args(manifests)["module"])


def test_every_manifest_parses(manifests: dict[str, dict[str, Any]]) -> None:
    assert set(manifests) == {"ConfigMap", "Deployment", "Service", "PodMonitor"}


def test_budget_at_most_nine_tenths_of_the_memory_limit(
    manifests: dict[str, dict[str, Any]],
) -> None:
    budget = contract(manifests).module.max_heap_bytes
    resources = container(manifests)["resources"]
    limit = quantity_bytes(resources["limits"]["memory"])
    request = quantity_bytes(resources["requests"]["memory"])
    assert budget <= MAX_BUDGET_OVER_LIMIT * limit, (budget / MIB, limit / MIB)
    assert budget <= request <= limit


def test_probes_readiness_on_grpc_health_liveness_not(
    manifests: dict[str, dict[str, Any]],
) -> None:
    spec = container(manifests)
    grpc_port = int(args(manifests)["port"])
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    assert ports["grpc"] == grpc_port
    assert spec["readinessProbe"]["grpc"] == {"port": grpc_port, "service": ""}
    liveness = spec["livenessProbe"]
    # NOT_SERVING during a drain must not fail liveness: no health-based liveness probe.
    assert "grpc" not in liveness and "exec" not in liveness
    assert liveness["tcpSocket"]["port"] in ("grpc", grpc_port)


def test_the_drain_outlasts_a_readiness_probe_and_fits_the_grace_period(
    manifests: dict[str, dict[str, Any]],
) -> None:
    """NOT_SERVING must be seen by a readiness probe before the listener closes (a recycle is
    not a pod deletion: only the probe takes the pod out of the endpoints), and the drain and
    the server's grace must end before the kubelet's SIGKILL."""
    readiness = container(manifests)["readinessProbe"]
    drain = float(args(manifests)["drain-delay-s"])
    assert drain > readiness["periodSeconds"] * readiness["failureThreshold"]
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= drain + GRACE_SECONDS


def test_restart_always_and_recycle_exit_documented(
    manifests: dict[str, dict[str, Any]],
) -> None:
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Always"
    assert contract(manifests).module.on_stuck == "recycle"
    deployment_text = (K8S / "deployment.yaml").read_text()
    operations = (REPO / "docs" / "operations.md").read_text()
    assert f"status {RECYCLE_EXIT_STATUS}" in deployment_text
    assert f"status **{RECYCLE_EXIT_STATUS}**" in operations


def test_metrics_are_scraped_where_they_are_served(
    manifests: dict[str, dict[str, Any]],
) -> None:
    metrics_port = int(args(manifests)["metrics-port"])
    ports = {p["name"]: p["containerPort"] for p in container(manifests)["ports"]}
    assert ports["metrics"] == metrics_port
    template = manifests["Deployment"]["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == metrics_port
    assert annotations["prometheus.io/path"] == "/metrics"
    pod_labels = template["metadata"]["labels"]
    podmonitor = manifests["PodMonitor"]["spec"]
    assert podmonitor["selector"]["matchLabels"].items() <= pod_labels.items()
    assert [e["port"] for e in podmonitor["podMetricsEndpoints"]] == ["metrics"]
    service = manifests["Service"]["spec"]
    assert service["selector"].items() <= pod_labels.items()
    assert {p["targetPort"] for p in service["ports"]} <= ports.keys()
    selector = manifests["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("576Mi", 576 * MIB), ("1Gi", 1024 * MIB), ("600M", 600 * 10**6), ("1024", 1024)],
)
def test_quantity_bytes(text: str, expected: int) -> None:
    assert quantity_bytes(text) == expected


def test_quantity_bytes_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a memory quantity"):
        quantity_bytes("lots")
