"""deploy/k8s, as kubectl's kustomize renders it: valid against the Kubernetes API and the CRDs it
uses, every process deployed alike, migrations before a pod starts, only the gateway reachable
from outside, and the consumers scaled on their own queues."""

from __future__ import annotations

import asyncio
import importlib
import json
import re
from typing import Any

import kubernetes_validate
import pytest
from cloudcoil.models.keda.v1alpha1 import ScaledObject
from cloudcoil.models.prometheus_operator.v1 import PrometheusRule, ServiceMonitor
from pydantic import BaseModel

from deploy.tests.manifests import (
    OVERLAYS,
    Manifest,
    container,
    container_environment,
    containers,
    objects,
    one,
    render,
)
from deploy.tests.system import REPO, processes, services
from pipedesk_common.db import connect_raw
from pipedesk_common.mirror.assembly import GoogleProduct
from pipedesk_common.settings import port_for

# The oldest Kubernetes release these manifests support, and the newest whose schemas we have.
KUBERNETES_VERSIONS = ("1.32.0", kubernetes_validate.latest_version())
CUSTOM_RESOURCES: dict[tuple[str, str], type[BaseModel]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): ScaledObject,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ServiceMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PrometheusRule,
}


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def custom_resource_problems(manifest: Manifest) -> str | None:
    """Validate a custom resource with the models generated from its CRD. Those models ignore
    unknown fields and coerce types, so the object must also survive the round trip unchanged:
    a misspelt field or a string where a number belongs shows up as a difference."""
    model = CUSTOM_RESOURCES[(manifest["apiVersion"], manifest["kind"])]
    parsed = model.model_validate(manifest)
    again = _without_nulls(parsed.model_dump(mode="json", by_alias=True, exclude_unset=True))
    if again != manifest:
        return f"fields unknown to the CRD or of the wrong type: {json.dumps(manifest)}"
    return None


def test_every_overlay_renders_valid_objects() -> None:
    distinct = {
        json.dumps(manifest, sort_keys=True): manifest
        for overlay in OVERLAYS
        for manifest in render(overlay)
    }
    for manifest in distinct.values():
        name = f"{manifest['kind']} {manifest['metadata']['name']}"
        if (manifest["apiVersion"], manifest["kind"]) in CUSTOM_RESOURCES:
            assert custom_resource_problems(manifest) is None, name
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{name} against Kubernetes {version}: {error.message} at {error.path}")


def test_a_misspelt_field_of_a_custom_resource_is_refused() -> None:
    scaled = one("overlays/keda", "ScaledObject", "timeline")
    misspelt = {**scaled, "spec": {**scaled["spec"], "minReplicas": 2}}
    assert custom_resource_problems(misspelt) is not None
    wrong_type = {**scaled, "spec": {**scaled["spec"], "maxReplicaCount": "6"}}
    assert custom_resource_problems(wrong_type) is not None


def test_every_process_is_deployed_with_its_service_budget_and_autoscaler() -> None:
    for overlay in OVERLAYS:
        for process in processes():
            name = process.name
            deployment = one(overlay, "Deployment", name)
            assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns replicas"
            app = container(deployment)
            assert app["command"] == ["python", "-m", process.module]
            port = port_for(name)
            assert app["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
            assert {"name": f"{process.prefix}PORT", "value": str(port)} in app["env"]
            assert deployment["spec"]["template"]["spec"]["enableServiceLinks"] is False
            selector = deployment["spec"]["selector"]["matchLabels"]
            assert selector == {"app.kubernetes.io/name": name}
            service = one(overlay, "Service", name)
            assert service["spec"]["selector"] == selector
            assert service["spec"]["ports"][0]["port"] == port
            budget = one(overlay, "PodDisruptionBudget", name)
            assert budget["spec"]["selector"]["matchLabels"] == selector
            assert budget["spec"]["maxUnavailable"] == 1
            autoscalers = [
                *(
                    hpa["spec"]["scaleTargetRef"]["name"]
                    for hpa in objects(overlay, "HorizontalPodAutoscaler").values()
                ),
                *(
                    scaled["spec"]["scaleTargetRef"]["name"]
                    for scaled in objects(overlay, "ScaledObject").values()
                ),
            ]
            assert autoscalers.count(name) == 1, f"{overlay}: {name} needs one autoscaler"


def test_services_migrate_before_they_start_and_the_gateway_does_not() -> None:
    for process in processes():
        deployment = one("base", "Deployment", process.name)
        init = deployment["spec"]["template"]["spec"].get("initContainers", [])
        if not process.migrates:
            assert init == [], f"{process.name} has nothing to migrate"
            continue
        migrate = container(deployment, "migrate", init=True)
        assert migrate["command"] == [
            "python",
            "-m",
            "pipedesk_common.migrations",
            process.name,
        ]
        assert migrate["envFrom"] == container(deployment)["envFrom"]
        assert migrate["image"] == container(deployment)["image"]


def test_pods_meet_the_restricted_pod_security_standard() -> None:
    namespace = one("base", "Namespace", "pipedesk")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for deployment in objects("base", "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for item in containers(deployment):
            context = item["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["readOnlyRootFilesystem"] is True
            assert "limits" in item["resources"]


# --- network policies ----------------------------------------------------------------------------


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are evaluated here"
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def admitted(overlay: str, target: dict[str, str], source: tuple[str, dict[str, str]]) -> bool:
    """Whether the policies of ``overlay`` let a pod (namespace, labels) connect to the port
    "http" of a PipeDesk pod with the labels ``target``."""
    namespace, labels = source
    namespace_labels = {"kubernetes.io/metadata.name": namespace}
    selecting = [
        policy["spec"]
        for policy in objects(overlay, "NetworkPolicy").values()
        if "Ingress" in policy["spec"]["policyTypes"]
        and _matches(policy["spec"]["podSelector"], target)
    ]
    assert selecting, f"{target} is selected by no policy: every source would be admitted"
    for policy in selecting:
        for rule in policy.get("ingress", []):
            ports = [port["port"] for port in rule.get("ports", [{"port": "http"}])]
            for peer in rule.get("from", []):
                pods_match = _matches(peer.get("podSelector", {}), labels)
                if "namespaceSelector" in peer:
                    where = _matches(peer["namespaceSelector"], namespace_labels)
                else:
                    where = namespace == "pipedesk"
                if pods_match and where and "http" in ports:
                    return True
    return False


def pod_labels(overlay: str, name: str) -> dict[str, str]:
    labels: dict[str, str] = one(overlay, "Deployment", name)["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_is_reachable_from_outside_and_services_only_from_pipedesk(
    overlay: str,
) -> None:
    ingress_controller = ("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
    prometheus = ("monitoring", {"app.kubernetes.io/name": "prometheus"})
    strangers = [("default", {"app": "anything"}), ("pipedesk", {"app": "debug-shell"})]
    gateway = ("pipedesk", pod_labels(overlay, "gateway"))
    ours = [("pipedesk", pod_labels(overlay, service.name)) for service in services()]
    monitored = overlay != "base"

    assert admitted(overlay, gateway[1], ingress_controller)
    for source in [*strangers, *ours]:
        assert not admitted(overlay, gateway[1], source), source
    for service in services():
        target = pod_labels(overlay, service.name)
        for source in [gateway, *ours]:
            assert admitted(overlay, target, source), (service.name, source)
        for source in [ingress_controller, *strangers]:
            assert not admitted(overlay, target, source), (service.name, source)
    for process in processes():
        assert admitted(overlay, pod_labels(overlay, process.name), prometheus) is monitored


def test_the_ingress_routes_api_and_webhooks_to_the_gateway_and_keeps_streams_open() -> None:
    ingress = one("base", "Ingress", "pipedesk")
    paths = {
        path["path"]: path["backend"]["service"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert paths == {
        "/api": {"name": "gateway", "port": {"name": "http"}},
        "/webhooks": {"name": "gateway", "port": {"name": "http"}},
    }
    annotations = ingress["metadata"]["annotations"]
    # Longer than the gateway's 15-second keep-alive on a quiet stream, by far.
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"


# --- queue-driven autoscaling -------------------------------------------------------------------


async def schemas_with_an_inbox(database_url: str) -> set[str]:
    connection = await connect_raw(database_url)
    try:
        rows = await connection.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'inbox'"
        )
    finally:
        await connection.close()
    return {row["table_schema"] for row in rows}


def declared_queues(name: str) -> set[str]:
    """The queues a service declares: the strings of its source that name one of its queues, and,
    for a service the Google service kit assembles, its product's inbound queue."""
    sources = "".join(p.read_text() for p in (REPO / "services" / name / "src").rglob("*.py"))
    found = set(re.findall(rf'"({name}\.[a-z-]+)"', sources))
    app = importlib.import_module(f"{name}_service.app")
    products = [part for part in vars(app).values() if isinstance(part, GoogleProduct)]
    return found | {product.inbound_queue for product in products}


def test_every_consumer_is_scaled_by_keda_on_its_own_queue(database_url: str) -> None:
    """A service with an inbox (its migrations made one) consumes events: it scales on the depth
    of a queue it declares (a string in its source), with the stack's broker prefix."""
    consumers = asyncio.run(schemas_with_an_inbox(database_url)) & {s.name for s in services()}
    assert consumers, "no consuming service found"
    scaled = objects("overlays/keda", "ScaledObject")
    assert set(scaled) == consumers
    prefix = one("overlays/keda", "ConfigMap", "pipedesk-config")["data"].get("BROKER_PREFIX", "")
    for name, scaled_object in scaled.items():
        assert scaled_object["spec"]["scaleTargetRef"] == {"name": name}
        (trigger,) = [t for t in scaled_object["spec"]["triggers"] if t["type"] == "rabbitmq"]
        queue = trigger["metadata"]["queueName"].removeprefix(prefix)
        assert trigger["metadata"]["queueName"] == prefix + queue
        assert re.fullmatch(rf"{name}\.[a-z-]+", queue), queue
        assert queue in declared_queues(name), f"{name} declares no queue {queue}"
        host = trigger["metadata"]["hostFromEnv"]
        app = container(one("overlays/keda", "Deployment", name))
        assert host in container_environment("overlays/keda", app)
        assert name not in objects("overlays/keda", "HorizontalPodAutoscaler")
