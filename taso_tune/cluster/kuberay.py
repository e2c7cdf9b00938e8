"""Checks of KubeRay manifests (``apiVersion: ray.io/v1``, kind ``RayCluster`` or ``RayJob``)."""

from __future__ import annotations

import re
from typing import Any

from taso_tune.cluster.rules import (
    DASHBOARD_HOST_K8S,
    LOCAL_HOSTS,
    OUTSIDE_K8S,
    STORAGE_FLAG,
    STORAGE_UNSET,
    SWEEP_ENTRYPOINT,
    TOKEN_MODE,
    Problem,
    check_auth_mode,
    check_nvidia_driver,
    key_path,
    ray_version,
    storage_problem,
)
from taso_tune.core.storage import STORAGE_ENV
from taso_tune.spaces.values import is_int


def check_kuberay(docs: list[Any]) -> list[Problem]:
    problems: list[Problem] = []
    for n, doc in enumerate(docs):
        if not isinstance(doc, dict):
            continue
        at = f"[{n}]" if len(docs) > 1 else ""
        kind = doc.get("kind")
        api = str(doc.get("apiVersion", ""))
        spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
        if kind == "Service" and spec.get("type") in ("LoadBalancer", "NodePort"):
            problems.append((key_path(at, "spec", "type"), spec["type"], OUTSIDE_K8S))
        elif kind == "Ingress":
            problems.append((key_path(at, "kind"), kind, OUTSIDE_K8S))
        elif not api.startswith("ray.io/"):
            continue
        elif api != "ray.io/v1" or kind not in ("RayCluster", "RayJob"):
            problems.append(
                (
                    key_path(at, "kind"),
                    f"{api} {kind}",
                    "taso-tune checks ray.io/v1 RayCluster and RayJob",
                )
            )
        elif kind == "RayCluster":
            problems += _check_ray_cluster_spec(
                doc.get("spec"), key_path(at, "spec"), entrypoint=None
            )
        elif "clusterSelector" in spec:  # runs on a RayCluster that its own manifest describes
            problems += _check_entrypoint(
                spec.get("entrypoint"), key_path(at, "spec", "entrypoint"), num_nodes=2
            )
        else:
            entrypoint = (spec.get("entrypoint"), key_path(at, "spec", "entrypoint"))
            cluster_at = key_path(at, "spec", "rayClusterSpec")
            problems += _check_ray_cluster_spec(spec.get("rayClusterSpec"), cluster_at, entrypoint)
        problems += check_auth_mode(doc, at) + check_nvidia_driver(doc, at)
    return problems


def _check_ray_cluster_spec(
    spec: Any, at: str, entrypoint: tuple[Any, str] | None
) -> list[Problem]:
    if not isinstance(spec, dict):
        return [(at, spec, "must be a RayCluster spec with headGroupSpec and workerGroupSpecs")]
    version = ray_version()
    problems: list[Problem] = []
    if str(spec.get("rayVersion")) != version:
        problems.append(
            (
                key_path(at, "rayVersion"),
                spec.get("rayVersion"),
                f"must be {version}, the Ray taso-tune runs",
            )
        )
    mode = (spec.get("authOptions") or {}).get("mode")
    if mode != "token":
        problems.append((key_path(at, "authOptions", "mode"), mode, TOKEN_MODE))
    head = spec.get("headGroupSpec")
    if not isinstance(head, dict):
        problems.append((key_path(at, "headGroupSpec"), head, "is required"))
        head = {}
    else:
        problems += _check_group(head, key_path(at, "headGroupSpec"), version)
        if head.get("serviceType") in ("LoadBalancer", "NodePort"):
            problems.append(
                (key_path(at, "headGroupSpec", "serviceType"), head["serviceType"], OUTSIDE_K8S)
            )
        if head.get("enableIngress"):
            problems.append((key_path(at, "headGroupSpec", "enableIngress"), True, OUTSIDE_K8S))
    groups = spec.get("workerGroupSpecs")
    if not isinstance(groups, list) or not groups:
        return problems + [
            (key_path(at, "workerGroupSpecs"), groups, "must list at least one worker group")
        ]
    max_workers = 0
    for i, group in enumerate(groups):
        where = key_path(at, "workerGroupSpecs", i)
        if not isinstance(group, dict):
            problems.append((where, group, "must be a worker group"))
            continue
        problems += _check_group(group, where, version)
        counts = {k: group.get(k) for k in ("replicas", "minReplicas", "maxReplicas")}
        for k, v in counts.items():
            if not is_int(v) or v < 0:
                problems.append((key_path(where, k), v, "must be an integer >= 0"))
        if all(is_int(v) for v in counts.values()):
            max_workers += counts["maxReplicas"]
            if not counts["minReplicas"] <= counts["replicas"] <= counts["maxReplicas"]:
                problems.append((where, counts, "needs minReplicas <= replicas <= maxReplicas"))
    num_nodes = 1 + max_workers
    if entrypoint is not None:
        return problems + _check_entrypoint(entrypoint[0], entrypoint[1], num_nodes)
    storage = _container_env(head).get(STORAGE_ENV)
    if storage is None:
        return problems + [
            (key_path(at, "headGroupSpec"), None, f"the head container {STORAGE_UNSET}")
        ]
    return problems + storage_problem(
        key_path(at, "headGroupSpec", "env", STORAGE_ENV), storage, num_nodes
    )


def _containers(group: dict[str, Any]) -> list[Any]:
    return (((group.get("template") or {}).get("spec") or {}).get("containers")) or []


def _container_env(group: dict[str, Any]) -> dict[str, Any]:
    containers = _containers(group)
    first = containers[0] if containers and isinstance(containers[0], dict) else {}
    return {e.get("name"): e.get("value") for e in first.get("env") or [] if isinstance(e, dict)}


def _check_group(group: dict[str, Any], at: str, version: str) -> list[Problem]:
    problems: list[Problem] = []
    params = group.get("rayStartParams")
    if not isinstance(params, dict):
        problems.append((key_path(at, "rayStartParams"), params, "is required (may be {})"))
        params = {}
    for name, value in params.items():
        if not isinstance(value, str):
            problems.append(
                (
                    key_path(at, "rayStartParams", name),
                    value,
                    "must be a string (KubeRay's CRD says so)",
                )
            )
    host = params.get("dashboard-host")
    if host is not None and str(host) not in LOCAL_HOSTS:
        problems.append(
            (key_path(at, "rayStartParams", "dashboard-host"), host, DASHBOARD_HOST_K8S)
        )
    containers = _containers(group)
    if not containers:
        return problems + [
            (key_path(at, "template", "spec", "containers"), None, "must list the Ray container")
        ]
    for j, container in enumerate(containers):
        where = key_path(at, "template", "spec", "containers", j)
        image = container.get("image") if isinstance(container, dict) else None
        if not image:
            problems.append((key_path(where, "image"), image, "is required"))
            continue
        tag = image.rsplit("/", 1)[-1].partition(":")[2].partition("@")[0]
        if tag != version and not tag.startswith(version + "-"):
            problems.append(
                (
                    key_path(where, "image"),
                    image,
                    f"the tag must pin Ray {version} (e.g. {version}-py311-gpu)",
                )
            )
        resources = container.get("resources") or {}
        for kind in ("limits", "requests"):
            gpus = (resources.get(kind) or {}).get("nvidia.com/gpu")
            if gpus is None:
                continue
            if not (is_int(gpus) or (isinstance(gpus, str) and gpus.isdigit())):
                problems.append(
                    (
                        key_path(where, "resources", kind, "nvidia.com/gpu"),
                        gpus,
                        "must be a whole number",
                    )
                )
    return problems


def _check_entrypoint(entrypoint: Any, at: str, num_nodes: int) -> list[Problem]:
    if not isinstance(entrypoint, str) or not re.search(r"\btaso-tune\s+sweep\b", entrypoint):
        return [(at, entrypoint, SWEEP_ENTRYPOINT)]
    storage = STORAGE_FLAG.findall(entrypoint)
    if not storage:
        return [(at, entrypoint, "must pass --storage LOCATION (shared storage every pod sees)")]
    return storage_problem(at, storage[0], num_nodes)
