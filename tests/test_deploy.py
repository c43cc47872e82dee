"""deploy/eks, offline: every overlay renders and validates, and the policies a cluster relies on hold.

Core objects are validated by kubernetes-validate (strict, Kubernetes ``KUBERNETES_VERSION``),
custom resources by jsonschema against the CRD schemas committed in deploy/eks/schemas, plus the
API server's strict field check (``manifests.unknown_fields``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from manifests import (
    CRD_SCHEMAS,
    KUBERNETES_VERSION,
    OVERLAYS,
    ROOT,
    Obj,
    arg_value,
    command,
    containers,
    healthcheck,
    is_custom,
    named,
    of_kind,
    option_names,
    pod_spec,
    render,
    schema,
    secret_files,
    unknown_fields,
)

from moviola.environment import SECRET_FILES
from moviola.runtime.commands import serve, worker
from moviola.scheduler.redis import keys


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Obj]]:
    return request.param, render(request.param)


def test_every_core_object_validates_strictly(rendered: tuple[str, list[Obj]]) -> None:
    _, objects = rendered
    core = [o for o in objects if not is_custom(o)]
    assert {o["kind"] for o in core} >= {"Deployment", "Service", "NetworkPolicy", "ConfigMap", "Secret"}
    for obj in core:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)  # raises on any error


def test_every_custom_resource_validates_against_its_committed_crd_schema(
    rendered: tuple[str, list[Obj]],
) -> None:
    _, objects = rendered
    custom = [o for o in objects if is_custom(o)]
    assert {o["kind"] for o in custom} >= {"NodePool", "EC2NodeClass", "ScaledObject", "PodMonitor"}
    for obj in custom:
        kind = (obj["apiVersion"], obj["kind"])
        assert kind in CRD_SCHEMAS, f"no committed schema for {kind}"
        jsonschema.validate(obj, schema(kind))
        assert unknown_fields(obj["spec"], schema(kind)["properties"]["spec"]) == [], obj["metadata"]["name"]


def test_the_crd_validation_catches_what_an_api_server_would_refuse() -> None:
    objects = render("dev")
    pool = named(objects, "NodePool", "gpu-g5")
    kind = (pool["apiVersion"], pool["kind"])
    bad_value: Any = {**pool, "spec": {**pool["spec"], "disruption": {"consolidationPolicy": "Sometimes"}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad_value, schema(kind))
    typo = {**pool["spec"], "limit": {"cpu": "1"}}
    assert unknown_fields(typo, schema(kind)["properties"]["spec"]) == [".limit"]


def test_images_are_pinned_and_containers_bounded_probed_and_unprivileged(
    rendered: tuple[str, list[Obj]],
) -> None:
    _, objects = rendered
    found = containers(objects)
    assert len(found) >= 4
    for workload, container in found:
        where = f"{workload['metadata']['name']}/{container['name']}"
        # By digest (the overlays' placeholders until a release sets them: docs/deploy.md, "Images").
        assert re.fullmatch(r"[a-z0-9./-]+(:[\w.-]+)?@sha256:[0-9a-f]{64}", container["image"]), where
        assert container["imagePullPolicy"] == "IfNotPresent", where  # a digest never changes
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), where
        assert {"livenessProbe", "readinessProbe"} <= set(container), where
        pod = pod_spec(workload)
        assert pod["automountServiceAccountToken"] is False, where  # nothing calls the Kubernetes API
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] >= 10000, where  # clear of the host's UIDs
        assert pod["securityContext"]["runAsGroup"] >= 10000, where
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], where
        assert not container.get("securityContext", {}).get("privileged", False), where


def test_secrets_reach_containers_only_as_files_of_secrets_that_exist(
    rendered: tuple[str, list[Obj]],
) -> None:
    overlay, objects = rendered
    secrets = {s["metadata"]["name"]: s for s in of_kind(objects, "Secret")}
    mounted = 0
    for workload, container in containers(objects):
        where = f"{workload['metadata']['name']}/{container['name']}"
        assert not any("secretRef" in source for source in container.get("envFrom", [])), where
        for item in container.get("env", []):
            assert "secretKeyRef" not in item.get("valueFrom", {}), f"{where}: {item['name']} from a Secret"
        files = secret_files(workload, container)
        for name, key in files.values():
            assert key in secrets[name]["stringData"], f"{where}: {name} has no {key}"
        mounted += len(files)
        run = command(objects, container)
        for variable in SECRET_FILES.keys() & run.env.keys():
            assert run.env[variable] in files, f"{where}: {variable} names no mounted secret"
        if container.get("command") == ["moviola", "serve"]:
            assert arg_value(run.argv, "--auth-file") in files, where
            assert files[run.env["MOVIOLA_WEBHOOK_SECRETS_FILE"]] == ("moviola-secrets", "webhook-secret")
        if overlay == "prod" and container.get("command", [""])[0] == "moviola":
            password = files[run.env["MOVIOLA_REDIS_PASSWORD_FILE"]]
            assert password == ("moviola-redis-auth", "password"), where  # the Secret KEDA reads too
    assert mounted == (2 if overlay == "dev" else 3 + 5)  # auth, webhooks (+ prod: every Redis password)


class _Metrics(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _serving(body: bytes) -> Iterator[int]:
    handler = type("Handler", (_Metrics,), {"body": body})
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as http:
        thread = threading.Thread(target=http.serve_forever, daemon=True)
        thread.start()
        try:
            yield http.server_address[1]
        finally:
            http.shutdown()


@pytest.mark.parametrize(
    ("body", "ready"),
    [
        (b"# TYPE moviola_ready gauge\nmoviola_ready 1.0\n", True),
        (b"# TYPE moviola_ready gauge\nmoviola_ready 0.0\n", False),  # loading, or draining
    ],
    ids=["ready", "not-ready"],
)
def test_a_workers_readiness_probe_follows_moviola_ready(body: bytes, ready: bool) -> None:
    (worker_container,) = [c for w, c in containers(render("dev")) if "ltx" in w["metadata"]["name"]]
    probe = worker_container["readinessProbe"]["exec"]["command"]
    assert probe[-1] == "9090" == str(worker_container["ports"][0]["containerPort"])
    with _serving(body) as port:
        ran = subprocess.run([sys.executable, *probe[1:-1], str(port)], capture_output=True, timeout=30)
    assert (ran.returncode == 0) is ready, ran.stderr
    nothing = subprocess.run([sys.executable, *probe[1:-1], "1"], capture_output=True, timeout=30)
    assert nothing.returncode != 0  # nothing listening: not ready
    assert healthcheck("worker")[1:-1] == probe[1:-1]  # the image's HEALTHCHECK is the same script


def test_pods_behind_a_service_have_readiness_probes(rendered: tuple[str, list[Obj]]) -> None:
    _, objects = rendered
    for service in of_kind(objects, "Service"):
        selector = service["spec"]["selector"]
        backing = [w for w in objects if w["kind"] in ("Deployment", "StatefulSet")]
        backing = [
            w for w in backing if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert backing, service["metadata"]["name"]
        for workload in backing:
            assert all("readinessProbe" in c for c in pod_spec(workload)["containers"])


def test_nothing_private_is_exposed_outside_the_cluster(rendered: tuple[str, list[Obj]]) -> None:
    _, objects = rendered
    for service in of_kind(objects, "Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", service["metadata"]["name"]
        ports = {p["port"] for p in service["spec"]["ports"]}
        assert not ports & {9090, 8002}, "metrics ports are scraped in the cluster, never served"
    policies = of_kind(objects, "NetworkPolicy")
    assert any(
        p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] for p in policies
    )  # default deny
    for name in ("moviola-triton", *(["moviola-redis"] if of_kind(objects, "StatefulSet") else [])):
        (policy,) = [
            p
            for p in policies
            if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == name
        ]
        assert all("from" in rule for rule in policy["spec"]["ingress"]), name


def _workers(objects: list[Obj]) -> list[tuple[Obj, Obj]]:
    return [(w, c) for w, c in containers(objects) if c.get("command") == ["moviola", "worker"]]


def test_gpu_workers_land_on_tainted_gpu_pools_and_outlast_their_jobs(
    rendered: tuple[str, list[Obj]],
) -> None:
    overlay, objects = rendered
    pools = {p["metadata"]["name"]: p for p in of_kind(objects, "NodePool")}
    workers = _workers(objects)
    assert len(workers) == (2 if overlay == "dev" else 5)
    for workload, container in workers:
        where = workload["metadata"]["name"]
        pod = pod_spec(workload)
        gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
        assert gpus >= 1, where
        assert (
            container["resources"]["requests"]["nvidia.com/gpu"]
            == container["resources"]["limits"]["nvidia.com/gpu"]
        )
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
            "tolerations"
        ], where
        pool = pools[pod["nodeSelector"]["karpenter.sh/nodepool"]]
        assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in pool["spec"]["template"][
            "spec"
        ]["taints"]
        drain = float(arg_value(command(objects, container).argv, "--drain-grace"))
        grace = pod["terminationGracePeriodSeconds"]
        assert grace >= drain + 30, where  # the job finishes (or is handed back) before SIGKILL
        node_grace = pool["spec"]["template"]["spec"]["terminationGracePeriod"]
        assert _seconds(node_grace) >= grace, where  # Karpenter's node drain never cuts it short
        assert (
            workload["spec"]["template"]["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
        )
        assert pool["spec"]["disruption"]["consolidationPolicy"] == "WhenEmpty"


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smh])", duration))


def test_each_worker_scales_to_zero_on_its_models_backlog(rendered: tuple[str, list[Obj]]) -> None:
    _, objects = rendered
    scaled = {o["spec"]["scaleTargetRef"]["name"]: o for o in of_kind(objects, "ScaledObject")}
    for workload, container in _workers(objects):
        run = command(objects, container)
        model, prefix = arg_value(run.argv, "--model"), run.env["MOVIOLA_REDIS_PREFIX"]
        spec = scaled[workload["metadata"]["name"]]["spec"]
        assert spec["minReplicaCount"] == 0
        assert spec["cooldownPeriod"] >= float(arg_value(run.argv, "--drain-grace"))
        triggers = {t["name"]: t for t in spec["triggers"]}
        backlog = triggers["backlog"]
        assert backlog["type"] == "redis-streams"
        assert backlog["metadata"]["stream"] == f"{prefix}wake:{model}"  # the key the Lua scripts keep
        assert backlog["metadata"]["consumerGroup"] == keys.BACKLOG_GROUP
        assert backlog["metadata"]["lagCount"] == "1"
        streams = {t["metadata"]["stream"] for n, t in triggers.items() if n.startswith("running")}
        assert streams == {f"{prefix}queue:{model}:interactive", f"{prefix}queue:{model}:batch"}
        assert all(
            t["metadata"].get("pendingEntriesCount") == "1" for n, t in triggers.items() if n != "backlog"
        )


def test_every_option_the_manifests_set_is_one_the_cli_accepts(rendered: tuple[str, list[Obj]]) -> None:
    _, objects = rendered
    clis = {"serve": serve, "worker": worker}
    checked = 0
    for _, container in containers(objects):
        if container.get("command", [""])[0] != "moviola":
            continue
        cli = clis[container["command"][1]]
        options, envvars = option_names(cli)
        run = command(objects, container)
        for arg in run.argv[2:]:
            assert re.match(r"^--[a-z0-9-]+=", arg), f"write options as --name=value: {arg}"
            assert arg.split("=", 1)[0] in options, f"{container['name']}: {arg}"
            checked += 1
        for name in run.env:
            if name.startswith("MOVIOLA_") and name not in SECRET_FILES:  # those are the settings' own
                assert name in envvars, (
                    f"{container['name']}: {name} is no option of moviola {container['command'][1]}"
                )
                checked += 1
    assert checked > 20


def test_dev_redis_keeps_jobs_aof_everysec_noeviction_on_a_volume() -> None:
    objects = render("dev")
    config = named(objects, "ConfigMap", "moviola-redis")["data"]["redis.conf"]
    settings = dict(line.split(None, 1) for line in config.splitlines() if line and not line.startswith("#"))
    assert (settings["appendonly"], settings["appendfsync"], settings["maxmemory-policy"]) == (
        "yes",
        "everysec",
        "noeviction",
    )
    redis = named(objects, "StatefulSet", "moviola-redis")
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    prod = render("prod")
    assert not of_kind(prod, "StatefulSet")  # ElastiCache instead
    for config in ("moviola-gateway", "moviola-worker"):
        url = named(prod, "ConfigMap", config)["data"]["MOVIOLA_REDIS_URL"]
        assert url.startswith("rediss://moviola@"), url  # TLS, the RBAC user; the password is a file
    for scaled in of_kind(prod, "ScaledObject"):
        assert all(
            t["metadata"]["enableTLS"] == "true" and t["authenticationRef"]
            for t in scaled["spec"]["triggers"]
        )


def test_gateways_are_highly_available_in_prod() -> None:
    objects = render("prod")
    assert named(objects, "HorizontalPodAutoscaler", "moviola-gateway")["spec"]["minReplicas"] >= 3
    assert named(objects, "PodDisruptionBudget", "moviola-gateway")["spec"]["minAvailable"] >= 2
    gateway = named(objects, "Deployment", "moviola-gateway")
    assert pod_spec(gateway)["containers"][0]["readinessProbe"]["grpc"]["port"] == 50051
    assert gateway["spec"]["template"]["spec"]["serviceAccountName"] == "moviola-gateway"
    account = named(objects, "ServiceAccount", "moviola-gateway")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")


def test_the_generated_worker_manifests_are_current() -> None:
    check = subprocess.run(
        [sys.executable, "scripts/deploy_workers.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("image", ["gateway", "worker", "triton"])
def test_dockerfiles_pin_their_base_and_run_unprivileged(image: str) -> None:
    text = (ROOT / "deploy" / "docker" / f"{image}.Dockerfile").read_text()
    (base,) = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert ":" in base
    assert not base.endswith(":latest")
    (user,) = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user not in ("root", "0")
    installs = " ".join(
        line for line in text.splitlines() if "pip install" in line and not line.startswith("#")
    )
    installs_models = "[worker]" in installs
    assert installs_models is (image != "gateway")  # the gateway image has no torch
    assert (ROOT / ".dockerignore").read_text().count(".venv")
    assert int(user) >= 10000
    program, *_, port = healthcheck(image)  # a script of the image's Python on one of its ports
    assert program.startswith("python")
    (exposed,) = re.findall(r"^EXPOSE (.+)$", text, re.MULTILINE)
    assert port in exposed.split()


def test_the_eksctl_cluster_matches_what_the_manifests_are_validated_for() -> None:
    cluster = yaml.safe_load((ROOT / "deploy" / "eks" / "cluster.yaml").read_text())
    assert cluster["metadata"]["version"] == KUBERNETES_VERSION
    pinned = (ROOT / "deploy" / "eks" / "schemas" / "README.md").read_text()
    assert f"`v{cluster['karpenter']['version']}`" in pinned  # the Karpenter whose CRDs validate the pools
    discovery = cluster["metadata"]["tags"]["karpenter.sh/discovery"]
    node_class = named(render("dev"), "EC2NodeClass", "gpu")["spec"]
    assert node_class["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": discovery}}]
    assert node_class["metadataOptions"]["httpPutResponseHopLimit"] == 1  # pods cannot reach IMDS
