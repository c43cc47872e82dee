"""Write deploy/eks/workers/<model>/: a worker Deployment and its KEDA ScaledObject per served model.

    python scripts/deploy_workers.py [--check]

One table (``WORKERS``) says where each model runs and how long its longest job takes; everything
else is the same for every worker, so the manifests are generated rather than copied five times
(kustomize has no loops, and a nameSuffix would not reach the ScaledObject's target). ``--check``
fails when the committed files differ (tests/test_deploy.py runs it).

Times: ``longest_job`` is a generous bound on one 720p job (480p for the 1.3B model) on the pool's
GPU, from Wan's published timings; ``--drain-grace`` is that, so that a worker told to stop finishes
its job, and the pod's grace period adds ``HAND_BACK`` for storing the video or handing the job back.

Readiness: a worker serves no health endpoint, only /metrics (answered from before the model loads),
whose ``moviola_ready`` gauge follows its lifecycle (1 once READY, 0 while loading or draining). The
readiness probe reads that gauge (``READY_PROBE``), so that a rollout stops an old worker only once its
successor has loaded the model.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "deploy" / "eks" / "workers"
#: Seconds after the drain for the last upload, or the hand-back, and the process's exit.
HAND_BACK = 60
REDIS = "moviola-redis.moviola.svc.cluster.local:6379"
PREFIX = "moviola:"
#: The worker's metrics port (the pod's ``metrics`` port, Prometheus's and the probes').
METRICS_PORT = 9090
#: Exits 0 only while ``moviola_ready`` is 1 on the metrics port given as its argument; the worker image's
#: HEALTHCHECK runs the same script (deploy/docker/worker.Dockerfile; tests/test_deploy_run.py runs both).
READY_PROBE = (
    "import sys, urllib.request as u; "
    "b = u.urlopen(f'http://127.0.0.1:{sys.argv[1]}/metrics?name[]=moviola_ready', timeout=4).read(); "
    "sys.exit(b'moviola_ready 1.0' not in b.splitlines())"
)


@dataclass(frozen=True)
class Worker:
    model: str
    pool: str
    gpus: int
    cpu: str
    memory: str
    longest_job: int
    max_replicas: int
    #: More worker options (multi-GPU: ``--gpus`` and ``--parallel``; the memory plan follows the card).
    options: tuple[str, ...] = ()


#: The A14B models span two of p4d's A100s (40 GB each: the expert_swap plan on each rank), one guidance
#: pass per GPU; each rank holds its own pinned host copy of the model, hence the memory.
A14B = ("--gpus=2", "--parallel=cfg")

WORKERS = [
    Worker("wan2.2-t2v-a14b", "gpu-p4d", 2, "20", "280Gi", 2400, 4, A14B),
    Worker("wan2.2-i2v-a14b", "gpu-p4d", 2, "20", "280Gi", 2400, 4, A14B),
    Worker("wan2.2-ti2v-5b", "gpu-g5", 1, "6", "26Gi", 2400, 4),
    Worker("wan2.1-t2v-1.3b", "gpu-p3", 1, "6", "48Gi", 1200, 4),
    Worker("ltx-video", "gpu-g5", 1, "6", "26Gi", 600, 4),
]


def name(worker: Worker) -> str:
    return "worker-" + worker.model.replace(".", "")


def deployment(worker: Worker) -> dict[str, object]:
    labels = {
        "app.kubernetes.io/name": "moviola-worker",
        "app.kubernetes.io/component": "worker",
        "moviola.dev/model": worker.model,
    }
    resources = {"cpu": worker.cpu, "memory": worker.memory, "nvidia.com/gpu": str(worker.gpus)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name(worker), "labels": labels},
        "spec": {
            "replicas": 0,  # KEDA owns the count (the ScaledObject beside this)
            "selector": {
                "matchLabels": {"app.kubernetes.io/name": "moviola-worker", "moviola.dev/model": worker.model}
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": {**labels, "moviola.dev/metrics": "true"},
                    # Karpenter never consolidates or drifts a node away under a running job.
                    "annotations": {"karpenter.sh/do-not-disrupt": "true"},
                },
                "spec": {
                    "serviceAccountName": "moviola-worker",
                    # No Kubernetes API calls; S3 credentials come from IRSA's own projected token.
                    "automountServiceAccountToken": False,
                    # SIGTERM: stop taking jobs, finish the one running (--drain-grace), else hand it back.
                    "terminationGracePeriodSeconds": worker.longest_job + HAND_BACK,
                    "nodeSelector": {"karpenter.sh/nodepool": worker.pool},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "worker",
                            "image": "moviola-worker",  # pinned by digest in the overlays' images:
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["moviola", "worker"],
                            "args": [
                                f"--model={worker.model}",
                                f"--metrics-port={METRICS_PORT}",
                                "--metrics-host=0.0.0.0",  # Prometheus scrapes the pod IP
                                f"--drain-grace={worker.longest_job}",
                                "--compile-cache-dir=/compile-cache",
                                *worker.options,
                            ],
                            "envFrom": [{"configMapRef": {"name": "moviola-worker"}}],
                            # MOVIOLA_REDIS_URL is in the ConfigMap, without a password (prod adds a file).
                            "env": [
                                {
                                    "name": "MOVIOLA_WORKER_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                },
                                # Weights: the hub cache on the weights volume, read offline (docs/deploy.md).
                                {"name": "HF_HOME", "value": "/models/hub"},
                                {"name": "HF_HUB_OFFLINE", "value": "1"},
                                # Compiled at load, kernels kept on the compile-cache volume (a flag: no =value).
                                {"name": "MOVIOLA_COMPILE", "value": "true"},
                            ],
                            "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
                            # Metrics are served before the model loads: alive while loading, for minutes.
                            "startupProbe": {
                                "httpGet": {"path": "/metrics", "port": "metrics"},
                                "periodSeconds": 10,
                                "failureThreshold": 90,
                            },
                            # Ready once the model is loaded (and compiled), until the drain begins.
                            "readinessProbe": {
                                "exec": {"command": ["python", "-c", READY_PROBE, str(METRICS_PORT)]},
                                "periodSeconds": 10,
                                "timeoutSeconds": 5,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/metrics", "port": "metrics"},
                                "periodSeconds": 20,
                                "failureThreshold": 3,
                            },
                            "resources": {"requests": resources, "limits": resources},
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "weights", "mountPath": "/models", "readOnly": True},
                                {"name": "compile-cache", "mountPath": "/compile-cache"},
                                {"name": "tmp", "mountPath": "/tmp"},
                                {"name": "shm", "mountPath": "/dev/shm"},
                            ],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "weights",
                            "persistentVolumeClaim": {"claimName": "moviola-weights", "readOnly": True},
                        },
                        {
                            "name": "compile-cache",
                            "persistentVolumeClaim": {"claimName": "moviola-compile-cache"},
                        },
                        {"name": "tmp", "emptyDir": {"sizeLimit": "20Gi"}},
                        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
                    ],
                },
            },
        },
    }


def scaled_object(worker: Worker) -> dict[str, object]:
    """Scale on the backlog (the wake stream's ``backlog`` group lag) and on the jobs running (pending entries)."""
    common = {"address": REDIS}
    running = [
        {
            "type": "redis-streams",
            "name": f"running-{priority}",
            "metadata": {
                **common,
                "stream": f"{PREFIX}queue:{worker.model}:{priority}",
                "consumerGroup": "workers",
                "pendingEntriesCount": "1",
            },
        }
        for priority in ("interactive", "batch")
    ]
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name(worker)},
        "spec": {
            "scaleTargetRef": {"name": name(worker)},
            "minReplicaCount": 0,
            "maxReplicaCount": worker.max_replicas,
            "pollingInterval": 10,
            # Longer than a job: the last worker is not stopped while it could still be running one.
            "cooldownPeriod": worker.longest_job + HAND_BACK,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleDown": {
                            "stabilizationWindowSeconds": worker.longest_job,
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
                        }
                    }
                }
            },
            "triggers": [
                {
                    "type": "redis-streams",
                    "name": "backlog",
                    "metadata": {
                        **common,
                        "stream": f"{PREFIX}wake:{worker.model}",
                        "consumerGroup": "backlog",
                        "lagCount": "1",
                        "activationLagCount": "0",
                    },
                },
                *running,
            ],
        },
    }


def files() -> dict[Path, str]:
    out: dict[Path, str] = {}
    header = "# Generated by scripts/deploy_workers.py: edit its WORKERS table, not this file.\n"
    for worker in WORKERS:
        folder = FOLDER / worker.model
        out[folder / "kustomization.yaml"] = header + yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "moviola",
                "resources": ["worker.yaml", "scaledobject.yaml"],
            },
            sort_keys=False,
        )
        out[folder / "worker.yaml"] = header + yaml.safe_dump(deployment(worker), sort_keys=False)
        out[folder / "scaledobject.yaml"] = header + yaml.safe_dump(scaled_object(worker), sort_keys=False)
    return out


def main() -> int:
    wanted = files()
    if "--check" in sys.argv:
        stale = [
            str(p.relative_to(ROOT)) for p, text in wanted.items() if not p.exists() or p.read_text() != text
        ]
        if stale:
            print("stale (run python scripts/deploy_workers.py):", ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
