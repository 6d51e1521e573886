"""The Kubernetes manifests: valid against the API schema, and the policies we promise."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parent.parent / "k8s"
SERVICES = {"identity", "profile", "attribution", "gateway"}


def documents() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"]
            for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def deployments() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == "Deployment"}


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_valid_kubernetes(doc: dict) -> None:
    kubernetes_validate.validate(doc, "1.33.0", strict=True)


def test_every_service_has_a_deployment() -> None:
    assert set(deployments()) == SERVICES


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_pods_follow_the_restricted_standard_and_have_probes(name: str) -> None:
    spec = deployments()[name]["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in spec["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert container["readinessProbe"] and container["livenessProbe"]
        assert container["args"] == ["serve", name]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["OTEL_SERVICE_NAME"] == f"cdp-{name}"
    grace = float(next(d for d in documents() if d["kind"] == "ConfigMap")["data"][
        "CDP_GRACE_SECONDS"])
    assert grace < spec["terminationGracePeriodSeconds"]


@pytest.mark.parametrize("name", ["identity", "profile"])
def test_embedded_duckdb_services_never_run_two_writers(name: str) -> None:
    deployment = deployments()[name]["spec"]
    assert deployment["replicas"] == 1
    assert deployment["strategy"]["type"] == "Recreate"


def test_grpc_probes_use_the_served_port() -> None:
    for name in SERVICES - {"gateway"}:
        container = deployments()[name]["spec"]["template"]["spec"]["containers"][0]
        port = container["ports"][0]["containerPort"]
        assert container["readinessProbe"]["grpc"]["port"] == port
        assert any(e["name"] == "CDP_ADDRESS" and e["value"].endswith(f":{port}")
                   for e in container["env"])
