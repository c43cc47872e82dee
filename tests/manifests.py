"""The rendered deploy/eks overlays, as the tests read them: objects, containers, their environment."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

ROOT = Path(__file__).resolve().parents[1]
EKS = ROOT / "deploy" / "eks"
OVERLAYS = ("dev", "prod")
#: The Kubernetes version core objects are validated against (EKS standard support, 2026).
KUBERNETES_VERSION = "1.33"
#: Custom resources and the committed schema of each (deploy/eks/schemas/README.md says which upstream).
CRD_SCHEMAS = {
    ("karpenter.sh/v1", "NodePool"): "karpenter.sh_nodepool_v1.json",
    ("karpenter.k8s.aws/v1", "EC2NodeClass"): "karpenter.k8s.aws_ec2nodeclass_v1.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobject_v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_triggerauthentication_v1alpha1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring.coreos.com_podmonitor_v1.json",
}
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")

Obj = dict[str, Any]


def render(overlay: str) -> list[Obj]:
    """``kubectl kustomize`` of one overlay, as objects."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed (scripts/system-deps.sh installs it)"
    out = subprocess.run(
        [kubectl, "kustomize", str(EKS / "overlays" / overlay)], capture_output=True, text=True, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def is_custom(obj: Obj) -> bool:
    """A custom resource: its API group has a dot and is not one of Kubernetes's own (``*.k8s.io``)."""
    group = obj["apiVersion"].rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def schema(kind: tuple[str, str]) -> Obj:
    loaded: Obj = json.loads((EKS / "schemas" / CRD_SCHEMAS[kind]).read_text())
    return loaded


def unknown_fields(value: Any, schema: Obj, path: str = "") -> list[str]:
    """Fields the schema does not define (the API server's strict field validation), as paths."""
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return []
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        found = []
        for key, item in value.items():
            if properties is not None and key in properties:
                found += unknown_fields(item, properties[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += unknown_fields(item, extra, f"{path}.{key}")
            elif properties is not None and extra is not True:
                found.append(f"{path}.{key}")
        return found
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [
            p for i, item in enumerate(value) for p in unknown_fields(item, schema["items"], f"{path}[{i}]")
        ]
    return []


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    (found,) = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    return found


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def containers(objects: list[Obj]) -> list[tuple[Obj, Obj]]:
    """(workload, container) for every container of every workload."""
    return [
        (w, c)
        for w in objects
        if w["kind"] in POD_KINDS
        for c in [*pod_spec(w).get("initContainers", []), *pod_spec(w)["containers"]]
    ]


@dataclass
class Command:
    """A container's process as the cluster would start it: argv and environment, references resolved."""

    argv: list[str]
    env: dict[str, str]


def command(objects: list[Obj], container: Obj) -> Command:
    """The container's argv and environment, ConfigMap and Secret references resolved from ``objects``."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        env.update(named(objects, "ConfigMap", ref)["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[item["name"]] = named(objects, "Secret", ref["name"])["stringData"][ref["key"]]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[item["name"]] = named(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
        else:  # the downward API (the pod's name): filled in by the caller
            env[item["name"]] = ""
    return Command([*container.get("command", []), *container.get("args", [])], env)


def secret_files(workload: Obj, container: Obj) -> dict[str, tuple[str, str]]:
    """Each file a Secret volume puts in the container: {its path there: (the Secret, the key)}."""
    volumes = {v["name"]: v["secret"] for v in pod_spec(workload).get("volumes", []) if "secret" in v}
    found = {}
    for mount in container.get("volumeMounts", []):
        secret = volumes.get(mount["name"])
        if secret is None:
            continue
        assert "items" in secret, f"{mount['name']}: list the keys a container gets"
        for item in secret["items"]:
            found[f"{mount['mountPath']}/{item['path']}"] = (secret["secretName"], item["key"])
    return found


def healthcheck(image: str) -> list[str]:
    """The HEALTHCHECK command (exec form) of deploy/docker/<image>.Dockerfile."""
    text = (ROOT / "deploy" / "docker" / f"{image}.Dockerfile").read_text().replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.startswith("HEALTHCHECK ")]
    argv: list[str] = json.loads(line.split(" CMD ", 1)[1])
    return argv


def option_names(cli: click.Command) -> tuple[set[str], set[str]]:
    """A command's long options and the environment variables that set them (auto_envvar_prefix MOVIOLA)."""
    options = {o for p in cli.params for o in p.opts if o.startswith("--")}
    envvars = {f"MOVIOLA_{p.name.upper()}" for p in cli.params if isinstance(p, click.Option) and p.name}
    return options, envvars


def arg_value(argv: list[str], option: str) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
        if arg == option:
            return argv[i + 1]
    raise KeyError(option)


def replace_arg(argv: list[str], option: str, value: str) -> list[str]:
    out = [a for a in argv if not a.startswith(option + "=")]
    return [*out, f"{option}={value}"]
