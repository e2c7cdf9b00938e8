"""What each trial asks Ray for (CPUs, GPUs), decided by what the cluster can have, not what it has now.

A cluster started from ``cluster/aws-gpu.yaml``, ``cluster/gcp-gpu.yaml`` or
``cluster/kuberay/raycluster.yaml`` has a head with no CPU or GPU and GPU workers scaling from 0: when
a sweep starts it has no GPU at all. Its GPUs are in the autoscaler's node types, which the driver
reads (:func:`node_type_gpus`) from, in turn:

- the nodes alive now;
- the cluster configuration the autoscaler reports to the GCS
  (``ray._private.state.state.get_cluster_config()``, where Ray's autoscaler publishes it);
- the autoscaler's own configuration, read on the head node by a task that asks for no CPU: the
  ``--autoscaling-config`` file of the autoscaler serving this cluster (``ray up`` clusters, and
  ``ray start --head --autoscaling-config``), or on KubeRay the RayCluster resource, turned into node
  types by Ray's KubeRay autoscaler code.

``--gpus-per-trial`` and the space's ``resources.gpus`` win over all of that. What was resolved
(CPUs, GPUs, device and seed packing) is written into the experiment (:data:`RESOURCES_FILE`) when
the sweep starts, and ``resume`` continues with it; a resume on a cluster whose device kind differs
(a CUDA sweep resumed where no GPU can come, or a CPU sweep where GPUs now can) stops with one line
unless ``allow_device_change`` is given, since a CUDA checkpoint does not continue on the CPU and
the seed packing may differ between them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import ray
import torch
import yaml

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import RESOURCES_FILE
from taso_tune.core.storage import first_line, read_experiment_file, write_experiment_file
from taso_tune.spaces import SweepSpec
from taso_tune.spaces.sections import Resources
from taso_tune.training.packing import resolve_packing
from taso_tune.training.run import TrainConfig
from taso_tune.tuning.preflight import connect
from taso_tune.tuning.trials import TrialSource, trial_source

#: GPUs per trial when the space leaves them unset and the cluster has GPUs: a LeNet5 trial uses a sliver.
DEFAULT_GPUS_PER_TRIAL: dict[str, float] = {"lenet5": 0.125, "vgg19": 1.0, "resnet18": 1.0}

#: Seconds the driver waits for the head node to read the autoscaler's configuration.
_HEAD_READ_TIMEOUT_S = 60.0
#: The KubeRay service account's namespace file, present in every pod.
_K8S_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

Device = Literal["cpu", "cuda"]

#: GPUs per node of each autoscaler node type, by the GCS address of the cluster they were read from.
_AUTOSCALER_TYPES: dict[str, dict[str, float]] = {}


@dataclass(frozen=True)
class SweepResources:
    """What every trial of a sweep runs with: Ray resources per trial, the device and seed packing."""

    cpus: float
    gpus: float
    device: Device
    packing: str

    def per_trial(self) -> dict[str, float]:
        """The ``{"cpu", "gpu"}`` of ``tune.with_resources``."""
        return {"cpu": self.cpus, "gpu": self.gpus}


def alive_nodes() -> int:
    """The nodes of the connected cluster that are alive now."""
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def node_type_gpus() -> dict[str, float]:
    """GPUs per node of each kind of node the connected cluster has or its autoscaler may add
    (alive nodes are named by node id; node types by their name)."""
    kinds = {
        node["NodeID"]: float(node.get("Resources", {}).get("GPU", 0.0))
        for node in ray.nodes()
        if node.get("Alive")
    }
    kinds.update(_gcs_node_types())
    kinds.update(_autoscaler_node_types())
    return kinds


def _gcs_node_types() -> dict[str, float]:
    try:
        config = ray._private.state.state.get_cluster_config()
    except (
        Exception
    ):  # a private Ray API (ray pinned to 2.60): without it, the other sources decide
        return {}
    if config is None:
        return {}
    return {
        group.name: float(group.resources.get("GPU", 0))
        for group in config.node_group_configs
        if group.max_count != 0
    }


def _autoscaler_node_types() -> dict[str, float]:
    node = getattr(ray._private.worker, "_global_node", None)
    if node is not None and getattr(node, "head", False):
        return {}  # a local Ray this driver started: no autoscaler can add nodes to it
    gcs_address = ray.get_runtime_context().gcs_address
    if gcs_address not in _AUTOSCALER_TYPES:  # one read per cluster: its node types are fixed
        _AUTOSCALER_TYPES[gcs_address] = _read_on_head(gcs_address)
    return _AUTOSCALER_TYPES[gcs_address]


def _read_on_head(gcs_address: str) -> dict[str, float]:
    heads = [
        node["NodeID"]
        for node in ray.nodes()
        if node.get("Alive") and "node:__internal_head__" in node.get("Resources", {})
    ]
    if not heads:
        return {}
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = _read_autoscaler_config.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(heads[0], soft=False)
    ).remote(gcs_address)
    try:
        types = ray.get(task, timeout=_HEAD_READ_TIMEOUT_S)
    except Exception:  # the head cannot run it (an old image, a timeout): the other sources decide
        ray.cancel(task, force=True)
        return {}
    return node_types_gpus(types)


def node_types_gpus(available_node_types: Mapping[str, Any]) -> dict[str, float]:
    """GPUs per node of each node type an autoscaler configuration may start (``available_node_types``
    of a cluster file, or of the configuration Ray derives from a RayCluster)."""
    gpus = {}
    for name, node_type in available_node_types.items():
        node_type = node_type or {}
        if node_type.get("max_workers", 1) == 0 and node_type.get("min_workers", 0) == 0:
            continue  # the head's type, or one the autoscaler never starts
        gpus[name] = float((node_type.get("resources") or {}).get("GPU", 0))
    return gpus


@ray.remote(num_cpus=0)
def _read_autoscaler_config(gcs_address: str) -> dict[str, Any]:
    """On the head node: the ``available_node_types`` of the autoscaler serving ``gcs_address``."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        args = proc.info.get("cmdline") or []
        if (
            not any(a.endswith("monitor.py") for a in args)
            or f"--gcs-address={gcs_address}" not in args
        ):
            continue
        for arg in args:
            if arg.startswith("--autoscaling-config="):
                path = os.path.expanduser(arg.split("=", 1)[1])
                with open(path) as f:
                    text = f.read()
                config = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
                return dict(config.get("available_node_types") or {})
    cluster_name = os.environ.get("RAY_CLUSTER_NAME")  # KubeRay sets it in every Ray container
    if cluster_name and os.path.isfile(_K8S_NAMESPACE_FILE):
        from ray.autoscaler._private.kuberay.autoscaling_config import AutoscalingConfigProducer

        with open(_K8S_NAMESPACE_FILE) as f:
            namespace = f.read().strip()
        config = AutoscalingConfigProducer(cluster_name, namespace)()
        return dict(config.get("available_node_types") or {})
    return {}


def default_gpus(source: TrialSource, node_gpus: Mapping[str, float]) -> float:
    """GPUs per trial where some node (``node_gpus``: GPUs per node of each kind) has GPUs: the share
    of the sweep's largest model (:data:`DEFAULT_GPUS_PER_TRIAL`), at most what one node holds."""
    models = {flat.get("model", TrainConfig.model) for flat in source.fixed_configs()}
    share = max(DEFAULT_GPUS_PER_TRIAL.get(m, 1.0) for m in models)
    return min(share, max(node_gpus.values(), default=0.0))


def resolve_resources(source: TrialSource) -> SweepResources:
    """The resources of each trial on the connected cluster: the space's ``resources.gpus``
    (``--gpus-per-trial``) when set; otherwise the model's GPU share where a node has or the
    autoscaler may add GPUs, else none (a machine without GPUs trains on its CPUs)."""
    spec = source.spec
    gpus = spec.resources.gpus
    if gpus is None:
        gpus = default_gpus(source, node_type_gpus())
    device: Device = "cuda" if gpus > 0 else "cpu"
    return SweepResources(spec.resources.cpus, float(gpus), device, _packing(source, device))


def trial_resources(source: TrialSource) -> dict[str, float]:
    """The CPUs and GPUs of each trial (``{"cpu", "gpu"}``): see :func:`resolve_resources`."""
    return resolve_resources(source).per_trial()


def _packing(source: TrialSource, device: Device) -> str:
    """How the sweep's trials pack their seeds: one word, or the words of its models joined by
    ``/`` when they differ (``auto`` decides by model and ``compile``)."""
    spec = source.spec
    seeds = 1 if spec.seeds_per_trial == 1 else len(spec.seed_list or range(spec.seeds))
    found = {
        resolve_packing(
            spec.seed_packing,
            torch.device(device),
            seeds,
            flat.get("model", TrainConfig.model),
            bool(flat.get("compile", False)),
        )
        for flat in source.fixed_configs()
    }
    return "/".join(sorted(found))


def save_resources(experiment: str, source: TrialSource) -> SweepResources:
    """Resolve the sweep's resources on the connected cluster and write them into the experiment."""
    resources = resolve_resources(source)
    write_experiment_file(
        experiment, RESOURCES_FILE, json.dumps(dataclasses.asdict(resources), indent=2) + "\n"
    )
    return resources


def saved_resources(experiment: str) -> SweepResources | None:
    """The resources an experiment's sweep started with (``None``: written before they were saved)."""
    text = read_experiment_file(experiment, RESOURCES_FILE)
    if text is None:
        return None
    try:
        data = json.loads(text)
        resources = SweepResources(
            float(data["cpus"]), float(data["gpus"]), data["device"], str(data["packing"])
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            "experiment", experiment, f"its {RESOURCES_FILE} cannot be read: {first_line(err)}"
        ) from None
    if resources.device not in ("cpu", "cuda"):
        raise ConfigError(f"{experiment}/{RESOURCES_FILE}", resources.device, "unknown device")
    return resources


def keep_resources(
    experiment: str, spec: SweepSpec, address: str | None, *, allow_device_change: bool = False
) -> SweepSpec:
    """The space a resume continues with: its per-trial CPUs and GPUs as the sweep started them.

    Connects to the cluster at ``address`` to see which device it can offer now; where that differs
    from the saved device, refuses (one line) unless ``allow_device_change``, and then continues with
    what this cluster resolves to (and writes that into the experiment).
    """
    saved = saved_resources(experiment)
    connect(address)
    source = trial_source(spec)
    now = resolve_resources(source)
    if saved is None:
        return spec
    if now.device != saved.device:
        if not allow_device_change:
            raise ConfigError(
                "experiment",
                experiment,
                f"its trials ran on {saved.device} and this cluster would run them on "
                f"{now.device}; a checkpoint may not continue there: resume on a cluster like the "
                f"first, or pass --allow-device-change",
            )
        save_resources(experiment, source)
        return dataclasses.replace(spec, resources=Resources(now.cpus, now.gpus))
    return dataclasses.replace(spec, resources=Resources(saved.cpus, saved.gpus))
