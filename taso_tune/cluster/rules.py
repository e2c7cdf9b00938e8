"""What the offline cluster check looks for, said once, and the helpers its checks share."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import STORAGE_ENV, require_shared_storage

RAY_PORTS = (6379, 8265, 10001)  # GCS, dashboard / Jobs API, Ray Client
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_PATH = "~/.ray/auth_token"
SETUP_FIELDS = (
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
)

RAY_START = re.compile(r"\bray\s+start\b")
PIP_INSTALL = re.compile(r"\bpip3?\s+install\b(?P<args>[^;&|]*)")
RAY_SPEC = re.compile(
    r"""(?:^|(?<=[\s'"]))ray(?:\[[^\]]*\])?(?P<pin>\s*(?:==|>=|<=|~=|!=|<|>|@)\s*[^\s'";]+)?(?=$|[\s'";])"""
)
DASHBOARD_HOST = re.compile(r"--dashboard-host(?:=|\s+)['\"]?([^\s'\";]+)")
AUTH_MODE = re.compile(r"\bRAY_AUTH_MODE=['\"]?(\w*)")
STORAGE_ASSIGN = re.compile(rf"\b{STORAGE_ENV}=['\"]?([^\s'\";]+)")
STORAGE_FLAG = re.compile(r"--storage(?:=|\s+)['\"]?([^\s'\";]+)")

#: An NVIDIA driver's major version as image names state it (a Deep Learning VM family ``...-nvidia-570``).
NVIDIA_DRIVER = re.compile(r"nvidia-(?:driver-)?(\d{3})(?!\d)")
#: The oldest NVIDIA driver (Linux) each CUDA major version runs on, minor-version compatibility
#: included (NVIDIA's CUDA compatibility table): 13.x >= 580, 12.x >= 525, 11.x >= 450.
MIN_DRIVER_FOR_CUDA = {13: 580, 12: 525, 11: 450}

# A problem before it is placed in its file: (key path, bad value, what is wrong).
Problem = tuple[str, Any, str]

# What is wrong, said once.
HEAD_OFFERS_NOTHING = "the head must offer 0 so that no trial lands on it (it runs the Tune driver and the autoscaler)"
WORKER_GPUS_UNKNOWN = (
    "a worker node type must declare its GPU count (Ray cannot detect it before the node exists)"
)
DASHBOARD_EXPOSED = "exposes the dashboard and Jobs API; keep the default (127.0.0.1) and reach it with `ray dashboard CONFIG`"
AUTH_OFF = "token authentication must stay on"
STORAGE_UNSET = f"must set {STORAGE_ENV}=LOCATION (the sweeps' --storage) so every Ray Job sees it"
OPEN_PORT = "reach the cluster through `ray dashboard` (an SSH tunnel) instead"
OUTSIDE_K8S = "exposes Ray outside Kubernetes; use a ClusterIP Service and kubectl port-forward"
TOKEN_MODE = "must be token (KubeRay then makes a token Secret and sets RAY_AUTH_MODE on every pod)"
DASHBOARD_HOST_K8S = (
    "must not be set beyond localhost; the ClusterIP head Service and kubectl port-forward reach it"
)
NOT_A_CLUSTER_FILE = "is neither a Ray cluster launcher config nor a KubeRay (ray.io/v1) manifest"
SWEEP_ENTRYPOINT = "must run `taso-tune sweep SPACE.yaml --name NAME --storage LOCATION`"


def line(path: str, key: str, value: Any, text: str) -> str:
    if not key:
        return f"{path}: {text}"
    return str(ConfigError(key, value, text, file=path))


def ray_version() -> str:
    import ray

    return ray.__version__


def torch_cuda() -> str | None:
    """The CUDA version of the installed torch build (``13.0`` for ``2.14.1+cu130``), which is the
    build the project pins; ``None`` for a CPU build."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        local = version("torch").partition("+")[2]
    except PackageNotFoundError:
        return None
    match = re.fullmatch(r"cu(\d+)(\d)", local)
    if match:
        return f"{match.group(1)}.{match.group(2)}"
    if local:
        return None  # +cpu, +rocm...
    import torch

    return torch.version.cuda


def check_nvidia_driver(tree: Any, key: str = "") -> list[Problem]:
    """Every image (a key ending in ``image``/``ImageId``) that names an NVIDIA driver older than the
    CUDA build of torch needs: the trials would fail to see the GPU. Images that name no driver
    version cannot be checked offline."""
    cuda = torch_cuda()
    need = MIN_DRIVER_FOR_CUDA.get(int(cuda.split(".")[0])) if cuda else None
    if need is None:
        return []
    problems: list[Problem] = []
    for at, text in strings(tree, key):
        if not at.rsplit(".", 1)[-1].lower().endswith(("image", "imageid")):
            continue
        for found in NVIDIA_DRIVER.findall(text):
            if int(found) < need:
                problems.append(
                    (
                        at,
                        text,
                        f"ships NVIDIA driver {found}; the CUDA {cuda} build of torch the project "
                        f"pins needs driver >= {need}: pick an image with a newer driver",
                    )
                )
    return problems


def key_path(*parts: str | int) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part:
            out += f".{part}" if out else part
    return out


def walk(obj: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every node of a YAML tree with its key path, each before its children."""
    yield key, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from walk(v, key_path(key, str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from walk(v, f"{key}[{i}]")


def strings(obj: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a YAML tree with its key path."""
    return ((at, node) for at, node in walk(obj, key) if isinstance(node, str))


def storage_problem(key: str, storage: str | None, num_nodes: int) -> list[Problem]:
    try:
        require_shared_storage(storage, num_nodes)
    except ConfigError as err:
        return [(key, storage, err.problem)]
    return []


def check_auth_mode(tree: Any, key: str = "") -> list[Problem]:
    """``RAY_AUTH_MODE=x`` in a string, or an env entry ``{name: RAY_AUTH_MODE, value: x}``, x not token."""
    problems: list[Problem] = []
    for at, text in strings(tree, key):
        for mode in AUTH_MODE.findall(text):
            if mode != "token":
                problems.append((at, text, f"sets RAY_AUTH_MODE={mode}; {AUTH_OFF}"))
    for at, entry in walk(tree, key):  # env entries: {name: ..., value: ...}
        if (
            isinstance(entry, dict)
            and entry.get("name") == "RAY_AUTH_MODE"
            and entry.get("value", "token") != "token"
        ):
            problems.append((at, entry, f"sets RAY_AUTH_MODE={entry.get('value')}; {AUTH_OFF}"))
    return problems


# ---------------------------------------------------------------- KubeRay manifests
