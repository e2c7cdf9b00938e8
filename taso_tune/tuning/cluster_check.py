"""Offline checks for the files that start Ray clusters: ``ray up`` configs and KubeRay manifests.

Nothing here contacts a cloud or a cluster. :func:`check_cluster_files` returns one line per
problem, each naming the file, the key path and the bad value.

**Ray cluster launcher configs** (``cluster/aws-gpu.yaml``, ``gcp-gpu.yaml``, ``onprem.yaml``) first
go through the steps ``ray up`` itself runs before it talks to a provider: Ray's
``prepare_config`` (merges the provider's ``defaults.yaml``, so a key the file leaves out is
checked with the value Ray would use) and ``validate_config`` (``ray-schema.json`` and the
node-type rules). Then taso-tune's rules:

* Ray pinned: the setup commands ``pip install "ray[...]==X"`` with X the Ray version installed
  here; an unpinned install, another version or a wheel URL is a problem.
* Resources: every declared node resource is an integer; every worker node type declares
  ``GPU`` >= 1; the head declares ``CPU: 0`` and ``GPU: 0`` (it runs the Tune driver and the
  autoscaler, never a trial); ``head_node_type`` names one of ``available_node_types``.
* Storage: the head's ``ray start`` command sets ``TASO_TUNE_STORAGE=LOCATION`` (Ray Jobs inherit
  it), and LOCATION is shared storage for the cluster's size (:func:`require_shared_storage`).
* Security: no ``--dashboard-host`` other than localhost; no security-group rule opens 6379, 8265
  or 10001 to 0.0.0.0/0 or ::/0; every ``ray start`` runs with ``RAY_AUTH_MODE=token``, nothing
  sets another mode, and ``file_mounts`` copies the token to ``~/.ray/auth_token`` on every node.

**KubeRay manifests** (``apiVersion: ray.io/v1``, kind ``RayCluster`` or ``RayJob``): a head group
and worker groups (``replicas``/``minReplicas``/``maxReplicas``) with containers that name an
image; ``rayVersion`` and every image tag pinned to the installed Ray version (the tag starts with
it, e.g. ``2.60.0-py311-gpu``); ``nvidia.com/gpu`` limits are integers; ``authOptions.mode: token``
and no container sets another ``RAY_AUTH_MODE``; no Service of type LoadBalancer/NodePort, no
ingress and no ``dashboard-host: 0.0.0.0``; storage as above (a RayCluster's head container sets
``TASO_TUNE_STORAGE``; a RayJob's entrypoint runs ``taso-tune sweep ... --storage LOCATION``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

import yaml

from taso_tune.errors import ConfigError
from taso_tune.space_values import is_int

SHARED_URI_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "az", "hdfs")
SHARED_PATH_PREFIXES = ("/mnt/", "/nfs/")
SHARED_STORAGE_ENV = "TASO_TUNE_SHARED_STORAGE"
STORAGE_ENV = "TASO_TUNE_STORAGE"
RAY_PORTS = (6379, 8265, 10001)  # GCS, dashboard / Jobs API, Ray Client
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_PATH = "~/.ray/auth_token"
SETUP_FIELDS = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands")

_RAY_START = re.compile(r"\bray\s+start\b")
_PIP_INSTALL = re.compile(r"\bpip3?\s+install\b(?P<args>[^;&|]*)")
_RAY_SPEC = re.compile(
    r"""(?:^|(?<=[\s'"]))ray(?:\[[^\]]*\])?(?P<pin>\s*(?:==|>=|<=|~=|!=|<|>|@)\s*[^\s'";]+)?(?=$|[\s'";])"""
)
_DASHBOARD_HOST = re.compile(r"--dashboard-host(?:=|\s+)['\"]?([^\s'\";]+)")
_AUTH_MODE = re.compile(r"\bRAY_AUTH_MODE=['\"]?(\w*)")
_STORAGE_ASSIGN = re.compile(rf"\b{STORAGE_ENV}=['\"]?([^\s'\";]+)")
_STORAGE_FLAG = re.compile(r"--storage(?:=|\s+)['\"]?([^\s'\";]+)")

# A problem before it is placed in its file: (key path, bad value, what is wrong).
Problem = tuple[str, Any, str]

# What is wrong, said once.
HEAD_OFFERS_NOTHING = "the head must offer 0 so that no trial lands on it (it runs the Tune driver and the autoscaler)"
WORKER_GPUS_UNKNOWN = "a worker node type must declare its GPU count (Ray cannot detect it before the node exists)"
DASHBOARD_EXPOSED = (
    "exposes the dashboard and Jobs API; keep the default (127.0.0.1) and reach it with `ray dashboard CONFIG`"
)
AUTH_OFF = "token authentication must stay on"
STORAGE_UNSET = f"must set {STORAGE_ENV}=LOCATION (the sweeps' --storage) so every Ray Job sees it"
OPEN_PORT = "reach the cluster through `ray dashboard` (an SSH tunnel) instead"
OUTSIDE_K8S = "exposes Ray outside Kubernetes; use a ClusterIP Service and kubectl port-forward"
TOKEN_MODE = "must be token (KubeRay then makes a token Secret and sets RAY_AUTH_MODE on every pod)"
DASHBOARD_HOST_K8S = "must not be set beyond localhost; the ClusterIP head Service and kubectl port-forward reach it"
NOT_A_CLUSTER_FILE = "is neither a Ray cluster launcher config nor a KubeRay (ray.io/v1) manifest"
SWEEP_ENTRYPOINT = "must run `taso-tune sweep SPACE.yaml --name NAME --storage LOCATION`"


def require_shared_storage(storage: str | None, num_nodes: int) -> None:
    """Refuse storage that the nodes of a ``num_nodes``-node cluster do not all see.

    One node: anything goes (``None`` means the default local folder). More nodes: each trial
    writes its results where it runs, so ``storage`` must be a bucket URI (``s3://``, ``gs://``,
    ``gcs://``, ``abfs://``, ``abfss://``, ``az://``, ``hdfs://``) or an absolute path on a mount
    every node shares: under ``/mnt/`` or ``/nfs/``, or anywhere when ``TASO_TUNE_SHARED_STORAGE=1``
    is set (you vouch that the path is the same shared mount on every node).

    Raises:
        ConfigError: on field ``storage``, saying why the location is refused.
    """
    if num_nodes <= 1:
        return
    where = f"a sweep over {num_nodes} nodes"
    if not storage:
        raise ConfigError(
            "storage", storage,
            f"{where} needs --storage on shared storage (a bucket URI such as s3://BUCKET/PATH, or "
            f"a path under {' or '.join(SHARED_PATH_PREFIXES)} mounted on every node): without it "
            "each node keeps its trials' results on its own disk, where the driver cannot "
            "checkpoint, resume or report them",
        )  # fmt: skip
    scheme, sep, _ = storage.partition("://")
    if sep and scheme != "file":
        if scheme.lower() in SHARED_URI_SCHEMES:
            return
        raise ConfigError(
            "storage", storage, f"{where} needs a bucket URI of a known scheme",
            choices=[f"{s}://" for s in SHARED_URI_SCHEMES],
        )  # fmt: skip
    path = storage[len("file://") :] if sep else storage
    if os.environ.get(SHARED_STORAGE_ENV) == "1":
        return
    normal = os.path.normpath(path)
    if os.path.isabs(normal) and any((normal + "/").startswith(p) for p in SHARED_PATH_PREFIXES):
        return
    raise ConfigError(
        "storage", storage,
        f"{where} cannot use a node-local path: every node would write its trials to its own disk, "
        "so results would be scattered and the sweep could not be resumed or reported; use a "
        f"bucket URI (s3://, gs://, ...) or a shared mount under {' or '.join(SHARED_PATH_PREFIXES)}, "
        f"or set {SHARED_STORAGE_ENV}=1 if this path is the same shared mount on every node",
    )  # fmt: skip


def check_cluster_files(paths: Sequence[str]) -> list[str]:
    """Check each Ray cluster file offline; one line per problem, empty when all pass."""
    problems: list[str] = []
    for path in paths:
        problems.extend(check_cluster_file(path))
    return problems


def check_cluster_file(path: str) -> list[str]:
    """Problems of one launcher config or KubeRay manifest (see the module docstring)."""
    try:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as err:
        return [f"{path}: cannot read: {err}"]
    if any(isinstance(d, dict) and str(d.get("apiVersion", "")).startswith("ray.io/") for d in docs):
        found = _check_kuberay(docs)
    elif len(docs) == 1 and isinstance(docs[0], dict) and "apiVersion" not in docs[0]:
        found = _check_launcher(docs[0])
    else:
        found = [("", None, NOT_A_CLUSTER_FILE)]
    return [_line(path, key, value, text) for key, value, text in found]


def _line(path: str, key: str, value: Any, text: str) -> str:
    if not key:
        return f"{path}: {text}"
    return str(ConfigError(key, value, text, file=path))


def _ray_version() -> str:
    import ray

    return ray.__version__


def _key(*parts: str | int) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part:
            out += f".{part}" if out else part
    return out


def _walk(obj: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every node of a YAML tree with its key path, each before its children."""
    yield key, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, _key(key, str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{key}[{i}]")


def _strings(obj: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a YAML tree with its key path."""
    return ((at, node) for at, node in _walk(obj, key) if isinstance(node, str))


def _storage_problem(key: str, storage: str | None, num_nodes: int) -> list[Problem]:
    try:
        require_shared_storage(storage, num_nodes)
    except ConfigError as err:
        return [(key, storage, err.problem)]
    return []


# ---------------------------------------------------------------- Ray cluster launcher configs


@contextlib.contextmanager
def _quiet_ray() -> Iterator[None]:
    """Ray's config code prints notes and warnings meant for ``ray up``; keep them off our output."""
    ray_logger = logging.getLogger("ray")
    level = ray_logger.level
    ray_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        ray_logger.setLevel(level)


def _ray_checks(config: dict[str, Any]) -> tuple[dict | None, dict | None, list[Problem]]:
    """Ray's own offline steps: ``(defaults-filled config, prepared config, problems)``."""
    import jsonschema
    from ray.autoscaler._private.util import fillout_defaults, prepare_config, validate_config

    def schema_problem(err: jsonschema.ValidationError) -> Problem:
        parts = list(err.absolute_path)
        named = re.match(r"'([^']+)' is a required property", err.message) or re.search(
            r"\('([^']+)'.* unexpected\)", err.message
        )
        if named:
            parts.append(named.group(1))
        value = None if named else err.instance
        return _key(*parts), value, f"Ray's cluster schema: {err.message}"

    provider = config.get("provider")
    with _quiet_ray():
        if not isinstance(provider, dict) or "type" not in provider:
            try:  # prepare_config would fail with a KeyError; the schema says what is missing
                validate_config(config)
            except jsonschema.ValidationError as err:
                return None, None, [schema_problem(err)]
            return None, None, [("provider.type", None, "is required by Ray's cluster launcher")]
        try:
            filled = fillout_defaults(copy.deepcopy(config))
        except NotImplementedError as err:
            return None, None, [("provider.type", provider["type"], f"Ray's cluster launcher: {err}")]
        try:
            prepared = prepare_config(copy.deepcopy(config))
            validate_config(prepared)
        except jsonschema.ValidationError as err:
            return filled, None, [schema_problem(err)]
        except Exception as err:  # ValueError, RuntimeError, AssertionError, click's exceptions
            named = re.match(r"`(\w+)`", str(err))
            return filled, None, [(named.group(1) if named else "", None, f"Ray's config check: {err}")]
    return filled, prepared, []


def _check_launcher(config: dict[str, Any]) -> list[Problem]:
    own: list[Problem] = _check_node_types(config)
    filled, prepared, ray_problems = _ray_checks(config)
    reported = {key for key, _, _ in own}
    own += [p for p in ray_problems if p[0] not in reported]
    if filled is None:
        return own
    if "available_node_types" not in config and config["provider"]["type"] != "local":
        own += _check_node_types(filled)  # the provider's default node types
    max_workers = (prepared or filled).get("max_workers")
    num_nodes = 1 + (max_workers if is_int(max_workers) else 1)  # unknown: take it as several
    return own + (
        _check_ray_pinned(config, filled)
        + _check_start_commands(config, filled, num_nodes)
        + _check_token_mount(filled)
        + _check_security_group(filled)
        + _check_auth_mode(filled)
    )


def _check_node_types(config: dict[str, Any]) -> list[Problem]:
    types = config.get("available_node_types")
    if not isinstance(types, dict):
        return []  # the local provider makes its own; Ray's checks cover the rest
    head = config.get("head_node_type")
    problems: list[Problem] = []
    if head not in types:
        problems.append(("head_node_type", head, f"must be one of available_node_types ({', '.join(types)})"))
        head = None  # which type is a worker is unknown, so only the integer rule applies
    for name, node in types.items():
        resources = node.get("resources") if isinstance(node, dict) else None
        if not isinstance(resources, dict):
            continue  # Ray's schema reports the missing field
        at = _key("available_node_types", name, "resources")
        for resource, amount in resources.items():
            if not is_int(amount):
                problems.append((_key(at, resource), amount, "must be an integer"))
        gpus = resources.get("GPU")
        if name == head:
            for resource in ("CPU", "GPU"):
                if resources.get(resource) != 0:
                    problems.append((_key(at, resource), resources.get(resource), HEAD_OFFERS_NOTHING))
        elif head is None:
            continue
        elif gpus is None:
            problems.append((_key(at, "GPU"), None, WORKER_GPUS_UNKNOWN))
        elif is_int(gpus) and gpus < 1:
            problems.append((_key(at, "GPU"), gpus, "a worker node type must offer at least 1 GPU"))
    return problems


def _from_defaults(config: dict[str, Any], field: str) -> str:
    return "" if field in config else f" (Ray's default: the file does not set {field})"


def _check_ray_pinned(config: dict[str, Any], filled: dict[str, Any]) -> list[Problem]:
    version = _ray_version()
    want = f'"ray[default,tune]=={version}"'
    problems: list[Problem] = []
    pinned = False
    for field in SETUP_FIELDS:
        for i, command in enumerate(filled.get(field) or []):
            for install in _PIP_INSTALL.finditer(command):
                for spec in _RAY_SPEC.finditer(install.group("args")):
                    pin = (spec.group("pin") or "").strip()
                    if pin.startswith("==") and pin[2:].strip() == version:
                        pinned = True
                        continue
                    how = "unpinned" if not pin else "from a URL" if pin[0] == "@" else pin.replace(" ", "")
                    why = f"installs Ray {how}; pin pip install {want}, the version taso-tune runs"
                    problems.append((_key(field, i), command, why + _from_defaults(config, field)))
    if not pinned and not problems:
        problems.append(("setup_commands", filled.get("setup_commands"), f"must pip install {want} on every node"))
    return problems


def _check_start_commands(
    config: dict[str, Any], filled: dict[str, Any], num_nodes: int
) -> list[Problem]:
    problems: list[Problem] = []
    storage_found = False
    for field in ("head_start_ray_commands", "worker_start_ray_commands"):
        note = _from_defaults(config, field)
        for i, command in enumerate(filled.get(field) or []):
            for host in _DASHBOARD_HOST.findall(command):
                if host not in LOCAL_HOSTS:
                    problems.append((_key(field, i), command, f"--dashboard-host={host} {DASHBOARD_EXPOSED}{note}"))
            if not _RAY_START.search(command):
                continue
            if "RAY_AUTH_MODE=token" not in command:
                problems.append((_key(field, i), command, f"must start Ray with RAY_AUTH_MODE=token{note}"))
            if field == "head_start_ray_commands":
                for storage in _STORAGE_ASSIGN.findall(command):
                    storage_found = True
                    problems += _storage_problem(_key(field, i), storage, num_nodes)
    if not storage_found:
        problems.append(("head_start_ray_commands", None, f"the `ray start --head` command {STORAGE_UNSET}"))
    return problems


def _check_token_mount(filled: dict[str, Any]) -> list[Problem]:
    mounts = filled.get("file_mounts") or {}
    if any(os.path.normpath(remote).endswith("/.ray/auth_token") for remote in mounts):
        return []
    return [("file_mounts", mounts, f'must copy the Ray token to every node: "{TOKEN_PATH}": "{TOKEN_PATH}"')]


def _covers_ray_port(rule: dict[str, Any]) -> int | None:
    if str(rule.get("IpProtocol", "")) in ("-1", "all"):
        return RAY_PORTS[0]
    low, high = rule.get("FromPort", -1), rule.get("ToPort", -1)
    if low == -1:
        return RAY_PORTS[0]
    return next((port for port in RAY_PORTS if low <= port <= high), None)


def _check_security_group(filled: dict[str, Any]) -> list[Problem]:
    rules = ((filled.get("provider") or {}).get("security_group") or {}).get("IpPermissions") or []
    problems: list[Problem] = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        world = [r.get("CidrIp") for r in rule.get("IpRanges", []) if r.get("CidrIp") == "0.0.0.0/0"]
        world += [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", []) if r.get("CidrIpv6") == "::/0"]
        port = _covers_ray_port(rule)
        if world and port is not None:
            at = _key("provider", "security_group", "IpPermissions", i)
            problems.append((at, rule, f"opens Ray port {port} to {world[0]}; {OPEN_PORT}"))
    return problems


def _check_auth_mode(tree: Any, key: str = "") -> list[Problem]:
    """``RAY_AUTH_MODE=x`` in a string, or an env entry ``{name: RAY_AUTH_MODE, value: x}``, x not token."""
    problems: list[Problem] = []
    for at, text in _strings(tree, key):
        for mode in _AUTH_MODE.findall(text):
            if mode != "token":
                problems.append((at, text, f"sets RAY_AUTH_MODE={mode}; {AUTH_OFF}"))
    for at, entry in _walk(tree, key):  # env entries: {name: ..., value: ...}
        if isinstance(entry, dict) and entry.get("name") == "RAY_AUTH_MODE" and entry.get("value", "token") != "token":
            problems.append((at, entry, f"sets RAY_AUTH_MODE={entry.get('value')}; {AUTH_OFF}"))
    return problems


# ---------------------------------------------------------------- KubeRay manifests


def _check_kuberay(docs: list[Any]) -> list[Problem]:
    problems: list[Problem] = []
    for n, doc in enumerate(docs):
        if not isinstance(doc, dict):
            continue
        at = f"[{n}]" if len(docs) > 1 else ""
        kind = doc.get("kind")
        api = str(doc.get("apiVersion", ""))
        spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
        if kind == "Service" and spec.get("type") in ("LoadBalancer", "NodePort"):
            problems.append((_key(at, "spec", "type"), spec["type"], OUTSIDE_K8S))
        elif kind == "Ingress":
            problems.append((_key(at, "kind"), kind, OUTSIDE_K8S))
        elif not api.startswith("ray.io/"):
            continue
        elif api != "ray.io/v1" or kind not in ("RayCluster", "RayJob"):
            problems.append((_key(at, "kind"), f"{api} {kind}", "taso-tune checks ray.io/v1 RayCluster and RayJob"))
        elif kind == "RayCluster":
            problems += _check_ray_cluster_spec(doc.get("spec"), _key(at, "spec"), entrypoint=None)
        elif "clusterSelector" in spec:  # runs on a RayCluster that its own manifest describes
            problems += _check_entrypoint(spec.get("entrypoint"), _key(at, "spec", "entrypoint"), num_nodes=2)
        else:
            entrypoint = (spec.get("entrypoint"), _key(at, "spec", "entrypoint"))
            cluster_at = _key(at, "spec", "rayClusterSpec")
            problems += _check_ray_cluster_spec(spec.get("rayClusterSpec"), cluster_at, entrypoint)
        problems += _check_auth_mode(doc, at)
    return problems


def _check_ray_cluster_spec(spec: Any, at: str, entrypoint: tuple[Any, str] | None) -> list[Problem]:
    if not isinstance(spec, dict):
        return [(at, spec, "must be a RayCluster spec with headGroupSpec and workerGroupSpecs")]
    version = _ray_version()
    problems: list[Problem] = []
    if str(spec.get("rayVersion")) != version:
        problems.append((_key(at, "rayVersion"), spec.get("rayVersion"), f"must be {version}, the Ray taso-tune runs"))
    mode = (spec.get("authOptions") or {}).get("mode")
    if mode != "token":
        problems.append((_key(at, "authOptions", "mode"), mode, TOKEN_MODE))
    head = spec.get("headGroupSpec")
    if not isinstance(head, dict):
        problems.append((_key(at, "headGroupSpec"), head, "is required"))
        head = {}
    else:
        problems += _check_group(head, _key(at, "headGroupSpec"), version)
        if head.get("serviceType") in ("LoadBalancer", "NodePort"):
            problems.append((_key(at, "headGroupSpec", "serviceType"), head["serviceType"], OUTSIDE_K8S))
        if head.get("enableIngress"):
            problems.append((_key(at, "headGroupSpec", "enableIngress"), True, OUTSIDE_K8S))
    groups = spec.get("workerGroupSpecs")
    if not isinstance(groups, list) or not groups:
        return problems + [(_key(at, "workerGroupSpecs"), groups, "must list at least one worker group")]
    max_workers = 0
    for i, group in enumerate(groups):
        where = _key(at, "workerGroupSpecs", i)
        if not isinstance(group, dict):
            problems.append((where, group, "must be a worker group"))
            continue
        problems += _check_group(group, where, version)
        counts = {k: group.get(k) for k in ("replicas", "minReplicas", "maxReplicas")}
        for k, v in counts.items():
            if not is_int(v) or v < 0:
                problems.append((_key(where, k), v, "must be an integer >= 0"))
        if all(is_int(v) for v in counts.values()):
            max_workers += counts["maxReplicas"]
            if not counts["minReplicas"] <= counts["replicas"] <= counts["maxReplicas"]:
                problems.append((where, counts, "needs minReplicas <= replicas <= maxReplicas"))
    num_nodes = 1 + max_workers
    if entrypoint is not None:
        return problems + _check_entrypoint(entrypoint[0], entrypoint[1], num_nodes)
    storage = _container_env(head).get(STORAGE_ENV)
    if storage is None:
        return problems + [(_key(at, "headGroupSpec"), None, f"the head container {STORAGE_UNSET}")]
    return problems + _storage_problem(_key(at, "headGroupSpec", "env", STORAGE_ENV), storage, num_nodes)


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
        problems.append((_key(at, "rayStartParams"), params, "is required (may be {})"))
        params = {}
    for name, value in params.items():
        if not isinstance(value, str):
            problems.append((_key(at, "rayStartParams", name), value, "must be a string (KubeRay's CRD says so)"))
    host = params.get("dashboard-host")
    if host is not None and str(host) not in LOCAL_HOSTS:
        problems.append((_key(at, "rayStartParams", "dashboard-host"), host, DASHBOARD_HOST_K8S))
    containers = _containers(group)
    if not containers:
        return problems + [(_key(at, "template", "spec", "containers"), None, "must list the Ray container")]
    for j, container in enumerate(containers):
        where = _key(at, "template", "spec", "containers", j)
        image = container.get("image") if isinstance(container, dict) else None
        if not image:
            problems.append((_key(where, "image"), image, "is required"))
            continue
        tag = image.rsplit("/", 1)[-1].partition(":")[2].partition("@")[0]
        if tag != version and not tag.startswith(version + "-"):
            problems.append((_key(where, "image"), image, f"the tag must pin Ray {version} (e.g. {version}-py311-gpu)"))
        resources = container.get("resources") or {}
        for kind in ("limits", "requests"):
            gpus = (resources.get(kind) or {}).get("nvidia.com/gpu")
            if gpus is None:
                continue
            if not (is_int(gpus) or (isinstance(gpus, str) and gpus.isdigit())):
                problems.append((_key(where, "resources", kind, "nvidia.com/gpu"), gpus, "must be a whole number"))
    return problems


def _check_entrypoint(entrypoint: Any, at: str, num_nodes: int) -> list[Problem]:
    if not isinstance(entrypoint, str) or not re.search(r"\btaso-tune\s+sweep\b", entrypoint):
        return [(at, entrypoint, SWEEP_ENTRYPOINT)]
    storage = _STORAGE_FLAG.findall(entrypoint)
    if not storage:
        return [(at, entrypoint, "must pass --storage LOCATION (shared storage every pod sees)")]
    return _storage_problem(at, storage[0], num_nodes)
